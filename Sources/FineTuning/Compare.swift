import Foundation
import Methods
import Models
import RankwiseCore
import SafeTensors
import Training

/// The grid `rankwise compare` runs: methods x rank budgets x seeds x data sets. Every other option
/// (epochs, max length, …) is a training option given once for every cell.
public struct CompareOptions: Settings, Sendable, Equatable {
    public var methods = ["lora", "adalora", "salientlora", "elalora", "tsqlora"]
    public var budgets = ["8"]
    public var seeds = ["1", "2", "3"]
    public var lrs: [String] = []
    public var tasks: [String] = []
    public var suite = false
    public var quick = false
    public var output = "runs/compare"
    public init() {}

    public static let help = [
        "methods":
            "registered methods to compare (each at its own tuned options for the budget: see `rankwise methods`)",
        "budgets": "rank budgets: the average final rank per adapted module (LoRA's r)",
        "seeds": "training seeds; every cell runs once per seed",
        "lrs": "learning rates to try for every task, method and budget; each row then reports the rate with the best "
            + "mean dev metric over the seeds, as the papers choose a rate per task [none: each method's tuned rate]",
        "tasks":
            "data sets: suite names (`rankwise fetch-data`) or CSV/TSV/JSONL files [none: give --tasks or --suite]",
        "suite": "every suite data set (tweets, snli, sms-spam, trec, bbc-news, vader-tweets)",
        "quick": "quick setting unless given: 2,000 training and 1,000 dev/test examples per task, 1 epoch, 64 tokens",
        "output": "output directory: one folder per task, one per cell, the tables",
    ]

    /// The quick setting's training options (used only where the user gave none).
    public static let quickOptions = [
        "max-train-examples": "2000", "max-eval-examples": "1000", "epochs": "1", "max-length": "64",
    ]

    public var budgetValues: [Int] { budgets.compactMap { Int($0) } }
    public var seedValues: [UInt64] { seeds.compactMap { UInt64($0) } }
    /// The learning rates of the cells: nil (each method's own) when --lrs is not given.
    public var lrValues: [String?] { lrs.isEmpty ? [nil] : lrs }
    public var taskList: [String] { suite ? DataSuite.names + tasks.filter { !DataSuite.names.contains($0) } : tasks }

    public func validate() throws {
        guard !methods.isEmpty else { throw SettingsError("--methods: give at least one method") }
        for m in methods { _ = try MethodRegistry.entry(m) }
        guard budgetValues.count == budgets.count, budgetValues.allSatisfy({ (1...1024).contains($0) }),
            !budgets.isEmpty
        else {
            throw SettingsError("--budgets: expected integers from 1 to 1024, got \(budgets.joined(separator: ","))")
        }
        guard seedValues.count == seeds.count, !seeds.isEmpty else {
            throw SettingsError("--seeds: expected non-negative integers, got \(seeds.joined(separator: ","))")
        }
        guard !taskList.isEmpty else { throw SettingsError("give --tasks (suite names or files) or --suite") }
        for lr in lrs where Double(lr).map({ $0 > 0 && $0.isFinite }) != true {
            throw SettingsError("--lrs: expected positive numbers, got \(lr)")
        }
        let lists = [
            ("--methods", methods), ("--budgets", budgetValues.map(String.init)),
            ("--seeds", seedValues.map(String.init)), ("--lrs", lrs.map { "\(Double($0) ?? .nan)" }),
        ]
        for (name, list) in lists {
            if let duplicate = list.first(where: { x in list.filter { $0 == x }.count > 1 }) {
                throw SettingsError("\(name): \(duplicate) is listed twice")
            }
        }
        for (i, t) in taskList.enumerated() {
            if let j = taskList[..<i].firstIndex(where: { Comparison.taskName($0) == Comparison.taskName(t) }) {
                throw SettingsError(
                    taskList[j] == t
                        ? "--tasks: \(t) is listed twice"
                        : "--tasks: \(taskList[j]) and \(t) would share the folder \(Comparison.taskName(t)); rename "
                            + "one of the files"
                )
            }
        }
    }
}

