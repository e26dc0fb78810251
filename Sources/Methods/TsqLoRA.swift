import Adapters
import Foundation
import Models
import RankwiseCore
import SafeTensors
import Training

/// TsqLoRA (Chen et al. 2025, "Towards Sensitivity and Quality Low-Rank Adaptation for Efficient
/// Fine-Tuning", arXiv 2509.18585). The authors released no code and only the abstract and summaries of
/// the paper are public; this is our implementation. What follows the paper:
/// - a quality score Q = a1·‖g‖ + a2·dL + a3·dC per training example and sampling by softmax(Q / τ);
/// - layer sensitivity S = E|W ⊙ ∂L/∂W| of the frozen weights, measured on quality-sampled batches
///   during a warm-up; initial ranks from it; ranks then pruned and grown during training (ElaLoRA's
///   mechanism, which the paper contrasts with AdaLoRA's prune-only).
///
/// Ours (each an option, defaults chosen by measurement; see the README's TsqLoRA section and
/// `QualityConfig`): dC as the cosine of the example's gradient with the scored pool's mean gradient;
/// each term z-normalised over the pool; the signs of a1 and a3 (a wrongly labelled example has a
/// large gradient and points against the pool, so the defaults sample it less); a probability floor;
/// the rotating pool refreshed every K steps; the warm-up at the uniform rank r, after which ranks are
/// How TsqLoRA's warm-up sensitivity sets initial ranks: each adapted matrix by its own, or each layer's matrices
/// by the layer's mean.
public enum SensitivityGroup: String, Sendable, SettingChoice {
    case module
    case layer
}

/// set ∝ S (per module or per layer) within the same total budget, 1 ≤ rank ≤ max-rank.
public struct TsqLoRAConfig: Settings, Sendable, Equatable {
    /// Adapters, the total rank budget (`r` per module on average), warm-up (`tinit`) and ElaLoRA's rounds.
    public var elastic = ElaLoRAConfig()
    public var quality = QualityConfig()
    public var sensitivityGroup = SensitivityGroup.module
    public init() {}

    public static let help = [
        "sensitivityGroup":
            "module (each adapted matrix gets ranks by its own sensitivity) or layer (the paper's wording: every "
            + "matrix of a layer by the layer's mean)"
    ]

    public func validate() throws {
        try elastic.validate(method: "TsqLoRA")
        try quality.validate()
    }
}

/// TsqLoRA's own state in checkpoints: the warm-up sensitivity and the latest scores of every example.
public final class TsqLoRAState: CheckpointState {
    /// Σ over warm-up batches of mean |W ⊙ ∂L/∂W| per module (in `svdAdapters` order).
    public var sensitivity: [Double]
    public var ranksInitialised = false
    /// Per training example: its latest scores and the step they were taken at (0: never scored).
    public var quality: [Float], gradNorm: [Float], reduction: [Float], alignment: [Float], loss: [Float]
    public var scoredAt: [Int]

    init(modules: Int, examples n: Int) {
        sensitivity = [Double](repeating: 0, count: modules)
        quality = [Float](repeating: 0, count: n)
        gradNorm = quality
        reduction = quality
        alignment = quality
        loss = quality
        scoredAt = [Int](repeating: 0, count: n)
    }

    public func checkpointTensors() -> [TensorToWrite] {
        let n = quality.count
        return [
            TensorToWrite(
                name: "sensitivity", shape: [sensitivity.count],
                int64s: sensitivity.map { Int64(bitPattern: $0.bitPattern) }),
            TensorToWrite(name: "initialised", shape: [1], int64s: [ranksInitialised ? 1 : 0]),
            TensorToWrite(name: "scored_at", shape: [n], int64s: scoredAt.map(Int64.init)),
        ]
            + [
                ("quality", quality), ("grad_norm", gradNorm), ("reduction", reduction), ("alignment", alignment),
                ("loss", loss),
            ]
            .map { TensorToWrite(name: $0.0, shape: [n], floats: $0.1) }
    }

    public func restore(from f: CheckpointSection) throws {
        let n = quality.count
        sensitivity = try f.ints("sensitivity", count: sensitivity.count).map {
            Double(bitPattern: UInt64(bitPattern: $0))
        }
        ranksInitialised = try f.ints("initialised", count: 1)[0] != 0
        scoredAt = try f.ints("scored_at", count: n).map { Int($0) }
        quality = try f.floats("quality", count: n)
        gradNorm = try f.floats("grad_norm", count: n)
        reduction = try f.floats("reduction", count: n)
        alignment = try f.floats("alignment", count: n)
        loss = try f.floats("loss", count: n)
    }
}

/// `--method tsqlora`: ElaLoRA's adapters and rounds, quality-weighted batches, ranks initialised from
/// the frozen weights' sensitivity after the warm-up.
public final class TsqLoRAMethod: SVDTuningMethod {
    public let name = "tsqlora"
    public let config: TsqLoRAConfig
    /// The ElaLoRA part: adapters, orthogonal regulariser, prune-and-grow rounds.
    public let elastic: ElaLoRAMethod
    public private(set) var state: TsqLoRAState?
    public private(set) var sampler: WeightedSampler?
    let seed: UInt64
    let linears: [Linear]
    private var poolOrder: [Int] = []
    private var scoreBatch = 32
    /// False while scoring, so that only training batches count towards the sensitivity.
    private var measuring = true
    private let gradScratch = Scratch()

