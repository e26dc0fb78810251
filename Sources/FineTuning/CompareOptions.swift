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
    public var taskList: [String] {
        suite ? DataSuite.suiteNames + tasks.filter { !DataSuite.suiteNames.contains($0) } : tasks
    }

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
