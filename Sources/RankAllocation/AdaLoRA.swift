import Adapters
import Foundation
import Models
import RankwiseCore
import SafeTensors
import Training

/// AdaLoRA settings with PEFT's names and defaults.
public struct AdaLoRAConfig: Sendable, Codable, Equatable {
    public var initR = 12
    public var targetR = 8
    public var alpha: Float = 16
    public var dropout: Float = 0.05
    public var targetModules = ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"]
    public var beta1: Float = 0.85
    public var beta2: Float = 0.85
    public var tinit = 0
    public var tfinal = 0
    public var deltaT = 1
    public var totalStep = 0
    public var orthRegWeight: Float = 0.5
    public init() {}

    /// Rejects schedules that cannot work, before any training happens.
    public func validate() throws {
        func bad(_ m: String) -> ModelError { ModelError("AdaLoRA: " + m) }
        guard initR > 0 else { throw bad("init_r must be positive (got \(initR))") }
        guard targetR >= 0 && targetR <= initR else { throw bad("target_r (\(targetR)) must be between 0 and init_r (\(initR))") }
        guard totalStep > 0 else { throw bad("total_step must be positive (got \(totalStep))") }
        guard tinit >= 0, tfinal >= 0 else { throw bad("tinit and tfinal must not be negative") }
        guard tinit + tfinal < totalStep else {
            throw bad("tinit (\(tinit)) + tfinal (\(tfinal)) must be below the total steps (\(totalStep)): no step would be left for allocating ranks")
        }
        guard deltaT > 0 else { throw bad("deltaT must be positive (got \(deltaT))") }
        guard beta1 > 0 && beta1 < 1 && beta2 > 0 && beta2 < 1 else { throw bad("beta1 and beta2 must be in (0, 1)") }
        guard orthRegWeight >= 0 else { throw bad("orth_reg_weight must not be negative") }
        guard !targetModules.isEmpty else { throw bad("target_modules is empty") }
    }
}

/// AdaLoRA as PEFT implements it: SVD adapters, orthogonal regulariser, smoothed sensitivity ×
/// uncertainty scores, a cubic budget schedule, a global threshold over all triplets, and a fixed mask
/// in the final phase. The trainer calls `step(_:)` after each optimizer step.
public final class AdaLoRAAllocator: CheckpointState {
    public let config: AdaLoRAConfig
    /// Adapters by module path, in a fixed (sorted) order.
    public let adapters: [(String, SVDAdapter)]
    public let initBudget: Int
    public let targetBudget: Int
    /// Exponential moving averages of |p·g| and of its deviation, per parameter.
    var emaIpt: [ObjectIdentifier: Tensor] = [:]
    var emaUnc: [ObjectIdentifier: Tensor] = [:]
    /// The kept triplets after the last masking (nil before any).
    public internal(set) var rankPattern: [String: [Bool]]?
    public var onAllocate: (Int, Int, [String: Int]) -> Void = { _, _, _ in }

    public init(adapters: [String: SVDAdapter], config: AdaLoRAConfig) {
        self.config = config
        self.adapters = adapters.sorted { $0.key < $1.key }
        initBudget = adapters.values.reduce(0) { $0 + $1.rMax }
        targetBudget = config.targetR * adapters.count
    }

    /// Attaches SVD adapters to the targeted linear layers, initialised as PEFT does (A, B ~ N(0, 0.02), E = 0).
    public static func attach(to model: BertModel, config: AdaLoRAConfig, seed: UInt64) throws -> [String: SVDAdapter] {
        try config.validate()
        var rng = SplitMix64(seed: seed)
        let lc = LoRAConfig(r: config.initR, alpha: config.alpha, dropout: config.dropout, targetModules: config.targetModules)
        var out: [String: SVDAdapter] = [:]
        for lin in model.linears where lc.matches(lin.path) {
            let a = Tensor(zeros: [config.initR, lin.inDim]), b = Tensor(zeros: [lin.outDim, config.initR])
            for i in 0..<a.count { a[i] = 0.02 * rng.nextNormal() }
            for i in 0..<b.count { b[i] = 0.02 * rng.nextNormal() }
            let ad = SVDAdapter(path: lin.path, inDim: lin.inDim, outDim: lin.outDim, rMax: config.initR, initialRank: config.initR,
                                alpha: config.alpha, dropout: config.dropout, a: a, e: Tensor(zeros: [config.initR, 1]), b: b)
            lin.adapter = ad
            for p in ad.params { model.params.add(p) }
            out[lin.path] = ad
        }
        guard !out.isEmpty else { throw ModelError("AdaLoRA: target_modules \(config.targetModules) match no linear layer") }
        return out
    }

    /// PEFT's budget schedule: (budget, whether to mask at this step).
    public func budget(at step: Int) -> (Int, Bool) {
        let c = config
        if step <= c.tinit { return (initBudget, false) }
        if step > c.totalStep - c.tfinal { return (targetBudget, true) }
        let mul = 1 - Double(step - c.tinit) / Double(c.totalStep - c.tfinal - c.tinit)
        let b = Int(Double(initBudget - targetBudget) * mul * mul * mul + Double(targetBudget))
        return (b, step % c.deltaT == 0)
    }

