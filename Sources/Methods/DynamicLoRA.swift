import Adapters
import Foundation
import Models
import RankwiseCore
import SafeTensors
import Training

/// What Dynamic LoRA does with the layer weights.
public enum DynamicLoRAMode: String, SettingChoice, Sendable {
    /// Multiply each layer's adapter output by its weight.
    case scale
    /// Move ranks between layers in proportion to the weights (ElaLoRA's prune and grow).
    case ranks
}

/// Dynamic LoRA's options. No code or equations of the paper (Liao et al. 2025, arXiv 2501.14859) are
/// public; what follows is our reading of its abstract, every choice an option.
public struct DynamicLoRAConfig: Settings, Sendable, Equatable {
    public var lora = LoRATargeting()
    /// Temperature of the softmax that turns the layers' importance (divided by its mean) into weights.
    public var temperature: Float = 5
    /// EMA factor of each layer's importance Σ |p ⊙ ∂L/∂p| over its adapter parameters.
    public var importanceBeta: Float = 0.85
    /// Steps between two updates of the layer weights (the first at this step; before it every weight is 1):
    /// an explicit count, or (the default) a fraction of the run.
    public var updateEvery: Int? = nil
    public var updateEveryFraction = 0.01
    /// The per-sequence input gate sigmoid(v · mean_t x'_t + c) on every adapter (x' the adapter input after its
    /// dropout).
    public var gate = true
    /// c at the start (v = 0): the gate starts at sigmoid(c).
    public var gateBias: Float = 4
    /// `scale`: each layer's adapters' output is multiplied by the layer's weight. `ranks`: the weights
    /// set each layer's share of the rank budget and ranks move there, ElaLoRA's way (lowest-scoring rank
    /// pruned in a layer above its share, a new rank grown in one below it).
    public var mode = DynamicLoRAMode.scale
    /// `ranks` mode: ranks preallocated per module, the most a module can grow to.
    public var maxRank = 16
    /// `ranks` mode: ranks moved (pruned in one layer, grown in another) at most per update.
    public var movesPerRound = 8
    /// `ranks` mode: steps before ranks start moving, and last steps with fixed ranks (explicit counts, or
    /// by default fractions of the run).
    public var phases = PhaseSettings()
    public init() {}

    public static let help = [
        "temperature": "softmax temperature of the layer weights (importance divided by its mean); large: all near 1",
        "importanceBeta": "EMA factor of each layer's importance, sum of |p * grad| over its adapter parameters",
        "updateEvery": RunPhases.stepHelp(
            "interval between updates of the layer weights", fractionFlag: "update-every-fraction") + ", at least 1",
        "updateEveryFraction":
            "interval between updates of the layer weights as a fraction of the run's steps (when --update-every is "
            + "not given)",
        "gate":
            "input gate sigmoid(v . mean_t x' + c) on the adapter input x' (after its dropout) multiplying each "
            + "adapter's output (PEFT cannot express it: kept in rankwise_gates.safetensors)",
        "gateBias": "the gate's initial bias c (v starts at 0): the gate starts at sigmoid(c)",
        "mode":
            "scale: multiply each layer's adapter output by its weight; ranks: move ranks between layers in "
            + "proportion to the weights (ElaLoRA's prune and grow)",
        "maxRank": "ranks mode: ranks preallocated per module (the most a module can hold)",
        "movesPerRound": "ranks mode: ranks moved between layers at most per update",
        "tinit": "ranks mode: " + RunPhases.stepHelp("warm-up before ranks move", fractionFlag: "tinit-fraction"),
        "tfinal": "ranks mode: " + RunPhases.stepHelp("final phase with fixed ranks", fractionFlag: "tfinal-fraction"),
        "tinitFraction": "ranks mode: warm-up as a fraction of the run's steps (when --tinit is not given)",
        "tfinalFraction": "ranks mode: final phase as a fraction of the run's steps (when --tfinal is not given)",
    ]

