import Adapters
import Foundation
import Models
import RankwiseCore
import SafeTensors
import Training

/// ElaLoRA (Chang et al. 2025, "Elastic & Learnable Low-Rank Adaptation"): every module starts at
/// rank `lora.r`; in rounds between a warm-up and a final phase, the least important ranks are pruned
/// and the modules whose ranks look most important grow, so the total rank stays the same while it
/// moves to where it matters. Importance is AdaLoRA's smoothed sensitivity (`Sensitivity`).
///
/// Read from the authors' code (HuandongChang/ElaLoRA, loralib/elalora.py) and done the same: offers of
/// the k lowest-scoring ranks per module (never a module's last rank), the b lowest offers pruned, the
/// modules holding the b highest offers grow one rank each, b decaying as round(b0·(1 − p³)), a new
/// rank's A row and B column random, orthogonal to the module's others and of unit norm, with E = 0,
/// and the scale fixed at alpha / r. Ours, and why:
/// - ranks are preallocated to `maxRank` with an active mask (the reference resizes tensors), so
///   growth stops at `maxRank`; when a chosen module is full, the next-highest offer grows instead;
/// - the reference rebuilds the optimizer after each round and so loses every parameter's Adam moments
///   and leaves its learning-rate scheduler behind (the rate stays at its peak from the first round on).
///   Here only a pruned or grown rank's moments are reset; everything else keeps its moments and the
///   schedule continues;
/// - a new rank is made orthogonal to the module's other ranks exactly (the reference projects once,
///   which is orthogonal only when the others already are),
///   and E = 0 exactly (with `--adapter-init peft`) or its B column 0 and E = init-e (with `zero-b`, the
///   default: the new rank learns from the next step, as LoRA's B does), so growing does not change the
///   model's output;
/// - the orthogonal regulariser covers active ranks only (inactive ones do not exist in the reference);
/// - steps are counted as everywhere in Rankwise (completed optimizer steps): a round happens after
///   step s when tinit < s ≤ total − tfinal and (s − tinit) is a multiple of deltaT.
public struct ElaLoRAConfig: Settings, Sendable, Equatable {
    /// `lora.r`: every module's initial rank, and the average rank throughout.
    public var lora = LoRATargeting()
    public var maxRank = 16
    public var offersPerModule = 2
    public var ranksPerRound = 4
    public var cubicDecay = true
    public var phases = PhaseSettings()
    public var deltaT: Int? = nil
    public var deltaTFraction = 0.01
    public var beta1: Float = 0.85
    public var beta2: Float = 0.85
    public var orthRegWeight: Float = 0.1
    public var start = SVDStartSettings()
    public init() {}

    public static let help = [
        "maxRank": "ranks preallocated per module: a module grows at most to this rank",
        "offersPerModule": "k: each module offers its k lowest-scoring ranks per round (never its last)",
        "ranksPerRound": "b: ranks pruned and grown per round (at the start, with --cubic-decay)",
        "cubicDecay": "b decays as round(b0 (1 - p^3)) over the rounds (the paper's scheduler)",
        "tinit": RunPhases.stepHelp("warm-up before the first round", fractionFlag: "tinit-fraction"),
        "tfinal": RunPhases.stepHelp("final phase with fixed ranks", fractionFlag: "tfinal-fraction"),
        "deltaT": RunPhases.stepHelp("interval between rounds", fractionFlag: "delta-t-fraction") + ", at least 1",
        "deltaTFraction": "interval between rounds as a fraction of the run's steps (when --delta-t is not given)",
        "beta1": "EMA factor of the sensitivity |p*g|",
        "beta2": "EMA factor of the sensitivity's uncertainty",
        "orthRegWeight": "weight of the orthogonal regulariser (active ranks)",
    ]
    public static let aliases = ["k": "offersPerModule", "b": "ranksPerRound"]