/// One run of the grid.
public struct CompareCell: Sendable, Hashable {
    public var task: String, method: String, budget: Int, seed: UInt64
    /// The learning rate from --lrs, or nil for the method's own.
    public var lr: String?
    public init(task: String, method: String, budget: Int, seed: UInt64, lr: String? = nil) {
        self.task = task
        self.method = method
        self.budget = budget
        self.seed = seed
        self.lr = lr
    }
    /// The folder name of the task (a file's base name without extension).
    public var taskName: String { Comparison.taskName(task) }
    /// METHOD-rBUDGET-seedSEED, or METHOD-rBUDGET-lrLR-seedSEED with a learning rate from --lrs.
    public var name: String { "\(method)-r\(budget)" + (lr.map { "-lr\($0)" } ?? "") + "-seed\(seed)" }

    /// The cell a run folder's name stands for (nil for another folder).
    public static func parse(task: String, folder: String) -> CompareCell? {
        guard let m = folder.wholeMatch(of: #/(.+?)-r([0-9]+)(?:-lr([^/]+))?-seed([0-9]+)/#),
            let budget = Int(m.2), let seed = UInt64(m.4), m.3.map({ Double($0) != nil }) ?? true
        else { return nil }
        return CompareCell(task: task, method: String(m.1), budget: budget, seed: seed, lr: m.3.map(String.init))
    }
}

/// Runs a comparison grid cell by cell, each a `FineTuneJob` in its own folder
/// (`OUTPUT/TASK/METHOD-rBUDGET-seedSEED`, `METHOD-rBUDGET-lrLR-seedSEED` with --lrs). A cell with
/// `results.json` is done and skipped; a cell with a checkpoint resumes from it; so an interrupted grid continues
/// where it stopped. Writes the table as `results.json`, `results.md` and `results.csv` after every cell.
public final class Comparison {
    public let grid: CompareOptions
    /// Training and data options for every cell (key → text), with the quick setting applied.
    public let common: [(key: String, value: String)]
    public var print: (String) -> Void = { Swift.print($0) }
    /// Before each cell: the cell, its position (from 0), the number of cells, and the estimated seconds left in the
    /// grid (nil until one cell ran).
    public var onCell: (CompareCell, Int, Int, Double?) -> Void = { _, _, _, _ in }
    public var onEvent: (TrainEvent, Trainer) -> Void = { _, _ in }
    /// After each cell that ran: the cell, its result and its wall seconds.
    public var onCellDone: (CompareCell, FineTuneResult, Double) -> Void = { _, _, _ in }
    /// Asked before each cell: true stops the grid there (its tables are written; running it again continues).
    public var shouldStop: () -> Bool = { false }

    /// Options that name one cell's data, method, seed or output: the grid sets them.
    static let gridKeys: Set<String> = ["train", "method", "seed", "output", "r"]