    func updateImportance() {
        let b1 = config.beta1, b2 = config.beta2
        for (_, ad) in adapters {
            for p in ad.params {
                guard let g = p.grad else { continue }
                let id = ObjectIdentifier(p)
                let ipt = emaIpt[id] ?? { let t = Tensor(zeros: p.shape); emaIpt[id] = t; return t }()
                let unc = emaUnc[id] ?? { let t = Tensor(zeros: p.shape); emaUnc[id] = t; return t }()
                let w = p.value.data, gd = g.data, pi = ipt.data, pu = unc.data
                for i in 0..<p.count {
                    let s = abs(w[i] * gd[i])
                    pi[i] = b1 * pi[i] + (1 - b1) * s
                    pu[i] = b2 * pu[i] + (1 - b2) * abs(s - pi[i])
                }
            }
        }
    }

    /// Triplet scores of one adapter: E's score + mean of A's row + mean of B's column.
    public func tripletScores(_ ad: SVDAdapter) -> [Float] {
        func score(_ p: Param) -> [Float] {
            let id = ObjectIdentifier(p)
            guard let i = emaIpt[id], let u = emaUnc[id] else { return [Float](repeating: 0, count: p.count) }
            return (0..<p.count).map { i[$0] * u[$0] }
        }
        let sa = score(ad.a), se = score(ad.e), sb = score(ad.b)
        let r = ad.rMax
        return (0..<r).map { j in
            var ma: Float = 0
            for k in 0..<ad.inDim { ma += sa[j * ad.inDim + k] }
            var mb: Float = 0
            for k in 0..<ad.outDim { mb += sb[k * r + j] }
            return se[j] + ma / Float(ad.inDim) + mb / Float(ad.outDim)
        }
    }

    func maskToBudget(_ budget: Int) -> [String: [Bool]] {
        let scores = adapters.map { tripletScores($0.1) }
        let all = scores.flatMap { $0 }.sorted()
        let k = initBudget - budget
        var pattern: [String: [Bool]] = [:]
        let threshold: Float = k > 0 ? all[k - 1] : -Float.infinity  // torch.kthvalue (k-th smallest)
        for ((path, ad), sc) in zip(adapters, scores) {
            var keep = [Bool](repeating: true, count: ad.rMax)
            for j in 0..<ad.rMax where sc[j] <= threshold {
                keep[j] = false
                ad.e.value[j] = 0
            }
            ad.active = keep
            pattern[path] = keep
        }
        return pattern
    }

    func applyPattern() {
        guard let rankPattern else { return }
        for (path, ad) in adapters {
            guard let keep = rankPattern[path] else { continue }
            for j in 0..<ad.rMax where !keep[j] { ad.e.value[j] = 0 }
            ad.active = keep
        }
    }

    /// PEFT's `update_and_allocate(global_step)`.
    public func step(_ globalStep: Int) {
        let c = config
        let last = c.totalStep - c.tfinal
        if globalStep < last {
            updateImportance()
            let (b, mask) = budget(at: globalStep)
            if mask {
                rankPattern = maskToBudget(b)
                onAllocate(globalStep, b, ranks)
            }
        } else if globalStep == last {
            let (b, _) = budget(at: globalStep)
            rankPattern = maskToBudget(b)
            emaIpt = [:]; emaUnc = [:]
            onAllocate(globalStep, b, ranks)
        } else {
            applyPattern()
        }
    }

    /// Current rank of every module.
    public var ranks: [String: Int] { Dictionary(uniqueKeysWithValues: adapters.map { ($0.0, $0.1.rank) }) }

    /// The rank pattern to save: the last mask, or every rank kept when no allocation happened yet.
    public var patternForSaving: [String: [Bool]] {
        rankPattern ?? Dictionary(uniqueKeysWithValues: adapters.map { ($0.0, [Bool](repeating: true, count: $0.1.rMax)) })
    }

    // MARK: CheckpointState

    public func checkpointTensors() -> [TensorToWrite] {
        var t: [TensorToWrite] = []
        for (path, ad) in adapters {
            for p in ad.params {
                let id = ObjectIdentifier(p)
                if let i = emaIpt[id], let u = emaUnc[id] {
                    t.append(TensorToWrite(name: "adalora.ipt." + p.name, shape: p.shape, floats: i.array))
                    t.append(TensorToWrite(name: "adalora.unc." + p.name, shape: p.shape, floats: u.array))
                }
            }
            if let keep = rankPattern?[path] {
                t.append(TensorToWrite(name: "adalora.pattern." + path, shape: [keep.count], floats: keep.map { $0 ? 1 : 0 }))
            }
        }
        return t
    }

    public func restore(from f: SafeTensorsFile) throws {
        emaIpt = [:]; emaUnc = [:]
        var pattern: [String: [Bool]] = [:]
        for (path, ad) in adapters {
            for p in ad.params {
                if f.contains("adalora.ipt." + p.name) {
                    emaIpt[ObjectIdentifier(p)] = Tensor(shape: p.shape, values: try f.floats("adalora.ipt." + p.name))
                    emaUnc[ObjectIdentifier(p)] = Tensor(shape: p.shape, values: try f.floats("adalora.unc." + p.name))
                }
            }
            if f.contains("adalora.pattern." + path) { pattern[path] = try f.floats("adalora.pattern." + path).map { $0 != 0 } }
        }
        rankPattern = pattern.isEmpty ? nil : pattern
        if let rankPattern { for (path, ad) in adapters { if let k = rankPattern[path] { ad.active = k } } }
    }
}