    public func validate() throws {
        try lora.validate(method: "Dynamic LoRA")
        guard temperature > 0, temperature.isFinite else {
            throw SettingsError("Dynamic LoRA: --temperature must be positive")
        }
        guard importanceBeta >= 0, importanceBeta < 1 else {
            throw SettingsError("Dynamic LoRA: --importance-beta must be in [0, 1)")
        }
        guard (updateEvery ?? 1) >= 1 else { throw SettingsError("Dynamic LoRA: --update-every must be at least 1") }
        try RunPhases.validate([("update-every-fraction", updateEveryFraction)], method: "Dynamic LoRA")
        try phases.validate(method: "Dynamic LoRA")
        // The rank options are checked in either mode: a value that could never work is an error even where it is
        // unused.
        guard maxRank >= 1 else { throw SettingsError("Dynamic LoRA: --max-rank must be at least 1 (got \(maxRank))") }
        guard movesPerRound >= 1 else {
            throw SettingsError(
                "Dynamic LoRA: --moves-per-round must be at least 1 (got \(movesPerRound)): with 0 no rank ever moves")
        }
        if mode == .ranks {
            guard maxRank >= lora.r else {
                throw SettingsError("Dynamic LoRA: --max-rank (\(maxRank)) must be at least r (\(lora.r))")
            }
            guard lora.r >= 2, maxRank > lora.r else {
                throw SettingsError(
                    "Dynamic LoRA: --mode ranks needs r >= 2 and --max-rank above r (got r \(lora.r), max-rank "
                        + "\(maxRank)): every module keeps at least one rank, so at r = 1 or max-rank = r no rank can "
                        + "move"
                )
            }
        }
    }

    /// Ranks each adapter holds room for.
    var allocatedRank: Int { mode == .ranks ? maxRank : lora.r }
}

/// Each layer's smoothed importance, the weights in use and, in `ranks` mode, which ranks are active and
/// their smoothed sensitivity (checkpointed: a resumed run goes on exactly).
public final class DynamicLoRAState: CheckpointState {
    public var importance: [Double], weights: [Float]
    /// `ranks` mode: every adapter's ranks, in the method's adapter order.
    public var active: [[Bool]]
    let sensitivity = Sensitivity(beta1: 0.85, beta2: 0.85)
    let params: [Param]
    /// Called after a restore (the method hands the restored weights to its adapters).
    var onRestore: () -> Void = {}
    init(layers: Int, active: [[Bool]], params: [Param]) {
        importance = [Double](repeating: 0, count: layers)
        weights = [Float](repeating: 1, count: layers)
        self.active = active
        self.params = params
    }
    public func checkpointTensors() -> [TensorToWrite] {
        [
            TensorToWrite(
                name: "importance", shape: [importance.count],
                int64s: importance.map { Int64(bitPattern: $0.bitPattern) }),
            TensorToWrite(name: "weights", shape: [weights.count], floats: weights),
            TensorToWrite(name: "active", shape: [active.joined().count], floats: active.joined().map { $0 ? 1 : 0 }),
        ]
            + sensitivity.checkpointTensors(params, prefix: "")
    }
    public func restore(from f: CheckpointSection) throws {
        importance = try f.ints("importance", count: importance.count).map {
            Double(bitPattern: UInt64(bitPattern: $0))
        }
        weights = try f.floats("weights", count: weights.count)
        var flags = try f.floats("active", count: active.joined().count)[...]
        active = active.map { a in a.map { _ in flags.popFirst()! != 0 } }
        try sensitivity.restore(params, prefix: "", from: f)
        onRestore()
    }
}

/// `--method dynamic`: LoRA whose layers are weighted by their importance during training, plus an
/// input gate per adapted module. Every `update-every` steps each layer's weight becomes
/// L · softmax(I / mean(I) / τ) (mean 1 over the L layers), I the EMA of Σ |p ⊙ ∂L/∂p| over the layer's
/// LoRA parameters. In `scale` mode the adapters' outputs are scaled by their layer's weight; in `ranks`
/// mode the weights split the rank budget between the layers and ranks move to match (see `moveRanks`).
/// Saved as PEFT LoRA (layer weight folded into B, per-module ranks in `rank_pattern`); the gates (which
/// PEFT cannot express) go to `rankwise_gates.safetensors`, and `merge` refuses a gated adapter.
public final class DynamicLoRAMethod: TuningMethod {
    public let name = "dynamic"
    public let config: DynamicLoRAConfig
    public let dynamicAdapters: [(String, DynamicLoRAAdapter)]
    /// The layer index of each adapter, and the layers in order.
    let layerOf: [Int], layers: [Int]
    let state: DynamicLoRAState
    let seed: UInt64
    private(set) var tinit = 0, tfinal = 0
    /// Steps between layer-weight updates, resolved by `prepare` (1 before it).
    private(set) var updateEvery = 1