    public init(grid: CompareOptions, common given: [(key: String, value: String)]) throws {
        try grid.validate()
        // Every key in its canonical spelling (an alias such as --learning-rate is --lr), so that the grid's
        // keys cannot be set through an alias and a user's option replaces the method's default of that name.
        let values = given.map { (key: Self.canonical(SettingsTable.normalise($0.key)), value: $0.value) }
        if !grid.lrs.isEmpty, values.contains(where: { $0.key == "lr" }) {
            throw SettingsError("--lr and --lrs: give one (--lrs tries each rate and keeps the best on dev)")
        }
        for (k, _) in values where Self.gridKeys.contains(k) {
            throw SettingsError(
                "--\(k) is set by the grid: use " + [
                    "train": "--tasks", "method": "--methods", "seed": "--seeds", "output": "--output",
                    "r": "--budgets",
                ][k]!)
        }
        let entries = try grid.methods.map { try MethodRegistry.entry($0) }
        for (k, _) in values where Self.isMethodOnly(k) && !entries.contains(where: { $0.hasOption(k) }) {
            throw SettingsError(
                "--\(k) is an option of "
                    + "\(MethodRegistry.all.filter { $0.hasOption(k) }.map(\.name).joined(separator: ", ")), none of "
                    + "the methods compared (\(grid.methods.joined(separator: ", ")))"
            )
        }
        var v = values
        if grid.quick {
            let given = Set(values.map { SettingsTable.normalise($0.key) })
            for (k, x) in CompareOptions.quickOptions.sorted(by: { $0.key < $1.key }) where !given.contains(k) {
                v.append((k, x))
            }
        }
        self.grid = grid
        common = v
        // Every cell's options must parse before the first one runs.
        for c in cells { _ = try options(for: c) }
    }

    public var cells: [CompareCell] {
        grid.taskList.flatMap { t in
            grid.methods.flatMap { m in
                grid.budgetValues.flatMap { b in
                    grid.lrValues.flatMap { lr in
                        grid.seedValues.map { CompareCell(task: t, method: m, budget: b, seed: $0, lr: lr) }
                    }
                }
            }
        }
    }

    public func directory(_ c: CompareCell) -> String { grid.output + "/" + c.taskName + "/" + c.name }

    /// A cell's options: the method's budget options, then the common ones (which win), then the grid's.
    public func options(for c: CompareCell) throws -> FineTuneOptions {
        let entry = try MethodRegistry.entry(c.method)
        var values: [(key: String, value: String)] = [("method", c.method)]
        let given = Set(common.map { SettingsTable.normalise($0.key) })
        for (k, v) in entry.budgetOptions(c.budget).sorted(by: { $0.key < $1.key }) where !given.contains(k) {
            values.append((k, v))
        }
        values += common.filter { k, _ in
            // Method options the user gave apply only to the methods that have them.
            let n = SettingsTable.normalise(k)
            return !Self.isMethodOnly(n) || entry.hasOption(n)
        }
        values += [("train", c.task), ("seed", "\(c.seed)"), ("output", directory(c))]
        if let lr = c.lr { values.append(("lr", lr)) }
        if ModelStore.knownData.contains(where: { $0.alias == c.task }) == false && DataSuite.dataSet(c.task) == nil
            && !FileManager.default.fileExists(atPath: c.task)
        {
            throw SettingsError(
                "--tasks: \(c.task) is neither a file nor a known data set (\(DataSuite.names.joined(separator: ", ")))"
            )
        }
        return try FineTuneOptions.from(values)
    }

    /// The canonical name of an option given in any spelling or alias (unknown names are returned as given).
    static func canonical(_ key: String) -> String {
        let tables =
            [SettingsTable.options(of: DataOptions.self), SettingsTable.options(of: TrainConfig.self)]
            + MethodRegistry.all.map(\.options)
        for t in tables {
            if let match = t.first(where: { $0.key == key || $0.aliases.contains(key) }) { return match.key }
        }
        return key
    }

    static func isMethodOnly(_ key: String) -> Bool {
        let data = SettingsTable.options(of: DataOptions.self)
        let train = SettingsTable.options(of: TrainConfig.self)
        return !(data + train).contains { $0.key == key || $0.aliases.contains(key) }
            && MethodRegistry.all.contains { $0.hasOption(key) }
    }

    /// A task's folder name: a suite name as is, a file's name without its data extension (.csv, .tsv, .jsonl …).
    public static func taskName(_ task: String) -> String {
        if DataSuite.names.contains(task) { return task }
        let base = (task as NSString).lastPathComponent
        let ext = (base as NSString).pathExtension.lowercased()
        return ["csv", "tsv", "tab", "jsonl", "ndjson", "json", "txt"].contains(ext)
            ? (base as NSString).deletingPathExtension : base
    }

