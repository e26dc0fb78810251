import Foundation
import Methods
import Models
import RankwiseCore
import SafeTensors
import Training

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
        guard let first = pending.first else { return }
        let base = try BaseModel.resolve(try options(for: first).data.model, quiet: true)
        for task in pending.map(\.task).uniqued() {
            let cellOptions = try options(for: pending.first { $0.task == task }!)
            do {
                if base.isDecoder {
                    _ = try LanguageModelData.sets(
                        try DataSuite.resolve(cellOptions.data, quiet: true), base: base,
                        maxLength: cellOptions.training.resolved(
                            languageModel: true, contextLength: base.contextLength
                        ).maxLength ?? 1,
                        print: { _ in })
                } else {
                    _ = try FineTuneData.sets(cellOptions.data, print: { _ in })
                }
            } catch { throw TrainError("task \(task): \(error)") }
        }
        var built = Set<String>()
        for c in pending where built.insert("\(c.method) \(c.budget)").inserted {
            let cellOptions = try options(for: c)
            do {
                let backbone = try base.backbone(pooled: base.isDecoder ? nil : true)
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