    public init(config: DynamicLoRAConfig, backbone: any Backbone, seed: UInt64) throws {
        try config.validate()
        self.config = config
        self.seed = seed
        let (r, R) = (config.lora.r, config.allocatedRank)
        // R ranks allocated, the scale alpha / r of the r ranks a module starts with.
        let loraConfig = LoRAConfig(
            r: R, alpha: config.lora.alpha * Float(R) / Float(r), dropout: config.lora.loraDropout,
            targetModules: config.lora.targetModules)
        var rng = SplitMix64(seed: seed)
        var out: [(String, DynamicLoRAAdapter)] = []
        var layerOfPath: [String: Int] = [:]
        for lin in try config.lora.targets(in: backbone, method: "Dynamic LoRA", rank: R) {
            layerOfPath[lin.path] = lin.layer ?? -1
            let a = Tensor(zeros: [R, lin.inDim])
            // ranks r..<R start off (zero)
            _ = a.buffer.update(from: LoRA.initialA(r: r, inDim: lin.inDim, rng: &rng).array)
            let ad = DynamicLoRAAdapter(
                path: lin.path, inDim: lin.inDim, outDim: lin.outDim, config: loraConfig, a: a,
                b: Tensor(zeros: [lin.outDim, R]),
                gate: config.gate, gateBiasInit: config.gateBias, causal: backbone.isCausal,
                layout: { [unowned backbone] in backbone.layout })
            lin.adapter = ad
            for p in ad.params { backbone.params.add(p) }
            out.append((lin.path, ad))
        }
        dynamicAdapters = out.sorted { $0.0 < $1.0 }
        let idx = dynamicAdapters.map { layerOfPath[$0.0]! }
        let ls = Array(Set(idx)).sorted()
        layers = ls
        layerOf = idx.map { ls.firstIndex(of: $0)! }
        state = DynamicLoRAState(
            layers: ls.count, active: dynamicAdapters.map { _ in (0..<R).map { $0 < r } },
            params: dynamicAdapters.flatMap(\.1.lora.params))
        state.onRestore = { [unowned self] in self.apply() }
    }

    var rankMode: Bool { config.mode == .ranks }
    public var adapters: [(String, LinearAdapter)] { dynamicAdapters.map { ($0.0, $0.1 as LinearAdapter) } }
    public var checkpointStates: [String: CheckpointState] { ["dynamic": state] }
    public var ranks: [String: Int] {
        Dictionary(uniqueKeysWithValues: zip(dynamicAdapters, state.active).map { ($0.0.0, $0.1.filter { $0 }.count) })
    }
    public var maxRank: Int { config.allocatedRank }
    public var summary: String {
        "Dynamic LoRA r \(config.lora.r), layer weights every \(updateEvery) steps (temperature \(config.temperature)) "
            + (rankMode
                ? "moving ranks (max \(config.maxRank), \(config.movesPerRound) per update, tinit \(tinit), tfinal "
                    + "\(tfinal))"
                : "scaling the layers")
            + (config.gate ? ", input gates" : "")
    }

    public func prepare(totalSteps: Int) throws {
        (tinit, tfinal) = config.phases.steps(of: totalSteps)
        updateEvery = RunPhases.steps(
            config.updateEvery, fraction: config.updateEveryFraction, of: totalSteps, minimum: 1)
        // Ranks move at the weight updates (multiples of update-every) after tinit and up to totalSteps − tfinal.
        if rankMode && (totalSteps - tfinal) / updateEvery <= tinit / updateEvery {
            throw ModelError(
                "Dynamic LoRA: no weight update (every \(updateEvery) steps) falls after tinit (\(tinit)) and before "
                    + "the last tfinal (\(tfinal)) of \(totalSteps) steps: ranks would never move"
            )
        }
    }

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

