import Foundation
import Metrics
import Methods
import Models
import RankwiseCore
import SafeTensors
import Training

/// The results of a grid: one row per task, method and budget, mean and spread over the seeds that finished.
public struct CompareTable {
    /// One finished run, read back from its `results.json` and `run.json`.
    public struct Cell {
        public var cell: CompareCell
        public var directory: String
        public var results: [String: Any]
        public var regression: Bool

        public init?(cell: CompareCell, directory: String) {
            guard let bytes = FileManager.default.contents(atPath: directory + "/results.json"),
                let r = (try? JSONSerialization.jsonObject(with: bytes)) as? [String: Any]
            else { return nil }
            self.cell = cell
            self.directory = directory
            results = r
            regression = r["test_pearson"] != nil || r["dev_pearson"] != nil
        }
        /// Block and kind of every adapted module (guessed from the paths for a run that predates the map).
        public var modules: ModuleMap {
            ModuleMap(stored: results["modules"], paths: (results["ranks"] as? [String: Int] ?? [:]).keys)
        }
        /// The head's primary metric: results.json's `primary_metric` (runs before it existed: pearson for
        /// regression, else macro-F1).
        public var primaryMetric: String {
            results["primary_metric"] as? String ?? (regression ? "pearson" : "macro_f1")
        }
        /// What the run's collapse check found on dev (else test), or nil for a run that did not collapse.
        public var collapse: String? {
            guard let c = results["collapse"] as? [String: Any] else { return nil }
            return ["dev", "test"].lazy.compactMap { (c[$0] as? [String: Any])?["finding"] as? String }.first
                ?? "collapsed"
        }
        public func value(_ k: String) -> Double? {
            if k == "final_rank" { return (results["ranks"] as? [String: Int]).map { Double($0.values.reduce(0, +)) } }
            // the last session's seconds only
            if k == "train_seconds" && results["resumed_from_step"] != nil { return nil }
            return (results[k] as? NSNumber)?.doubleValue
        }
    }

    public struct Row {
        public var task: String, method: String, budget: Int
        /// The learning rate from --lrs (nil: the method's own).
        public var lr: String?
        public var runs: [Cell]
        /// The row the table reports for its task, method and budget: the only one, or of several learning
        /// rates the one with the best mean dev metric.
        public var chosen = true
        /// The learning rate as the tables print it ("own": the method's tuned rate).
        public var rateText: String { lr ?? "own" }
        public var regression: Bool { runs.first?.regression ?? false }
        /// The head's primary metric (`macro_f1`, `pearson`), as the runs recorded it.
        public var primaryMetric: String { runs.first?.primaryMetric ?? "macro_f1" }
        public var metricKeys: [String] { CompareTable.metricKeys(primaryMetric: primaryMetric) }
        /// The dev metric a learning rate is chosen by.
        public var devKey: String { "dev_" + primaryMetric }
        /// The runs whose model collapsed (one class, majority level, constant).
        public var collapsed: [Cell] { runs.filter { $0.collapse != nil } }
        /// "-", or how many runs collapsed and their seeds.
        public var collapsedText: String {
            let c = collapsed
            return c.isEmpty
                ? "-"
                : "**\(c.count) of \(runs.count)** (seed \(c.map { String($0.cell.seed) }.joined(separator: ", ")))"
        }
        /// Mean and sample standard deviation (0 for one run) of `key` over the runs that have it.
        public func stat(_ key: String) -> (mean: Double, sd: Double, n: Int)? {
            let xs = runs.compactMap { $0.value(key) }.filter(\.isFinite)
            guard !xs.isEmpty else { return nil }
            let m = xs.reduce(0, +) / Double(xs.count)
            let sd =
                xs.count > 1 ? (xs.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(xs.count - 1)).squareRoot() : 0
            return (m, sd, xs.count)
        }
    }

    /// Every row: each task, method, budget and learning rate.
    public var rows: [Row]
    /// The rows the table reports: one per task, method and budget.
    public var chosenRows: [Row] { rows.filter(\.chosen) }
    /// Whether any row comes from --lrs (the tables then show the learning rate).
    public var hasLearningRates: Bool { rows.contains { $0.lr != nil } }