    public init(config: TsqLoRAConfig, backbone: any Backbone, seed: UInt64) throws {
        try config.validate()
        self.config = config
        self.seed = seed
        elastic = try ElaLoRAMethod(config: config.elastic, backbone: backbone, seed: seed)
        let byPath = Dictionary(uniqueKeysWithValues: backbone.adaptableLinears.map { ($0.path, $0) })
        linears = elastic.svdAdapters.map { byPath[$0.0]! }
    }

    public var svdAdapters: [(String, SVDAdapter)] { elastic.svdAdapters }
    public var regularizers: [LossRegularizer] { elastic.regularizers }
    public var maxRank: Int { elastic.maxRank }

    public func prepare(totalSteps: Int) throws {
        try elastic.prepare(totalSteps: totalSteps)
        guard let a = elastic.allocator, a.tinit >= 1 else {
            throw ModelError(
                "TsqLoRA: the sensitivity warm-up needs tinit >= 1 step (got \(elastic.allocator?.tinit ?? 0) of "
                    + "\(totalSteps) steps)"
            )
        }
        for (m, lin) in linears.enumerated() {
            lin.weightGradientObserver = { [unowned self] dy, x, n in self.observe(module: m, dy: dy, x: x, n: n) }
        }
    }

    /// Adds mean |W ⊙ dyᵀx| of one training batch to module `m`'s sensitivity (warm-up only).
    func observe(module m: Int, dy: UnsafePointer<Float>, x: UnsafePointer<Float>, n: Int) {
        guard measuring, let state, !state.ranksInitialised else { return }
        let lin = linears[m]
        let out = lin.outDim
        let inn = lin.inDim
        let g = gradScratch.get(out * inn)
        BLAS.sgemm(transA: true, m: out, n: inn, k: n, a: dy, lda: out, b: x, ldb: inn, c: g, ldc: inn)
        let w = lin.weight.value.data
        var s: Double = 0
        for i in 0..<(out * inn) { s += Double(abs(w[i] * g[i])) }
        state.sensitivity[m] += s / Double(out * inn)
    }

    public func makeSampler(count: Int, batchSize: Int, seed: UInt64) -> Sampler? {
        let s = WeightedSampler(count: count, batchSize: batchSize, seed: seed)
        sampler = s
        state = TsqLoRAState(modules: linears.count, examples: count)
        scoreBatch = batchSize
        var rng = SplitMix64(seed: seed &+ 0x7501_11A5)
        poolOrder = Array(0..<count)
        rng.shuffle(&poolOrder)
        return s
    }

    /// The examples scored at refresh `k` (1-based): the next `poolSize` of a fixed seeded order, wrapping around.
    public func pool(refresh k: Int) -> [Int] {
        let n = poolOrder.count
        let p = min(config.quality.poolSize, n)
        let start = ((k - 1) * p) % max(n, 1)
        return (0..<p).map { poolOrder[(start + $0) % n] }
    }

    public func afterOptimizerStep(_ ctx: StepContext) throws {
        try elastic.afterOptimizerStep(ctx)
        guard let state, let allocator = elastic.allocator else { return }
        if !state.ranksInitialised && ctx.step >= allocator.tinit {
            let target = Self.initialRanks(
                sensitivity: groupedSensitivity(), budget: config.elastic.lora.r * linears.count,
                maxRank: config.elastic.maxRank)
            setRanks(target, step: ctx.step, allocator: allocator, optimizer: ctx.optimizer)
            state.ranksInitialised = true
            for lin in linears { lin.weightGradientObserver = nil }
            ctx.log([
                "event": "initial_ranks", "step": ctx.step, "ranks": ranks,
                "sensitivity": Dictionary(uniqueKeysWithValues: zip(svdAdapters.map(\.0), state.sensitivity)),
            ])
        }
        if ctx.step % config.quality.refreshEvery == 0 && ctx.step < ctx.totalSteps {
            try refresh(ctx, state: state)
        }
    }

    /// Scores the next pool and sets the sampler's probabilities from every example's latest quality.
    func refresh(_ ctx: StepContext, state: TsqLoRAState) throws {
        guard let model = ctx.model, let data = ctx.data, let sampler else { return }
        let idx = pool(refresh: ctx.step / config.quality.refreshEvery)
        measuring = false
        defer { measuring = true }
        let start = DispatchTime.now().uptimeNanoseconds
        let s = try QualityScorer.score(
            model: model, data: data, indices: idx, config: config.quality, learningRate: ctx.learningRate,
            batchSize: scoreBatch)
        let q = s.quality(config.quality)
        for (k, i) in idx.enumerated() {
            state.quality[i] = q[k]
            state.gradNorm[i] = s.gradNorm[k]
            state.reduction[i] = s.reduction[k]
            state.alignment[i] = s.alignment[k]
            state.loss[i] = s.loss[k]
            state.scoredAt[i] = ctx.step
        }
        let p = QualityScores.probabilities(
            quality: state.quality, tau: config.quality.tau, floor: config.quality.floor)
        try sampler.setWeights(p)
        func r(_ v: [Float]) -> [Double] { v.map { (Double($0) * 1e5).rounded() / 1e5 } }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        ctx.log([
            "event": "quality", "step": ctx.step, "seconds": (seconds * 1e4).rounded() / 1e4, "examples": idx,
            "quality": r(q), "grad_norm": r(s.gradNorm), "reduction": r(s.reduction),
            "alignment": r(s.alignment), "loss": r(s.loss),
        ])
    }

