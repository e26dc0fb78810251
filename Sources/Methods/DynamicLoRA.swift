import Adapters
import Foundation
import Models
import RankwiseCore
import SafeTensors
import Training

/// Dynamic LoRA's options. No code or equations of the paper (Liao et al. 2025, arXiv 2501.14859) are
/// public; what follows is our reading of its abstract, every choice an option.
public struct DynamicLoRAConfig: Settings, Sendable, Equatable {
    public var lora = LoRATargeting()
    /// Temperature of the softmax that turns the layers' importance (divided by its mean) into weights.
    public var temperature: Float = 5
    /// EMA factor of each layer's importance Σ |p ⊙ ∂L/∂p| over its adapter parameters.
    public var importanceBeta: Float = 0.85
    /// Steps between two updates of the layer weights (the first at this step; before it every weight is 1).
    public var updateEvery = 10
    /// The per-sequence input gate sigmoid(v · mean x + c) on every adapter.
    public var gate = true
    /// c at the start (v = 0): the gate starts at sigmoid(c).
    public var gateBias: Float = 4
    public init() {}

    public static let help = [
        "temperature": "softmax temperature of the layer weights (importance divided by its mean); large: all near 1",
        "importanceBeta": "EMA factor of each layer's importance, sum of |p * grad| over its adapter parameters",
        "updateEvery": "steps between updates of the layer weights",
        "gate": "input gate sigmoid(v . mean_t x + c) multiplying each adapter's output (PEFT cannot express it: kept in rankwise_gates.safetensors)",
        "gateBias": "the gate's initial bias c (v starts at 0): the gate starts at sigmoid(c)",
    ]

    public func validate() throws {
        try lora.validate(method: "Dynamic LoRA")
        guard temperature > 0, temperature.isFinite else { throw SettingsError("Dynamic LoRA: --temperature must be positive") }
        guard importanceBeta >= 0, importanceBeta < 1 else { throw SettingsError("Dynamic LoRA: --importance-beta must be in [0, 1)") }
        guard updateEvery >= 1 else { throw SettingsError("Dynamic LoRA: --update-every must be at least 1") }
    }
}

/// Each layer's smoothed importance and the weights in use (checkpointed: a resumed run goes on exactly).
public final class DynamicLoRAState: CheckpointState {
    public var importance: [Double], weights: [Float]
    /// Called after a restore (the method hands the restored weights to its adapters).
    var onRestore: () -> Void = {}
    init(layers: Int) { importance = [Double](repeating: 0, count: layers); weights = [Float](repeating: 1, count: layers) }
    public func checkpointTensors() -> [TensorToWrite] {
        [TensorToWrite(name: "importance", shape: [importance.count], int64s: importance.map { Int64(bitPattern: $0.bitPattern) }),
         TensorToWrite(name: "weights", shape: [weights.count], floats: weights)]
    }
    public func restore(from f: CheckpointSection) throws {
        importance = try f.ints("importance", count: importance.count).map { Double(bitPattern: UInt64(bitPattern: $0)) }
        weights = try f.floats("weights", count: weights.count)
        onRestore()
    }
}

/// `--method dynamic`: LoRA whose layers are weighted by their importance during training, plus an
/// input gate per adapted module. Every `update-every` steps each layer's weight becomes
/// L · softmax(I / mean(I) / τ) (mean 1 over the L layers), I the EMA of Σ |p ⊙ ∂L/∂p| over the layer's
/// LoRA parameters; the adapters' outputs are scaled by their layer's weight. Saved as PEFT LoRA with the
/// layer weight folded into B; the gates (which PEFT cannot express) go to `rankwise_gates.safetensors`,
/// and `merge` refuses a gated adapter.
public final class DynamicLoRAMethod: TuningMethod {
    public let name = "dynamic"
    public let config: DynamicLoRAConfig
    public let dynamicAdapters: [(String, DynamicLoRAAdapter)]
    /// The layer index of each adapter, and the layers in order.
    let layerOf: [Int], layers: [Int]
    let state: DynamicLoRAState

    public init(config: DynamicLoRAConfig, encoder: BertModel, seed: UInt64) throws {
        try config.validate()
        self.config = config
        let lc = LoRAConfig(r: config.lora.r, alpha: config.lora.alpha, dropout: config.lora.loraDropout, targetModules: config.lora.targetModules)
        var rng = SplitMix64(seed: seed)
        var out: [(String, DynamicLoRAAdapter)] = []
        for lin in try config.lora.targets(in: encoder, method: "Dynamic LoRA", rank: lc.r) {
            let a = LoRA.initialA(r: lc.r, inDim: lin.inDim, rng: &rng)
            let ad = DynamicLoRAAdapter(path: lin.path, inDim: lin.inDim, outDim: lin.outDim, config: lc, a: a, b: Tensor(zeros: [lin.outDim, lc.r]),
                                        gate: config.gate, gateBiasInit: config.gateBias, layout: { [unowned encoder] in encoder.layout })
            lin.adapter = ad
            for p in ad.params { encoder.params.add(p) }
            out.append((lin.path, ad))
        }
        dynamicAdapters = out.sorted { $0.0 < $1.0 }
        let idx = dynamicAdapters.map { Self.layerIndex($0.0) }
        let ls = Array(Set(idx)).sorted()
        layers = ls
        layerOf = idx.map { ls.firstIndex(of: $0)! }
        state = DynamicLoRAState(layers: ls.count)
        state.onRestore = { [unowned self] in self.apply() }
    }