    /// The finished runs under `directory` (`TASK/METHOD-rBUDGET[-lrLR]-seedSEED/results.json`), in `first`'s order of
    /// tasks and methods when given, the others after them (suite tasks in the suite's order, methods in the
    /// registry's, the rest by name).
    public static func finished(in directory: String, first grid: CompareOptions? = nil) -> [Cell] {
        let fm = FileManager.default
        var out: [Cell] = []
        for task in ((try? fm.contentsOfDirectory(atPath: directory)) ?? []).sorted() {
            for run in ((try? fm.contentsOfDirectory(atPath: directory + "/" + task)) ?? []).sorted() {
                guard let cell = CompareCell.parse(task: task, folder: run) else { continue }
                if let c = Cell(cell: cell, directory: directory + "/\(task)/\(run)") { out.append(c) }
            }
        }
        // The grid's tasks and methods in its order, then the others: suite tasks in the suite's order and
        // methods in the registry's (`rankwise methods`), anything else last, alphabetically.
        let tasks = (grid?.taskList ?? []).map(Comparison.taskName)
        let methods = grid?.methods ?? []
        func rank(_ x: String, _ first: [String], _ then: [String]) -> Int {
            first.firstIndex(of: x) ?? first.count + (then.firstIndex(of: x) ?? then.count)
        }
        func key(_ c: Cell) -> Int {
            rank(c.cell.task, tasks, DataSuite.names) * 1000 + rank(c.cell.method, methods, MethodRegistry.names)
        }
        return out.enumerated().sorted { (key($0.element), $0.offset) < (key($1.element), $1.offset) }.map(\.element)
    }

    /// The speed next to PyTorch + PEFT recorded in `directory/speed.json` (by `rankwise compare --peer-python`), as
    /// Markdown.
    public static func speedMarkdown(directory: String) -> String {
        guard let bytes = FileManager.default.contents(atPath: directory + "/speed.json"),
            let rows = (try? JSONSerialization.jsonObject(with: bytes)) as? [[String: Any]], !rows.isEmpty
        else { return "" }
        var md =
            "\n### Speed next to PyTorch + PEFT (training steps on the same random batches of each task, the same "
            + "thread count, measured in the same run)\n\n"
            + "| task | method | batch | threads | Rankwise tokens/s | PEFT tokens/s | speed ratio | Rankwise peak "
            + "MiB | PEFT peak MiB | memory ratio |\n"
            + "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
        for row in rows {
            let n = { (k: String) in (row[k] as? NSNumber)?.doubleValue ?? .nan }
            md += String(
                format: "| %@ | %@ | %.0f | %.0f | %.0f | %.0f | %.2fx | %.0f | %.0f | %.2fx |\n",
                row["task"] as? String ?? "?", row["method"] as? String ?? "?",
                n("batch"), n("peer_threads"), n("tokens_per_s"), n("peer_tokens_per_s"),
                n("tokens_per_s") / n("peer_tokens_per_s"),
                n("peak_rss_mib"), n("peer_peak_rss_mib"), n("peak_rss_mib") / n("peer_peak_rss_mib"))
        }
        return md
    }

    public init(cells: [Cell]) {
        var rows: [Row] = []
        for c in cells {
            let cell = c.cell
            let sameRow = { (r: Row) in
                r.task == cell.taskName && r.method == cell.method && r.budget == cell.budget && r.lr == cell.lr
            }
            if let i = rows.firstIndex(where: sameRow) {
                rows[i].runs.append(c)
            } else {
                rows.append(Row(task: cell.taskName, method: cell.method, budget: cell.budget, lr: cell.lr, runs: [c]))
            }
        }
        // One reported row per task, method and budget.
        let groups = Dictionary(grouping: rows.indices) {
            "\(rows[$0].task)\u{0}\(rows[$0].method)\u{0}\(rows[$0].budget)"
        }
        let winners = Set(groups.values.compactMap { Self.chosenRate(among: rows, rivals: $0) })
        for i in rows.indices { rows[i].chosen = winners.contains(i) }
        self.rows = rows
    }

    /// Columns after task, method, budget and seeds: (key in results.json, header, digits).
    public static let columns: [(String, String, Int)] = [
        ("trainable_parameters", "trainable params", 0), ("final_rank", "final rank total", 0),
        ("train_seconds", "train s", 0),
        ("tokens_per_s", "tokens/s", 0), ("peak_rss_mib", "peak MiB", 0),
    ]