    /// Errors for options that cannot work, before anything is built (the schedule is checked against the
    /// run's steps when it is known).
    public func validate(method: String = "ElaLoRA") throws {
        try lora.validate(method: method)
        guard maxRank >= lora.r else {
            throw ModelError("\(method): max-rank (\(maxRank)) must be at least r (\(lora.r))")
        }
        guard orthRegWeight >= 0 else { throw ModelError("\(method): orth_reg_weight must not be negative") }
        try phases.validate(method: method)
        try RunPhases.validate([("delta-t-fraction", deltaTFraction)], method: method)
        guard (deltaT ?? 1) > 0 else { throw ModelError("\(method): delta-t must be positive") }
        guard offersPerModule > 0, ranksPerRound >= 0 else {
            throw ModelError("\(method): need offers-per-module (k) >= 1 and ranks-per-round (b) >= 0")
        }
        guard beta1 > 0 && beta1 < 1 && beta2 > 0 && beta2 < 1 else {
            throw ModelError("\(method): beta1 and beta2 must be in (0, 1)")
        }
        _ = try start.kind(method: method)
    }

    public func validate() throws { try validate(method: "ElaLoRA") }
}

/// ElaLoRA's prune-and-grow rounds over SVD adapters. `step(_:)` is called after each optimizer step.
public final class ElaLoRAAllocator: CheckpointState {
    public let config: ElaLoRAConfig
    public let adapters: [(String, SVDAdapter)]
    public let tinit: Int, tfinal: Int, deltaT: Int, totalStep: Int
    let sensitivity: Sensitivity
    let seed: UInt64

    public init(adapters: [(String, SVDAdapter)], config: ElaLoRAConfig, totalStep: Int, seed: UInt64) throws {
        self.adapters = adapters
        self.config = config
        self.totalStep = totalStep
        self.seed = seed
        (tinit, tfinal) = config.phases.steps(of: totalStep)
        deltaT = RunPhases.steps(config.deltaT, fraction: config.deltaTFraction, of: totalStep, minimum: 1)
        sensitivity = Sensitivity(beta1: config.beta1, beta2: config.beta2)
        func bad(_ m: String) -> ModelError { ModelError("ElaLoRA: " + m) }
        guard tinit >= 0, tfinal >= 0, tinit + tfinal < totalStep else {
            throw bad(
                "tinit (\(tinit)) + tfinal (\(tfinal)) must be below the total steps (\(totalStep)): no step would be "
                    + "left for rounds"
            )
        }
        guard deltaT > 0 else { throw bad("delta-t must be positive") }
        try config.phases.validate(method: "ElaLoRA")
        try RunPhases.validate([("delta-t-fraction", config.deltaTFraction)], method: "ElaLoRA")
        guard config.offersPerModule > 0, config.ranksPerRound >= 0 else {
            throw bad("need offers-per-module (k) >= 1 and ranks-per-round (b) >= 0")
        }
        guard config.beta1 > 0 && config.beta1 < 1 && config.beta2 > 0 && config.beta2 < 1 else {
            throw bad("beta1 and beta2 must be in (0, 1)")
        }
    }

    /// Ranks pruned (and grown) in a round after step `step`: b0, or b0·(1 − p³) rounded half to even.
    public func roundSize(at step: Int) -> Int {
        guard config.cubicDecay else { return config.ranksPerRound }
        let p = min(1, max(0, Double(step - tinit) / Double(max(1, totalStep - tfinal - tinit))))
        return Int((Double(config.ranksPerRound) * (1 - p * p * p)).rounded(.toNearestOrEven))
    }

    public func isRound(_ step: Int) -> Bool {
        step > tinit && step <= totalStep - tfinal && (step - tinit) % deltaT == 0
    }

    /// Called after optimizer step `step` (1-based) with the optimizer whose moments pruned and grown ranks reset.
    /// Returns the round's changes, or nil when no round happened.
    @discardableResult
    public func step(_ step: Int, optimizer: AdamW?) -> (pruned: [String], grown: [String])? {
        holdInactive()
        guard step <= totalStep - tfinal else { return nil }
        sensitivity.update(adapters.flatMap(\.1.params))
        let b = roundSize(at: step)
        guard isRound(step), b > 0 else { return nil }
        return round(b: b, step: step, optimizer: optimizer)
    }

    /// Inactive ranks keep E = 0 whatever the optimizer did.
    func holdInactive() { for (_, ad) in adapters { for j in 0..<ad.rMax where !ad.active[j] { ad.e.value[j] = 0 } } }