    /// Each layer's share of a budget of `r` ranks per module: `clamp(λ · m_l w_l, m_l, m_l · maxRank)` for a
    /// layer of `m_l` modules and weight `w_l`, with the one λ that makes the shares add up to the budget
    /// (found by bisection: the sum grows with λ), rounded by largest remainder within the bounds.
    public static func layerTargets(weights: [Float], modules: [Int], r: Int, maxRank: Int) -> [Int] {
        let total = modules.reduce(0, +) * r
        let lo = modules.map { Double($0) }
        let hi = modules.map { Double($0 * maxRank) }
        // A tiny floor on every weight, so a budget the others cannot hold still reaches zero-weight layers.
        let top = Double(weights.map { max(0, $0) }.max() ?? 0)
        let mass = zip(modules, weights).map { Double($0) * (Double(max(0, $1)) + 1e-9 * max(top, 1)) }
        func shares(_ lambda: Double) -> [Double] {
            (0..<mass.count).map { min(hi[$0], max(lo[$0], lambda * mass[$0])) }
        }
        var (a, b) = (0.0, 1.0)
        while shares(b).reduce(0, +) < Double(total) && b < 1e30 { b *= 2 }
        for _ in 0..<200 {
            let m = (a + b) / 2
            if shares(m).reduce(0, +) < Double(total) { a = m } else { b = m }
        }
        let share = shares(b)
        var t = share.map { Int($0.rounded(.down)) }
        let frac = (0..<t.count).map { share[$0] - Double(t[$0]) }
        let order = (0..<t.count).sorted { frac[$0] > frac[$1] || (frac[$0] == frac[$1] && $0 < $1) }
        var left = total - t.reduce(0, +)
        while left > 0, let l = order.first(where: { Double(t[$0]) < hi[$0] }) {
            t[l] += 1
            left -= 1
        }
        while left < 0, let l = order.last(where: { Double(t[$0]) > lo[$0] }) {
            t[l] -= 1
            left += 1
        }
        return t
    }