    /// Of a task, method and budget's rows (`rivals`, indices into `rows`), the one reported: the best mean dev
    /// metric among the rows with the most finished seeds (so one lucky seed cannot beat three), ties going to
    /// fewer collapsed runs, then to the lower rate. Rows from --lrs outrank a row at the method's own rate (a
    /// cell of an earlier grid without --lrs in the same output), which competes only when it is alone.
    static func chosenRate(among rows: [Row], rivals group: [Int]) -> Int? {
        var rivals = group
        if rivals.contains(where: { rows[$0].lr != nil }) { rivals.removeAll { rows[$0].lr == nil } }
        let seeds = { (j: Int) in rows[j].stat(rows[j].devKey)?.n ?? 0 }
        let most = rivals.map(seeds).max() ?? 0
        rivals.removeAll { seeds($0) < most }
        // A score that is larger when better (perplexity is negated).
        let dev = { (j: Int) in
            rows[j].stat(rows[j].devKey).map { MetricOrder.score(rows[j].devKey, $0.mean) } ?? -.infinity
        }
        let rate = { (j: Int) in rows[j].lr.flatMap(Double.init) ?? 0 }
        return rivals.min { a, b in
            (-dev(a), rows[a].collapsed.count, rate(a)) < (-dev(b), rows[b].collapsed.count, rate(b))
        }
    }

    /// `runs`: the row's runs; a statistic over fewer of them says over how many.
    public static func fmt(_ s: (mean: Double, sd: Double, n: Int)?, _ digits: Int, runs: Int = 0) -> String {
        guard let s else { return "-" }
        let of = s.n < runs ? " (\(s.n) runs)" : ""
        if digits == 0 { return String(format: "%.0f", s.mean) + of }
        return
            (s.n > 1
            ? String(format: "%.\(digits)f ± %.\(digits)f", s.mean, s.sd) : String(format: "%.\(digits)f", s.mean)) + of
    }

    public func markdown() -> String {
        var out =
            "Test metrics: mean ± sample standard deviation over seeds (the best dev checkpoint of each run). Other "
            + "columns: means"
            + " (train seconds leave out runs resumed from a checkpoint, which count only their last session).\n"
        if hasLearningRates {
            out +=
                "Each method's learning rate is the one of --lrs with the best mean dev metric on the task;"
                + " every rate tried is listed below the table.\n"
        }
        let lrColumn = hasLearningRates ? ["lr"] : []
        for task in rows.map(\.task).uniqued() {
            let rs = chosenRows.filter { $0.task == task }
            let mk = rs[0].metricKeys
            let header =
                ["method", "budget"] + lrColumn + ["seeds"] + mk.map(Self.header) + ["collapsed"]
                + Self.columns.map(\.1)
            out += "\n### \(task)\n\n| " + header.joined(separator: " | ") + " |\n"
            out += "|" + String(repeating: " --- |", count: header.count) + "\n"
            for r in rs {
                let lrCell = hasLearningRates ? "\(r.rateText) | " : ""
                out +=
                    "| \(r.method) | \(r.budget) | " + lrCell + "\(r.runs.count) | "
                    + mk.map { Self.fmt(r.stat($0), 4, runs: r.runs.count) }.joined(separator: " | ")
                    + " | \(r.collapsedText) | "
                    + Self.columns.map { Self.fmt(r.stat($0.0), $0.2, runs: r.runs.count) }.joined(separator: " | ")
                    + " |\n"
            }
            let tried = rows.filter { $0.task == task }
            if tried.count > rs.count {
                let keys = [rs[0].devKey] + mk
                out +=
                    "\nEvery learning rate tried (✓: reported above):\n\n| method | budget | lr | seeds | "
                    + keys.map(Self.header).joined(separator: " | ") + " | collapsed |\n"
                out += "|" + String(repeating: " --- |", count: 5 + keys.count) + "\n"
                for r in tried {
                    let means = keys.map { Self.fmt(r.stat($0), 4, runs: r.runs.count) }
                    out +=
                        "| \(r.method) | \(r.budget) | \(r.rateText)\(r.chosen ? " ✓" : "") | \(r.runs.count) | "
                        + means.joined(separator: " | ") + " | \(r.collapsedText) |\n"
                }
            }
            let collapsed = rs.flatMap(\.collapsed)
            if !collapsed.isEmpty {
                out += "\n**Collapsed runs** (the model stopped telling examples apart; \(Collapse.fixes)):\n\n"
                for c in collapsed {
                    out += "- \(c.cell.method) r\(c.cell.budget) seed \(c.cell.seed): \(c.collapse ?? "")\n"
                }
            }
        }
        return out
    }