    static func layerIndex(_ path: String) -> Int {
        let parts = path.split(separator: ".")
        guard let i = parts.firstIndex(of: "layer"), i + 1 < parts.count, let l = Int(parts[i + 1]) else { return -1 }
        return l
    }

    public var adapters: [(String, LinearAdapter)] { dynamicAdapters.map { ($0.0, $0.1 as LinearAdapter) } }
    public var checkpointStates: [String: CheckpointState] { ["dynamic": state] }
    public var ranks: [String: Int] { Dictionary(uniqueKeysWithValues: dynamicAdapters.map { ($0.0, config.lora.r) }) }
    public var maxRank: Int { config.lora.r }
    public var summary: String { "Dynamic LoRA r \(config.lora.r), layer weights every \(config.updateEvery) steps (temperature \(config.temperature))" + (config.gate ? ", input gates" : "") }

    /// The layer weights L · softmax(I / mean(I) / τ) for importances `I`.
    public static func weights(importance: [Double], temperature: Float) -> [Float] {
        let mean = importance.reduce(0, +) / Double(max(1, importance.count))
        guard mean > 0 else { return importance.map { _ in 1 } }
        let z = importance.map { $0 / mean / Double(temperature) }
        let mx = z.max() ?? 0
        let e = z.map { exp($0 - mx) }
        let sum = e.reduce(0, +)
        return e.map { Float(Double(importance.count) * $0 / sum) }
    }

    /// The importance EMA from this step's gradients; the weights every `update-every` steps.
    public func afterOptimizerStep(_ context: StepContext) throws {
        var s = [Double](repeating: 0, count: layers.count)
        for (i, (_, ad)) in dynamicAdapters.enumerated() {
            for p in ad.lora.params {
                guard let g = p.grad else { continue }
                var acc: Double = 0
                for k in 0..<p.count { acc += Double(abs(p.value[k] * g[k])) }
                s[layerOf[i]] += acc
            }
        }
        let b = Double(config.importanceBeta)
        for l in 0..<layers.count { state.importance[l] = b * state.importance[l] + (1 - b) * s[l] }
        if context.step % config.updateEvery == 0 {
            state.weights = Self.weights(importance: state.importance, temperature: config.temperature)
            apply()
            context.log(["event": "layer_weights", "step": context.step, "layers": layers, "weights": state.weights.map(Double.init),
                         "importance": state.importance])
        }
    }

    func apply() { for (i, (_, ad)) in dynamicAdapters.enumerated() { ad.layerWeight = state.weights[layerOf[i]] } }

    public func save(directory: String, model: SequenceClassifier, metadata: AdapterMetadata) throws {
        var exported: [String: LoRAAdapter] = [:], gates: [TensorToWrite] = []
        for (path, ad) in dynamicAdapters {
            let b = Tensor(zeros: ad.lora.b.shape)
            for k in 0..<b.count { b[k] = ad.lora.b.value[k] * ad.layerWeight }
            exported[path] = LoRAAdapter(path: path, inDim: ad.lora.a.shape[1], outDim: b.shape[0], config: LoRAConfig(r: ad.lora.r, alpha: config.lora.alpha), a: ad.lora.a.value, b: b)
            if let w = ad.gateWeight, let c = ad.gateBias {
                gates.append(TensorToWrite(name: w.name, shape: w.shape, floats: w.value.array))
                gates.append(TensorToWrite(name: c.name, shape: c.shape, floats: c.value.array))
            }
        }
        try PEFTFormat.save(directory: directory, model: model, adapters: exported,
                            config: LoRAConfig(r: config.lora.r, alpha: config.lora.alpha, dropout: config.lora.loraDropout, targetModules: config.lora.targetModules), extra: metadata)
        let gatesFile = directory + "/" + Self.gatesFile
        if gates.isEmpty { try? FileManager.default.removeItem(atPath: gatesFile) } else { try SafeTensorsWriter.write(gates, metadata: ["format": "pt"], to: gatesFile) }
    }

    /// The extra tensor file of the input gates next to a PEFT export.
    public static let gatesFile = "rankwise_gates.safetensors"

    /// Reads the PEFT LoRA directory (layer weights folded into B) and, when present, the gates.
    public static func load(directory: String, encoder: BertModel) throws -> (TuningMethod, WeightSource?) {
        let lc = try PEFTFormat.readConfig(directory: directory)
        let gatesPath = directory + "/" + gatesFile
        var c = DynamicLoRAConfig()
        c.lora.r = lc.r; c.lora.alpha = lc.alpha; c.lora.loraDropout = lc.dropout; c.lora.targetModules = lc.targetModules
        c.gate = FileManager.default.fileExists(atPath: gatesPath)
        let m = try DynamicLoRAMethod(config: c, encoder: encoder, seed: 0)
        let head = try PEFTFormat.loadWeights(directory: directory, adapters: Dictionary(uniqueKeysWithValues: m.dynamicAdapters.map { ($0.0, $0.1.lora) }))
        if c.gate {
            let f: SafeTensorsFile
            do { f = try SafeTensorsFile(path: gatesPath) } catch { throw ModelError("\(error)") }
            for (_, ad) in m.dynamicAdapters {
                for p in [ad.gateWeight!, ad.gateBias!] {
                    let v = try f.floats(p.name)
                    guard v.count == p.count, v.allSatisfy(\.isFinite) else { throw ModelError("\(gatesPath): \(p.name) has \(v.count) values, expected \(p.count) finite ones") }
                    _ = p.value.buffer.update(from: v)
                }
            }
        }
        return (m, head)
    }
}