    /// Runs every cell not yet done, then writes the tables. Returns the table.
    @discardableResult
    public func run() throws -> CompareTable {
        try Trainer.makeDirectory(grid.output)
        let all = cells
        try preflight(all.filter { !isDone($0) })
        try checkSameOptions()
        try checkSameData()
        var seconds: [String: [Double]] = [:]  // task → seconds of cells run now
        for (i, c) in all.enumerated() {
            let dir = directory(c)
            if isDone(c) { continue }
            if shouldStop() { break }
            if FileManager.default.fileExists(atPath: dir + "/results.json") {  // unreadable: the cell runs again
                try FileManager.default.removeItem(atPath: dir + "/results.json")
            }
            onCell(c, i, all.count, eta(all[i...], seconds))
            let cellOptions = try options(for: c)
            let resume = FileManager.default.fileExists(atPath: dir + "/checkpoint.safetensors")
            let job = FineTuneJob(options: cellOptions, resume: resume)
            job.print = { _ in }
            job.onEvent = { [unowned self] ev, t in self.onEvent(ev, t) }
            resetPeakRSS()
            let t0 = Date()
            let result: FineTuneResult
            do { result = try job.run() } catch { throw TrainError("\(c.taskName) \(c.name): \(error)") }
            seconds[c.task, default: []].append(Date().timeIntervalSince(t0))
            onCellDone(c, result, Date().timeIntervalSince(t0))
            try writeTables()
        }
        return try writeTables()
    }

    /// What can fail in a cell without training fails before the first cell runs, not hours in: each task's
    /// data loads (columns, labels), and each method is built on the model at each budget (ranks that do not fit).
    func preflight(_ pending: [CompareCell]) throws {
        for task in pending.map(\.task).uniqued() {
            let c = pending.first { $0.task == task }!
            do { _ = try FineTuneData.sets(try options(for: c).data, print: { _ in }) } catch {
                throw TrainError("task \(task): \(error)")
            }
        }
        var built = Set<String>()
        for c in pending where built.insert("\(c.method) \(c.budget)").inserted {
            let cellOptions = try options(for: c)
            do {
                let backbone = try BackboneFamilies.load(
                    directory: try ModelStore.resolve(cellOptions.data.model, quiet: true), pooled: true)
                _ = try MethodRegistry.entry(c.method).make(
                    options: cellOptions.methodOptions, backbone: backbone, seed: c.seed)
            } catch { throw TrainError("\(c.method) at budget \(c.budget): \(error)") }
        }
    }

