import Foundation
import RankwiseCore

/// One labelled example.
public struct Example: Sendable, Equatable {
    public var text: String
    public var pair: String?
    /// Class id for classification (or -1 when unlabelled), unused for regression.
    public var label: Int
    /// Regression target.
    public var target: Float
    /// Source line (1-based) for error messages and reports.
    public var line: Int

    public init(text: String, pair: String? = nil, label: Int = -1, target: Float = 0, line: Int = 0) {
        self.text = text
        self.pair = pair
        self.label = label
        self.target = target
        self.line = line
    }
}

/// Which columns hold what, and how labels are read.
public struct DataSpec: Sendable, Codable, Equatable {
    public var textColumn: String = "text"
    public var pairColumn: String? = nil
    public var labelColumn: String = "label"
    /// Fixed class names in id order; when nil they are discovered from the training file.
    public var labels: [String]? = nil
    public var regression: Bool = false
    public var dropDuplicates: Bool = false
    public init() {}
}

/// What loading found: counts and the first few line numbers of every problem.
public struct LoadReport: Sendable {
    public var file: String
    public var records = 0
    public var kept = 0
    public var invalidUTF8: [Int] = [], invalidUTF8Count = 0
    public var emptyText: [Int] = [], emptyTextCount = 0
    public var missingLabel: [Int] = [], missingLabelCount = 0
    public var unknownLabel: [(Int, String)] = [], unknownLabelCount = 0
    public var malformed: [(Int, String)] = [], malformedCount = 0
    public var duplicates = 0, duplicatesDropped = 0, conflictingDuplicates = 0

    static let keep = 5
    enum Kind { case utf8, empty, missing }
    mutating func note(_ kind: Kind, _ line: Int) {
        switch kind {
        case .utf8:
            invalidUTF8Count += 1
            if invalidUTF8.count < Self.keep { invalidUTF8.append(line) }
        case .empty:
            emptyTextCount += 1
            if emptyText.count < Self.keep { emptyText.append(line) }
        case .missing:
            missingLabelCount += 1
            if missingLabel.count < Self.keep { missingLabel.append(line) }
        }
    }

    /// Human-readable lines (empty when there were no problems).
    public var problems: [String] {
        var out: [String] = []
        func lines(_ l: [Int], _ n: Int) -> String {
            "line" + (l.count > 1 ? "s " : " ") + l.map(String.init).joined(separator: ", ")
                + (n > l.count ? ", ..." : "")
        }
        if invalidUTF8Count > 0 {
            out.append(
                "\(invalidUTF8Count) rows with invalid UTF-8 (replaced with U+FFFD; "
                    + "\(lines(invalidUTF8, invalidUTF8Count)))"
            )
        }
        if malformedCount > 0 {
            out.append(
                "\(malformedCount) malformed rows skipped ("
                    + malformed.map { "line \($0.0): \($0.1)" }.joined(separator: "; ")
                    + (malformedCount > malformed.count ? "; ..." : "") + ")")
        }
        if emptyTextCount > 0 {
            out.append("\(emptyTextCount) rows with empty text skipped (\(lines(emptyText, emptyTextCount)))")
        }
        if missingLabelCount > 0 {
            out.append(
                "\(missingLabelCount) rows with a missing label skipped (\(lines(missingLabel, missingLabelCount)))")
        }
        if unknownLabelCount > 0 {
            out.append(
                "\(unknownLabelCount) rows with an unknown label skipped ("
                    + unknownLabel.map { "line \($0.0): \"\($0.1)\"" }.joined(separator: ", ")
                    + (unknownLabelCount > unknownLabel.count ? ", ..." : "") + ")")
        }
        if duplicates > 0 {
            out.append(
                "\(duplicates) duplicate texts"
                    + (conflictingDuplicates > 0 ? " (\(conflictingDuplicates) with a different label)" : "")
                    + (duplicatesDropped > 0 ? ", \(duplicatesDropped) dropped" : ", kept (use --dedup to drop)"))
        }
        return out
    }
}

/// A loaded set of examples with its label names.
public struct Dataset: Sendable {
    public var examples: [Example]
    /// Class names by id (classification) or empty (regression).
    public var labelNames: [String]
    public var regression: Bool
    public var numLabels: Int { regression ? 1 : labelNames.count }

    /// Gives a seeded random `fraction` of the examples another class, drawn uniformly from the other
    /// classes (label noise for experiments). Returns example index → original label.
    public mutating func flipLabels(fraction: Double, seed: UInt64) -> [Int: Int] {
        guard !regression, labelNames.count > 1, !examples.isEmpty else { return [:] }
        var rng = SplitMix64(seed: seed)
        var order = Array(examples.indices)
        rng.shuffle(&order)
        var flipped: [Int: Int] = [:]
        for i in order.prefix(Int((Double(examples.count) * fraction).rounded())) {
            let old = examples[i].label
            let shift = 1 + Int(rng.next() % UInt64(labelNames.count - 1))
            examples[i].label = (old + shift) % labelNames.count
            flipped[i] = old
        }
        return flipped
    }

    public init(examples: [Example], labelNames: [String], regression: Bool) {
        self.examples = examples
        self.labelNames = labelNames
        self.regression = regression
    }