    /// One prune-and-grow round of `b` ranks.
    func round(b: Int, step: Int, optimizer: AdamW?) -> (pruned: [String], grown: [String]) {
        struct Offer {
            let score: Float
            let module: Int
            let rank: Int
        }
        var offers: [Offer] = []
        for (m, (_, ad)) in adapters.enumerated() {
            let s = sensitivity.tripletScores(ad)
            let act = (0..<ad.rMax).filter { ad.active[$0] }.sorted { s[$0] < s[$1] || (s[$0] == s[$1] && $0 < $1) }
            for j in act.prefix(min(config.offersPerModule, act.count - 1)) {
                offers.append(Offer(score: s[j], module: m, rank: j))
            }
        }
        let ascending = offers.sorted { ($0.score, $0.module, $0.rank) < ($1.score, $1.module, $1.rank) }
        let prune = Array(ascending.prefix(b))
        var pruned: [String] = []
        var grown: [String] = []
        for o in prune {
            let ad = adapters[o.module].1
            setRank(ad, o.rank, active: false, optimizer: optimizer)
            pruned.append("\(adapters[o.module].0)#\(o.rank)")
        }
        // pruned offers do not grow
        for o in ascending.dropFirst(prune.count).reversed() where grown.count < prune.count {
            let ad = adapters[o.module].1
            // full: the next offer grows
            guard let j = (0..<ad.rMax).first(where: { !ad.active[$0] }) else { continue }
            grow(ad, j, module: o.module, step: step, optimizer: optimizer)
            grown.append("\(adapters[o.module].0)#\(j)")
        }
        return (pruned, grown)
    }

    /// Switches rank `j` on or off with fresh optimizer moments and importance.
    func setRank(_ ad: SVDAdapter, _ j: Int, active: Bool, optimizer: AdamW?) {
        ad.active[j] = active
        ad.e.value[j] = 0
        if let optimizer {
            optimizer.resetMoments(ad.e, j)
            optimizer.resetMoments(ad.a, (j * ad.inDim)..<((j + 1) * ad.inDim))
            optimizer.resetMoments(ad.b, stride(from: j, to: ad.outDim * ad.rMax, by: ad.rMax))
        }
        sensitivity.resetRank(ad, j)
    }

    /// A new rank, started the way the adapters started, so that the module's output does not change:
    /// with `peft`, A row and B column random, orthogonal to the active ones and of unit norm, and E = 0;
    /// with `zero-b`, the A row so, E = init-e and the B column 0 (it learns from the next step, as B does).
    func grow(_ ad: SVDAdapter, _ j: Int, module: Int, step: Int, optimizer: AdamW?) {
        var rng = SplitMix64(
            seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(step) &* 1_000_003 &+ UInt64(module) &* 4099 &+ UInt64(j))
        let others = (0..<ad.rMax).filter { ad.active[$0] && $0 != j }
        let a = ad.a.value
        let b = ad.b.value
        let inD = ad.inDim
        let outD = ad.outDim
        let r = ad.rMax
        ElaLoRAAllocator.orthonormal(
            count: inD, set: { a[j * inD + $0] = $1 },
            others: others.map { o in { a[o * inD + $0] } }, rng: &rng)
        let zeroB = config.start.adapterInit == .zeroB
        if zeroB {
            for o in 0..<outD { b[o * r + j] = 0 }
        } else {
            ElaLoRAAllocator.orthonormal(
                count: outD, set: { b[$0 * r + j] = $1 },
                others: others.map { o in { b[$0 * r + o] } }, rng: &rng)
        }
        setRank(ad, j, active: true, optimizer: optimizer)
        if zeroB { ad.e.value[j] = config.start.initE }
    }

    /// Fills a vector with a random unit direction orthogonal to the span of `others`: an orthonormal
    /// basis of `others` first (modified Gram–Schmidt), then the random vector projected off it twice.
    static func orthonormal(count n: Int, set: (Int, Float) -> Void, others: [(Int) -> Float], rng: inout SplitMix64) {
        var basis: [[Double]] = []
        for o in others {
            var u = (0..<n).map { Double(o($0)) }
            let norm = SVDAdapter.project(&u, off: basis)
            if norm > 1e-12 { basis.append(u.map { $0 / norm }) }
        }
        var v = (0..<n).map { _ in Double(rng.nextNormal()) }
        let norm = SVDAdapter.project(&v, off: basis)
        for i in 0..<n { set(i, Float(v[i] / max(norm, 1e-12))) }
    }

