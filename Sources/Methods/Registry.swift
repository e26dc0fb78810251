import Adapters
import Foundation
import Models
import RankwiseCore
import Training

/// A method's options: declared once (`Settings`) and checked as a whole before anything is built or loaded.
public protocol MethodSettings: Settings {
    func validate() throws
}

extension LoRAConfig: MethodSettings {}
extension DoRAConfig: MethodSettings {}
extension SoRAConfig: MethodSettings {}
extension DynamicLoRAConfig: MethodSettings {}
extension AdaLoRAConfig: MethodSettings {}
extension SalientLoRAConfig: MethodSettings {}
extension ElaLoRAConfig: MethodSettings {}
extension TsqLoRAConfig: MethodSettings {}

/// A registered method: its name, a one-line description, its options (declared once, by its
/// `Settings` type) and how to create it or load a saved adapter. Commands and the fine-tuning job
/// only go through this table, so a new method is one file plus one line in `MethodRegistry.all`.
public struct MethodEntry: @unchecked Sendable {
    public let name: String
    public let summary: String
    /// Every option of the method, nested groups included.
    public let options: [SettingInfo]
    /// The closest PEFT method (`lora`, `dora` or `adalora`), which `bench train` runs next to it.
    public let peftAnalogue: String
    /// Options `bench train` sets so the method runs at the shapes of LoRA r=8 and does its most work.
    public let benchOptions: [String: String]
    /// Options (the method's and training ones, such as its learning rate) that `rankwise compare` uses
    /// for a rank budget: the average final rank per module. A method without its own gets `--r BUDGET`.
    public let budgetOptions: @Sendable (Int) -> [String: String]
    let create: ([String: String], any Backbone, UInt64) throws -> (TuningMethod, String)
    let check: ([String: String]) throws -> Void
    /// (method name, adapter directory, backbone) → the loaded method and the classifier weights.
    let loader: (String, String, any Backbone) throws -> (TuningMethod, WeightSource?)

    public init<C: MethodSettings>(
        name: String, summary: String, config: C.Type, peftAnalogue: String, benchOptions: [String: String] = [:],
        budgetOptions: (@Sendable (Int) -> [String: String])? = nil,
        make: @escaping (C, any Backbone, UInt64) throws -> TuningMethod,
        load:
            @escaping (_ name: String, _ directory: String, _ backbone: any Backbone) throws -> (
                TuningMethod, WeightSource?
            )
    ) {
        self.name = name
        self.summary = summary
        self.peftAnalogue = peftAnalogue
        self.benchOptions = benchOptions
        options = SettingsTable.options(of: config)
        let hasR = options.contains { $0.key == "r" }
        self.budgetOptions = budgetOptions ?? { hasR ? ["r": "\($0)"] : [:] }
        create = { values, backbone, seed in
            let c = try Self.fillingDefaultTargets(try SettingsTable.decode(C.self, values: values), backbone: backbone)
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            return (try make(c, backbone, seed), String(decoding: try enc.encode(c), as: UTF8.self))
        }
        check = { values in try SettingsTable.decode(C.self, values: values).validate() }
        loader = load
    }

    /// `config` with every empty `target_modules` replaced by the backbone's defaults, so that run.json, checkpoint
    /// fingerprints and saved adapters name the modules (as they did when the default was a fixed list).
    static func fillingDefaultTargets<C: Codable>(_ config: C, backbone: any Backbone) throws -> C {
        func fill(_ value: Any) -> Any {
            if let object = value as? [String: Any] {
                var out: [String: Any] = [:]
                for (key, inner) in object {
                    let isEmptyTargets = key == "targetModules" && (inner as? [Any])?.isEmpty == true
                    out[key] = isEmptyTargets ? backbone.defaultTargetModules : fill(inner)
                }
                return out
            }
            return value
        }
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(config))
        return try JSONDecoder().decode(C.self, from: JSONSerialization.data(withJSONObject: fill(json)))
    }

    /// Decodes and validates `values` (option key → text) without a model: the errors a run would stop on,
    /// given before its data is loaded.
    public func check(options values: [String: String]) throws {
        try check(values)
    }

    /// Attaches the method to `backbone` with `values` (option key → text) over its defaults. Returns the
    /// method and its full configuration as JSON (for the run record and the resume fingerprint).
    public func make(
        options values: [String: String], backbone: any Backbone, seed: UInt64
    ) throws -> (method: TuningMethod, configJSON: String) {
        try create(values, backbone, seed)
    }

    /// Loads an adapter this method saved into `backbone`; returns it and the classifier weights.
    public func load(directory: String, backbone: any Backbone) throws -> (method: TuningMethod, head: WeightSource?) {
        try loader(name, directory, backbone)
    }

    /// Whether `key` (any spelling) is one of this method's options.
    public func hasOption(_ key: String) -> Bool {
        let k = SettingsTable.normalise(key)
        return options.contains { $0.key == k || $0.aliases.contains(k) }
    }
}