    /// Loads a CSV/TSV/JSONL file. `labelNames` fixes the label map (for dev/test files: the
    /// training set's); otherwise class names are discovered (sorted; integers in numeric order).
    public static func load(path: String, spec: DataSpec, labelNames: [String]? = nil) throws -> (Dataset, LoadReport) {
        let (columns, records, malformed) = try TableReader.read(path: path)
        var report = LoadReport(file: path)
        report.records = records.count + malformed.count
        report.malformedCount = malformed.count
        report.malformed = Array(malformed.prefix(LoadReport.keep))
        for col in [spec.textColumn, spec.labelColumn] + (spec.pairColumn.map { [$0] } ?? [])
        where !columns.contains(col) {
            throw DataError(
                "\(path): no column \"\(col)\" (columns: \(columns.joined(separator: ", "))); choose with "
                    + "--text-column / --label-column / --pair-column"
            )
        }
        // Label map
        var names = labelNames ?? spec.labels
        if names == nil && !spec.regression {
            var seen = Set<String>()
            for r in records {
                if let l = r.fields[spec.labelColumn]?.trimmingCharacters(in: .whitespaces), !l.isEmpty {
                    seen.insert(l)
                }
            }
            if !seen.isEmpty && seen.allSatisfy({ Int($0) != nil && Int($0)! >= 0 }) {
                let mx = seen.map { Int($0)! }.max()!
                guard mx < 10_000 else {
                    throw DataError("\(path): integer labels go up to \(mx); use --regression for numeric targets")
                }
                names = (0...mx).map(String.init)
            } else {
                names = seen.sorted()
            }
        }
        let index = Dictionary((names ?? []).enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        var out: [Example] = []
        var firstLabel: [String: Int] = [:]
        for r in records {
            for col in [spec.textColumn, spec.labelColumn] + (spec.pairColumn.map { [$0] } ?? []) {
                guard let v = r.fields[col], v.contains("\u{0}") else { continue }
                throw DataError(
                    v.hasPrefix("\u{0}a")
                        ? "\(path): line \(r.line): column \"\(col)\" holds \(v.dropFirst()), not a string or number"
                        : "\(path): line \(r.line): column \"\(col)\" contains a NUL byte")
            }
            if r.hadInvalidUTF8 { report.note(.utf8, r.line) }
            let text = r.fields[spec.textColumn] ?? ""
            if text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                report.note(.empty, r.line)
                continue
            }
            let raw = (r.fields[spec.labelColumn] ?? "").trimmingCharacters(in: .whitespaces)
            if raw.isEmpty {
                report.note(.missing, r.line)
                continue
            }
            var ex = Example(
                text: text, pair: spec.pairColumn.flatMap { r.fields[$0] }, label: -1, target: 0, line: r.line)
            if spec.regression {
                guard let v = Float(raw), v.isFinite else {
                    report.unknownLabelCount += 1
                    if report.unknownLabel.count < LoadReport.keep { report.unknownLabel.append((r.line, raw)) }
                    continue
                }
                ex.target = v
            } else {
                guard let id = index[raw] else {
                    report.unknownLabelCount += 1
                    if report.unknownLabel.count < LoadReport.keep { report.unknownLabel.append((r.line, raw)) }
                    continue
                }
                ex.label = id
            }
            let key = text + "\u{1}" + (ex.pair ?? "")
            if let prev = firstLabel[key] {
                report.duplicates += 1
                if prev != ex.label { report.conflictingDuplicates += 1 }
                if spec.dropDuplicates {
                    report.duplicatesDropped += 1
                    continue
                }
            } else {
                firstLabel[key] = ex.label
            }
            out.append(ex)
        }
        report.kept = out.count
        guard !records.isEmpty || !malformed.isEmpty else {
            throw DataError("\(path): no data rows (only a header, or empty)")
        }
        guard !out.isEmpty else {
            throw DataError("\(path): no usable rows (\(report.problems.joined(separator: "; ")))")
        }
        return (
            Dataset(examples: out, labelNames: spec.regression ? [] : (names ?? []), regression: spec.regression),
            report
        )
    }

    /// A deterministic seeded split into train/dev/test. Identical texts stay in the same part, so
    /// duplicates cannot leak from train into evaluation.
    public func split(dev: Double, test: Double, seed: UInt64) -> (train: Dataset, dev: Dataset, test: Dataset) {
        var groups: [String: [Int]] = [:]
        var order: [String] = []
        for (i, e) in examples.enumerated() {
            let k = e.text + "\u{1}" + (e.pair ?? "")
            if groups[k] == nil { order.append(k) }
            groups[k, default: []].append(i)
        }
        var rng = SplitMix64(seed: seed)
        rng.shuffle(&order)
        let nDev = Int((Double(order.count) * dev).rounded())
        let nTest = Int((Double(order.count) * test).rounded())
        func take(_ keys: ArraySlice<String>) -> Dataset {
            let idx = keys.flatMap { groups[$0]! }  // shuffled order: any prefix is a random sample
            return Dataset(examples: idx.map { examples[$0] }, labelNames: labelNames, regression: regression)
        }
        return (take(order[(nDev + nTest)...]), take(order[..<nDev]), take(order[nDev..<(nDev + nTest)]))
    }

    /// Counts per class.
    public var classCounts: [Int] {
        var c = [Int](repeating: 0, count: labelNames.count)
        for e in examples where e.label >= 0 && e.label < c.count { c[e.label] += 1 }
        return c
    }
}