    /// The importance EMA from this step's gradients; the weights every `update-every` steps and, in
    /// `ranks` mode within the rounds' window, ranks moved towards them.
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
        let rounds = rankMode && context.step <= context.totalSteps - tfinal
        if rounds { state.sensitivity.update(state.params) }
        guard context.step % updateEvery == 0 else { return }
        state.weights = Self.weights(importance: state.importance, temperature: config.temperature)
        apply()
        context.log([
            "event": "layer_weights", "step": context.step, "layers": layers, "weights": state.weights.map(Double.init),
            "importance": state.importance,
        ])
        guard rounds, context.step > tinit else { return }
        let moved = moveRanks(step: context.step, optimizer: context.optimizer)
        if !moved.isEmpty {
            let now = ranks
            context.log([
                "event": "ranks", "step": context.step, "budget": now.values.reduce(0, +), "ranks": now,
                "pruned": moved.map(\.pruned), "grown": moved.map(\.grown),
            ])
        }
    }

    /// In `scale` mode every adapter takes its layer's weight; in `ranks` mode the weights only set budgets.
    func apply() {
        for (i, (_, ad)) in dynamicAdapters.enumerated() { ad.layerWeight = rankMode ? 1 : state.weights[layerOf[i]] }
    }

    /// Ranks each layer holds now.
    var layerRanks: [Int] {
        var t = [Int](repeating: 0, count: layers.count)
        for (i, act) in state.active.enumerated() { t[layerOf[i]] += act.filter { $0 }.count }
        return t
    }

    /// One round of `ranks` mode, at most `moves-per-round` moves: while a layer holds more ranks than its
    /// share and another fewer, the lowest-scoring rank (AdaLoRA's sensitivity of its A row and B column)
    /// of the layers above their share is pruned (never a module's last), and a rank grows in the layer
    /// furthest below, in its module whose ranks score highest on average and that has room. A pruned
    /// rank's A row and B column become zero; a grown rank's A row is random, orthogonal to its module's
    /// others, of their mean norm, and its B column zero, so growing does not change the output. Both
    /// start with fresh optimizer moments and sensitivity.
    func moveRanks(step: Int, optimizer: AdamW?) -> [(pruned: String, grown: String)] {
        let modules = (0..<layers.count).map { l in layerOf.filter { $0 == l }.count }
        let target = Self.layerTargets(
            weights: state.weights, modules: modules, r: config.lora.r, maxRank: config.maxRank)
        var held = layerRanks
        var scores = dynamicAdapters.map { state.sensitivity.rankScores(a: $0.1.lora.a, b: $0.1.lora.b) }
        var moved: [(pruned: String, grown: String)] = []
        while moved.count < config.movesPerRound {
            let over = Set((0..<layers.count).filter { held[$0] > target[$0] })
            let deficit = (0..<layers.count).map { target[$0] - held[$0] }
            guard
                let under = deficit.indices.filter({ deficit[$0] > 0 }).min(by: {
                    deficit[$0] > deficit[$1] || (deficit[$0] == deficit[$1] && $0 < $1)
                })
            else { break }
            var worst: (score: Float, m: Int, j: Int)?
            for (m, act) in state.active.enumerated() where over.contains(layerOf[m]) && act.filter({ $0 }).count > 1 {
                for j in act.indices where act[j] && (worst == nil || (scores[m][j], m, j) < worst!) {
                    worst = (scores[m][j], m, j)
                }
            }
            func mean(_ m: Int) -> Float {
                let js = state.active[m].indices.filter { state.active[m][$0] }
                return js.map { scores[m][$0] }.reduce(0, +) / Float(max(1, js.count))
            }
            let roomy = (0..<dynamicAdapters.count).filter { layerOf[$0] == under && state.active[$0].contains(false) }
            let means = roomy.map(mean)
            guard let worst,
                let pick = means.indices.min(by: { means[$0] > means[$1] || (means[$0] == means[$1] && $0 < $1) })
            else { break }
            let grow = roomy[pick]
            setRank(worst.m, worst.j, on: false, step: step, optimizer: optimizer)
            let j = state.active[grow].firstIndex(of: false)!
            setRank(grow, j, on: true, step: step, optimizer: optimizer)
            scores[worst.m][worst.j] = 0
            scores[grow][j] = 0
            held[layerOf[worst.m]] -= 1
            held[under] += 1
            moved.append(("\(dynamicAdapters[worst.m].0)#\(worst.j)", "\(dynamicAdapters[grow].0)#\(j)"))
        }
        return moved
    }

    /// Switches rank `j` of adapter `m` off (A row and B column zero) or on (new A row, B column zero).
    func setRank(_ m: Int, _ j: Int, on: Bool, step: Int, optimizer: AdamW?) {
        let ad = dynamicAdapters[m].1.lora
        let (inD, outD, R) = (ad.a.shape[1], ad.b.shape[0], ad.r)
        let a = ad.a.value
        let b = ad.b.value
        for o in 0..<outD { b[o * R + j] = 0 }
        if on {
            let others = state.active[m].indices.filter { state.active[m][$0] }
            let norm =
                others.map { o in (0..<inD).map { a[o * inD + $0] * a[o * inD + $0] }.reduce(0, +).squareRoot() }
                .reduce(0, +) / Float(max(1, others.count))
            var rng = SplitMix64(
                seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(step) &* 1_000_003 &+ UInt64(m) &* 4099 &+ UInt64(j))
            ElaLoRAAllocator.orthonormal(
                count: inD, set: { a[j * inD + $0] = norm * $1 }, others: others.map { o in { a[o * inD + $0] } },
                rng: &rng)
        } else {
            for i in 0..<inD { a[j * inD + i] = 0 }
        }
        state.active[m][j] = on
        optimizer?.resetMoments(ad.a, (j * inD)..<((j + 1) * inD))
        optimizer?.resetMoments(ad.b, stride(from: j, to: outD * R, by: R))
        state.sensitivity.resetRank(a: ad.a, b: ad.b, j)
    }

    public func save(directory: String, model: TaskModel, metadata: AdapterMetadata) throws {
        var modules: [String: PEFTFormat.KeptRanks] = [:]
        var gates: [TensorToWrite] = []
        for ((path, ad), act) in zip(dynamicAdapters, state.active) {
            let b = Tensor(zeros: ad.lora.b.shape)
            for k in 0..<b.count { b[k] = ad.lora.b.value[k] * ad.layerWeight }
            modules[path] = PEFTFormat.KeptRanks(
                a: ad.lora.a.value, b: b, kept: act.indices.filter { act[$0] }, scaling: ad.lora.scaling)
            if let w = ad.gateWeight, let c = ad.gateBias {
                gates.append(TensorToWrite(name: w.name, shape: w.shape, floats: w.value.array))
                gates.append(TensorToWrite(name: c.name, shape: c.shape, floats: c.value.array))
            }
        }
        try PEFTFormat.save(
            directory: directory, model: model, keptRanks: modules,
            config: LoRAConfig(r: config.lora.r, alpha: config.lora.alpha, dropout: config.lora.loraDropout),
            extra: metadata)
        let gatesFile = directory + "/" + Self.gatesFile
        if gates.isEmpty {
            try? FileManager.default.removeItem(atPath: gatesFile)
        } else {
            try SafeTensorsWriter.write(gates, metadata: ["format": "pt"], to: gatesFile)
        }
    }

    /// The extra tensor file of the input gates next to a PEFT export.
    public static let gatesFile = "rankwise_gates.safetensors"

    /// Reads the PEFT LoRA directory (layer weights folded into B, per-module ranks) and, when present, the gates.
    public static func load(directory: String, backbone: any Backbone) throws -> (TuningMethod, WeightSource?) {
        let (loraConfig, loaded, head) = try PEFTFormat.loadKeptRanks(directory: directory, backbone: backbone)
        let gatesPath = directory + "/" + gatesFile
        var c = DynamicLoRAConfig()
        c.lora.r = loraConfig.r
        c.lora.alpha = loraConfig.alpha
        c.lora.loraDropout = loraConfig.dropout
        c.lora.targetModules = loraConfig.targetModules
        let most = loaded.values.map(\.r).max() ?? loraConfig.r
        if loaded.values.contains(where: { $0.r != loraConfig.r }) {
            c.mode = .ranks
            c.maxRank = max(most, loraConfig.r)
        }
        c.gate = FileManager.default.fileExists(atPath: gatesPath)
        let m = try DynamicLoRAMethod(config: c, backbone: backbone, seed: 0)
        for (i, (path, ad)) in m.dynamicAdapters.enumerated() {
            guard let l = loaded[path] else { continue }
            let (inD, outD, R, k) = (l.a.shape[1], l.b.shape[0], ad.lora.r, l.r)
            let a = ad.lora.a.value
            let b = ad.lora.b.value
            let f = l.scaling / ad.lora.scaling
            a.buffer.update(repeating: 0)
            b.buffer.update(repeating: 0)
            for j in 0..<k {
                for x in 0..<inD { a[j * inD + x] = l.a.value[j * inD + x] }
                for o in 0..<outD { b[o * R + j] = f * l.b.value[o * k + j] }
            }
            m.state.active[i] = (0..<R).map { $0 < k }
        }
        if c.gate {
            let f: SafeTensorsFile
            do { f = try SafeTensorsFile(path: gatesPath) } catch { throw ModelError("\(error)") }
            for (_, ad) in m.dynamicAdapters {
                for p in [ad.gateWeight!, ad.gateBias!] {
                    let v = try f.floats(p.name)
                    guard v.count == p.count, v.allSatisfy(\.isFinite) else {
                        throw ModelError(
                            "\(gatesPath): \(p.name) has \(v.count) values, expected \(p.count) finite ones")
                    }
                    _ = p.value.buffer.update(from: v)
                }
            }
        }
        return (m, head)
    }
}