    /// A metric key as a column header: test_macro_f1 → test macro-f1.
    static func header(_ key: String) -> String {
        key.replacingOccurrences(of: "test_", with: "test ")
            .replacingOccurrences(of: "dev_", with: "dev ")
            .replacingOccurrences(of: "_", with: "-")
    }

    /// The test metrics a row shows for runs whose head reports `primaryMetric`: classification, regression, or
    /// a causal LM's perplexity and the ROUGE of its generated replies.
    public static func metricKeys(primaryMetric: String) -> [String] {
        switch primaryMetric {
        case "pearson": ["test_pearson", "test_spearman"]
        case "perplexity": ["test_perplexity", "test_rouge1", "test_rouge2", "test_rougeL"]
        default: ["test_accuracy", "test_macro_f1"]
        }
    }

    /// Every metric the CSV and JSON files carry.
    static let allMetricKeys =
        ["accuracy", "macro_f1", "pearson", "spearman", "perplexity", "rouge1", "rouge2", "rougeL"].map { "test_" + $0 }

    /// Every row; `lr` empty for a method's own rate, `chosen` 1 for the rows the table reports.
    public func csv() -> String {
        // The causal-LM columns come last, so that the classifiers' columns keep their places.
        let keys =
            ["test_accuracy", "test_macro_f1", "test_pearson", "test_spearman"] + Self.columns.map(\.0)
            + [
                "dev_macro_f1", "dev_pearson", "test_perplexity", "test_rouge1", "test_rouge2", "test_rougeL",
                "dev_perplexity",
            ]
        let statColumns = keys.flatMap { [$0 + "_mean", $0 + "_sd"] }
        var out = "task,method,budget,seeds,collapsed," + statColumns.joined(separator: ",") + ",lr,chosen\n"
        for r in rows {
            out +=
                "\(r.task),\(r.method),\(r.budget),\(r.runs.count),\(r.collapsed.count),"
                + keys.flatMap { k -> [String] in
                    guard let s = r.stat(k) else { return ["", ""] }
                    return [String(format: "%.6g", s.mean), String(format: "%.6g", s.sd)]
                }.joined(separator: ",") + ",\(r.lr ?? ""),\(r.chosen ? 1 : 0)\n"
        }
        return out
    }

    public func json(grid: CompareOptions, common: [(key: String, value: String)]) throws -> String {
        let keys =
            Self.allMetricKeys + ["dev_accuracy", "dev_macro_f1", "dev_pearson", "dev_perplexity"]
            + Self.columns.map(\.0)
        let rowsJSON: [[String: Any]] = rows.map { r in
            var record: [String: Any] = [
                "task": r.task, "method": r.method, "budget": r.budget,
                "lr": r.lr ?? NSNull(), "chosen": r.chosen,
                "seeds": r.runs.map { NSNumber(value: $0.cell.seed) },
                "runs": r.runs.map { ($0.directory as NSString).lastPathComponent },
                "collapsed": r.collapsed.map {
                    ["run": ($0.directory as NSString).lastPathComponent, "finding": $0.collapse ?? ""]
                },
            ]
            for k in keys { if let s = r.stat(k) { record[k] = ["mean": s.mean, "sd": s.sd, "n": s.n] } }
            return record
        }
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let gridJSON = try JSONSerialization.jsonObject(with: enc.encode(grid))
        let obj: [String: Any] = [
            "grid": gridJSON, "common_options": Dictionary(common.map { ($0.key, $0.value) }, uniquingKeysWith: { $1 }),
            "rows": rowsJSON,
        ]
        return String(
            decoding: try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys]),
            as: UTF8.self) + "\n"
    }
}

extension Array where Element: Hashable {
    /// The elements in order, each once.
    public func uniqued() -> [Element] {
        var seen = Set<Element>()
        return filter { seen.insert($0).inserted }
    }
}