    /// The content of each task's data is kept in OUTPUT/data.json: a later command may add tasks, but a
    /// task whose files changed since its cells ran is refused (its old cells would be skipped as done).
    func checkSameData() throws {
        let path = grid.output + "/data.json"
        var known: [String: String] = [:]
        if let bytes = FileManager.default.contents(atPath: path) {
            guard let k = (try? JSONSerialization.jsonObject(with: bytes)) as? [String: String] else {
                throw TrainError("\(path): not a JSON object of content hashes; remove it to start this grid over")
            }
            known = k
        }
        var changed = false
        for task in grid.taskList {
            let resolved = try DataSuite.resolve(try options(for: cells.first { $0.task == task }!).data, quiet: true)
            let hash = try [resolved.train, resolved.dev, resolved.test].compactMap { $0 }.map {
                try FineTuneJob.contentHash(try ModelStore.resolveData($0, quiet: true))
            }.joined(separator: "+")
            let name = Comparison.taskName(task)
            if let h = known[name], h != hash {
                throw TrainError(
                    "\(grid.output): the data of task \(name) (\(task)) is not the data its cells ran on; use another "
                        + "--output"
                )
            }
            if known[name] == nil {
                known[name] = hash
                changed = true
            }
        }
        if changed {
            try AtomicFile.write(
                String(
                    decoding: try JSONSerialization.data(
                        withJSONObject: known, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self), to: path)
        }
    }

    /// A cell is done when its results.json reads back.
    func isDone(_ c: CompareCell) -> Bool { CompareTable.Cell(cell: c, directory: directory(c)) != nil }

    /// Whether any cell of any grid in the output has started (its run.json exists).
    func anyCellStarted() -> Bool {
        let paths = (try? FileManager.default.subpathsOfDirectory(atPath: grid.output)) ?? []
        return paths.contains { $0.hasSuffix("/run.json") }
    }

    /// The options every cell shares are kept in OUTPUT/options.json: a later command into the same output
    /// may add methods, budgets, seeds or tasks, but not change them, or its table would mix settings. Until a
    /// cell has started (a first command that stopped on a bad option), the options may change.
    func checkSameOptions() throws {
        let path = grid.output + "/options.json"
        let now = Dictionary(common.map { ($0.key, $0.value) }, uniquingKeysWith: { $1 })
        if let bytes = FileManager.default.contents(atPath: path), anyCellStarted() {
            guard let before = (try? JSONSerialization.jsonObject(with: bytes)) as? [String: String] else {
                throw TrainError("\(path): not a JSON object of options; remove it to start this grid over")
            }
            if before != now {
                let keys = Set(before.keys).union(now.keys).sorted().filter { before[$0] != now[$0] }
                throw TrainError(
                    "\(grid.output) holds cells run with other options ("
                        + keys.map { "--\($0): \(before[$0] ?? "not given") then, \(now[$0] ?? "not given") now" }
                        .joined(separator: "; ")
                        + "); give the same options to continue it, or another --output")
            }
        } else {
            try AtomicFile.write(
                String(
                    decoding: try JSONSerialization.data(withJSONObject: now, options: [.prettyPrinted, .sortedKeys]),
                    as: UTF8.self), to: path)
        }
    }

    /// Seconds the remaining cells should take, from the cells that ran (per task where possible).
    func eta(_ remaining: ArraySlice<CompareCell>, _ seconds: [String: [Double]]) -> Double? {
        let everything = seconds.values.flatMap { $0 }
        guard !everything.isEmpty else { return nil }
        let mean = { (xs: [Double]) in xs.reduce(0, +) / Double(xs.count) }
        return remaining.reduce(0) { acc, c in
            isDone(c) ? acc : acc + mean(seconds[c.task] ?? everything)
        }
    }

    @discardableResult
    /// The tables of every finished run in the output, this grid's first (a later command with a smaller
    /// grid, such as the speed measurement alone, keeps the others in the tables), and the speed section.
    public func writeTables() throws -> CompareTable {
        let t = CompareTable(cells: CompareTable.finished(in: grid.output, first: grid))
        try AtomicFile.write(t.json(grid: grid, common: common), to: grid.output + "/results.json")
        try AtomicFile.write(
            t.markdown() + CompareTable.speedMarkdown(directory: grid.output), to: grid.output + "/results.md")
        try AtomicFile.write(t.csv(), to: grid.output + "/results.csv")
        return t
    }
}

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
        public var metricKeys: [String] {
            regression ? ["test_pearson", "test_spearman"] : ["test_accuracy", "test_macro_f1"]
        }
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
        let dev = { (j: Int) in rows[j].stat(rows[j].devKey)?.mean ?? -.infinity }
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

    /// Every row; `lr` empty for a method's own rate, `chosen` 1 for the rows the table reports.
    public func csv() -> String {
        let keys =
            ["test_accuracy", "test_macro_f1", "test_pearson", "test_spearman"] + Self.columns.map(\.0)
            + ["dev_macro_f1", "dev_pearson"]
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
            [
                "test_accuracy", "test_macro_f1", "test_pearson", "test_spearman", "dev_accuracy", "dev_macro_f1",
                "dev_pearson",
            ] + Self.columns.map(\.0)
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