    public var ranks: [String: Int] { Dictionary(uniqueKeysWithValues: adapters.map { ($0.0, $0.1.rank) }) }

    // MARK: CheckpointState

    public func checkpointTensors() -> [TensorToWrite] {
        sensitivity.checkpointTensors(adapters.flatMap(\.1.params), prefix: "")
            + [
                TensorToWrite(
                    name: "active", shape: [adapters.reduce(0) { $0 + $1.1.rMax }],
                    floats: adapters.flatMap { $0.1.active.map { $0 ? 1 : 0 } })
            ]
    }

    public func restore(from f: CheckpointSection) throws {
        try sensitivity.restore(adapters.flatMap(\.1.params), prefix: "", from: f)
        let act = try f.floats("active", count: adapters.reduce(0) { $0 + $1.1.rMax })
        var k = 0
        for (_, ad) in adapters {
            for j in 0..<ad.rMax {
                ad.active[j] = act[k] != 0
                k += 1
            }
        }
    }
}

/// `--method elalora`.
public final class ElaLoRAMethod: SVDTuningMethod {
    public let name = "elalora"
    public let config: ElaLoRAConfig
    public let svdAdapters: [(String, SVDAdapter)]
    public let regularizer: OrthogonalRegularizer
    public private(set) var allocator: ElaLoRAAllocator?
    let seed: UInt64

    public init(config: ElaLoRAConfig, backbone: any Backbone, seed: UInt64) throws {
        try config.validate()
        self.config = config
        self.seed = seed
        svdAdapters = try SVDAdapter.attach(
            to: backbone, targeting: config.lora, initialRank: config.lora.r, maxRank: config.maxRank,
            seed: seed, method: "ElaLoRA", start: config.start
        ).sorted { $0.key < $1.key }
        for (path, ad) in svdAdapters where config.maxRank > min(ad.inDim, ad.outDim) {
            throw ModelError(
                "ElaLoRA: max-rank \(config.maxRank) exceeds the dimensions of \(path) (\(ad.outDim) x \(ad.inDim))")
        }
        regularizer = OrthogonalRegularizer(
            adapters: svdAdapters.map(\.1), weight: config.orthRegWeight, activeOnly: true)
    }

    public func prepare(totalSteps: Int) throws {
        allocator = try ElaLoRAAllocator(adapters: svdAdapters, config: config, totalStep: totalSteps, seed: seed)
    }

    public var regularizers: [LossRegularizer] { [regularizer] }

    public func afterOptimizerStep(_ ctx: StepContext) throws {
        guard let allocator, let change = allocator.step(ctx.step, optimizer: ctx.optimizer) else { return }
        ctx.log([
            "event": "ranks", "step": ctx.step, "budget": ranks.values.reduce(0, +), "ranks": ranks,
            "pruned": change.pruned, "grown": change.grown,
        ])
    }

    public var checkpointStates: [String: CheckpointState] { allocator.map { ["elalora": $0] } ?? [:] }

    public func save(directory: String, model: TaskModel, metadata: AdapterMetadata) throws {
        try AdaLoRAFormat.save(
            directory: directory, model: model, adapters: svdAdapters, pattern: svdPattern, targeting: config.lora,
            initR: config.maxRank,
            schedule: [
                "tinit": allocator?.tinit ?? 0, "tfinal": allocator?.tfinal ?? 0,
                "deltaT": allocator?.deltaT ?? 1, "total_step": allocator?.totalStep ?? 1,
                "orth_reg_weight": Double(config.orthRegWeight),
            ], extra: metadata)
    }

    public var maxRank: Int { config.maxRank }
    public var summary: String {
        "r \(config.lora.r) (max \(config.maxRank)), k \(config.offersPerModule), b "
            + "\(config.ranksPerRound)\(config.cubicDecay ? " (cubic decay)" : ""), tinit \(allocator?.tinit ?? 0), "
            + "tfinal \(allocator?.tfinal ?? 0), deltaT \(allocator?.deltaT ?? 0)"
    }
}