public enum MethodRegistry {
    /// Every method, in the order `rankwise methods` lists them.
    public static let all: [MethodEntry] = [
        MethodEntry(
            name: "lora", summary: "LoRA (Hu et al. 2021): the same rank r on every targeted module, PEFT's LoraConfig",
            config: LoRAConfig.self, peftAnalogue: "lora",
            budgetOptions: { ["r": "\($0)", "alpha": "\(2 * $0)", "lr": "1e-3"] },
            make: { try LoRAMethod(config: $0, backbone: $1, seed: $2) },
            load: { try LoRAMethod.load(directory: $1, backbone: $2) }),
        MethodEntry(
            name: "dora",
            summary:
                "DoRA (Liu et al. 2024) as PEFT implements it (use_dora): a trained magnitude per output row times "
                + "the row-normalised W + s·B A",
            config: DoRAConfig.self, peftAnalogue: "dora",
            budgetOptions: { ["r": "\($0)", "alpha": "\(2 * $0)", "lr": "1e-3"] },
            make: { try DoRAMethod(config: $0, backbone: $1, seed: $2) },
            load: { try DoRAMethod.load(directory: $1, backbone: $2) }),
        MethodEntry(
            name: "sora",
            summary:
                "SoRA (Ding et al. 2023): LoRA with a gate between down and up projection, driven to zero by L1 and a "
                + "proximal step; zero-gate ranks dropped",
            config: SoRAConfig.self, peftAnalogue: "lora",
            budgetOptions: { ["r": "\($0)", "alpha": "\(2 * $0)", "lr": "1e-3"] },
            make: { try SoRAMethod(config: $0, backbone: $1, seed: $2) },
            load: { try SoRAMethod.load(directory: $1, backbone: $2) }),
        MethodEntry(
            name: "dynamic",
            summary:
                "Dynamic LoRA (Liao et al. 2025, our reading): LoRA whose layers are weighted by a softmax of their "
                + "smoothed sensitivity (output scaled, or ranks moved with --mode ranks), with an input gate per "
                + "module",
            config: DynamicLoRAConfig.self, peftAnalogue: "lora",
            benchOptions: ["update-every": "10"],
            budgetOptions: { ["r": "\($0)", "alpha": "\(2 * $0)", "lr": "1e-3", "max-rank": "\(2 * $0)"] },
            make: { try DynamicLoRAMethod(config: $0, backbone: $1, seed: $2) },
            load: { try DynamicLoRAMethod.load(directory: $1, backbone: $2) }),
        MethodEntry(
            name: "adalora",
            summary:
                "AdaLoRA (Zhang et al. 2023) as PEFT implements it: SVD adapters pruned from init_r to r by smoothed "
                + "sensitivity",
            config: AdaLoRAConfig.self, peftAnalogue: "adalora",
            benchOptions: ["init-r": "8", "r": "4", "tinit": "0", "tfinal": "10", "delta-t": "1"],
            budgetOptions: svdBudget,
            make: { try AdaLoRAMethod(config: $0, backbone: $1, seed: $2) }, load: LoadedSVDMethod.load),
        MethodEntry(
            name: "salientlora",
            summary: "SalientLoRA (Ke et al. 2024): ranks pruned by salience over a widening time-series window",
            config: SalientLoRAConfig.self, peftAnalogue: "adalora",
            benchOptions: [
                "init-r": "8", "r": "4", "tinit": "0", "tfinal": "0", "window-start": "10", "window-end": "200",
            ],
            budgetOptions: svdBudget,
            make: { try SalientLoRAMethod(config: $0, backbone: $1, seed: $2) }, load: LoadedSVDMethod.load),
        MethodEntry(
            name: "elalora",
            summary:
                "ElaLoRA (Chang et al. 2025): ranks pruned and grown between modules by sensitivity, total rank kept",
            config: ElaLoRAConfig.self, peftAnalogue: "adalora",
            benchOptions: ["r": "8", "max-rank": "8", "tinit": "0", "tfinal": "0", "delta-t": "1"],
            budgetOptions: elasticBudget,
            make: { try ElaLoRAMethod(config: $0, backbone: $1, seed: $2) }, load: LoadedSVDMethod.load),
        MethodEntry(
            name: "tsqlora",
            summary:
                "TsqLoRA (Chen et al. 2025): quality-weighted batches, ranks from the frozen weights' sensitivity, "
                + "then ElaLoRA's prune-and-grow",
            config: TsqLoRAConfig.self, peftAnalogue: "adalora",
            benchOptions: ["r": "8", "max-rank": "8", "tinit": "1", "tfinal": "0", "delta-t": "1"],
            budgetOptions: elasticBudget,
            make: { try TsqLoRAMethod(config: $0, backbone: $1, seed: $2) }, load: LoadedSVDMethod.load),
    ]