    /// Module sensitivities, or each module's layer mean with `sensitivity-group layer`.
    func groupedSensitivity() -> [Double] {
        guard let state else { return [] }
        guard config.sensitivityGroup == .layer else { return state.sensitivity }
        let layer = linears.map { $0.layer ?? -1 }
        var sum: [Int: Double] = [:]
        var count: [Int: Int] = [:]
        for (m, l) in layer.enumerated() {
            sum[l, default: 0] += state.sensitivity[m]
            count[l, default: 0] += 1
        }
        return layer.map { sum[$0]! / Double(count[$0]!) }
    }

    /// Ranks ∝ `sensitivity` with `budget` in total, each between 1 and `maxRank`: shares above the
    /// maximum (then below 1) are fixed there and the rest shared again; fractions go by largest remainder.
    public static func initialRanks(sensitivity s: [Double], budget: Int, maxRank: Int) -> [Int] {
        let n = s.count
        guard n > 0 else { return [] }
        let budget = min(max(budget, n), n * maxRank)
        var fixed = [Int?](repeating: nil, count: n)
        var share = [Double](repeating: 0, count: n)
        while true {
            let free = (0..<n).filter { fixed[$0] == nil }
            let left = Double(budget - fixed.reduce(0) { $0 + ($1 ?? 0) })
            let total = free.reduce(0.0) { $0 + max(0, s[$1]) }
            for m in free { share[m] = total > 0 ? left * max(0, s[m]) / total : left / Double(free.count) }
            let high = free.filter { share[$0] > Double(maxRank) }
            if !high.isEmpty {
                for m in high { fixed[m] = maxRank }
                continue
            }
            let low = free.filter { share[$0] < 1 }
            if !low.isEmpty {
                for m in low { fixed[m] = 1 }
                continue
            }
            break
        }
        var ranks = (0..<n).map { fixed[$0] ?? Int(share[$0].rounded(.down)) }
        let missing = budget - ranks.reduce(0, +)
        let byRemainder = (0..<n).filter { fixed[$0] == nil }
            .sorted { (share[$0] - share[$0].rounded(.down), -$0) > (share[$1] - share[$1].rounded(.down), -$1) }
        for m in byRemainder.prefix(missing) { ranks[m] += 1 }
        return ranks
    }

    /// Brings every module to its target rank: the lowest-scoring ranks are pruned, new ones grown (output unchanged).
    func setRanks(_ target: [Int], step: Int, allocator: ElaLoRAAllocator, optimizer: AdamW) {
        for (m, (_, ad)) in svdAdapters.enumerated() {
            let scores = allocator.sensitivity.tripletScores(ad)
            let act = (0..<ad.rMax).filter { ad.active[$0] }.sorted {
                scores[$0] < scores[$1] || (scores[$0] == scores[$1] && $0 < $1)
            }
            for j in act.prefix(max(0, act.count - target[m])) {
                allocator.setRank(ad, j, active: false, optimizer: optimizer)
            }
            while ad.rank < target[m], let j = (0..<ad.rMax).first(where: { !ad.active[$0] }) {
                allocator.grow(ad, j, module: m, step: step, optimizer: optimizer)
            }
        }
    }

    public var checkpointStates: [String: CheckpointState] {
        var s = elastic.checkpointStates
        if let state { s["tsqlora"] = state }
        return s
    }

    /// The adapter in PEFT's AdaLoRA format, plus `quality.csv`: every training example's latest scores.
    public func save(directory: String, model: TaskModel, metadata: AdapterMetadata) throws {
        try elastic.save(directory: directory, model: model, metadata: metadata)
        guard let state, let sampler else { return }
        var csv = "example,scored_at_step,quality,grad_norm,reduction,alignment,loss,probability\n"
        for i in state.quality.indices {
            let fields: [Any] = [
                i, state.scoredAt[i], state.quality[i], state.gradNorm[i], state.reduction[i], state.alignment[i],
                state.loss[i], sampler.probability(i),
            ]
            csv += fields.map { "\($0)" }.joined(separator: ",") + "\n"
        }
        try AtomicFile.write(csv, to: directory + "/quality.csv")
    }

    public var summary: String {
        let q = config.quality
        return elastic.summary
            + ", quality a=(\(q.a1), \(q.a2), \(q.a3)) tau \(q.tau) every \(q.refreshEvery) steps on \(q.poolSize) "
            + "examples"
            + " (\(q.scoring.rawValue)), ranks by \(config.sensitivityGroup.rawValue) sensitivity"
    }
}