    /// Budget options measured on the tweets (scripts/compare-methods.sh): pruning methods start at 1.5x
    /// the budget with AdaLoRA's orthogonality weight 0.1; prune-and-grow methods may grow a module to 2x;
    /// SVD adapters learn at 5e-3, LoRA at 1e-3. Alpha follows the rank a method starts with, as LoRA's 2r does: an
    /// SVD adapter's output scale alpha / initial rank is then the same at every budget (with alpha fixed at 16, a
    /// budget-2 ElaLoRA adapter's output scale was 4x a budget-8 one's).
    static let svdBudget: @Sendable (Int) -> [String: String] = { budget in
        // Alpha 4/3 of the starting rank: 16 at budget 8 (12 ranks), 4 at budget 2 (3 ranks), also at odd budgets.
        let startRank = (budget * 3 + 1) / 2
        return [
            "r": "\(budget)", "alpha": "\(Double(4 * startRank) / 3)", "init-r": "\(startRank)", "lr": "5e-3",
            "orth-reg-weight": "0.1",
        ]
    }
    static let elasticBudget: @Sendable (Int) -> [String: String] = {
        ["r": "\($0)", "alpha": "\(2 * $0)", "max-rank": "\(2 * $0)", "lr": "5e-3"]
    }

    public static var names: [String] { all.map(\.name) }

    /// The method called `name`, or an error listing the registered ones.
    public static func entry(_ name: String) throws -> MethodEntry {
        guard let e = all.first(where: { $0.name == name }) else {
            throw ModelError("unknown method \"\(name)\" (registered: \(names.joined(separator: ", ")))")
        }
        return e
    }

    /// The method that saved the adapter directory: `rankwise.json`'s method when registered, else
    /// PEFT's `peft_type` (LORA → lora, ADALORA → adalora).
    public static func entry(forAdapter directory: String) throws -> MethodEntry {
        if let m = PEFTFormat.readExtra(directory: directory)?.method, let e = all.first(where: { $0.name == m }) {
            return e
        }
        let file = directory + "/adapter_config.json"
        guard let d = FileManager.default.contents(atPath: file),
            let o = (try? JSONSerialization.jsonObject(with: d)) as? [String: Any]
        else {
            throw ModelError("\(file): missing or not JSON")
        }
        switch o["peft_type"] as? String {
        case "LORA":
            if PEFTFormat.isDoRA(directory: directory) { return try entry("dora") }
            // per-module ranks: SoRA's export
            if let p = o["rank_pattern"] as? [String: Any], !p.isEmpty { return try entry("sora") }
            return try entry("lora")
        case "ADALORA": return try entry("adalora")
        case let t: throw ModelError("\(file): peft_type \(t ?? "missing") is not one Rankwise loads (LORA, ADALORA)")
        }
    }

    /// The registered method that declares option `key`, other than `except`.
    public static func owner(ofOption key: String, except: String) -> String? {
        all.first { $0.name != except && $0.hasOption(key) }?.name
    }
}
