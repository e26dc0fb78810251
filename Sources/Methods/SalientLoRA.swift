import Adapters
import Foundation
import Models
import RankwiseCore
import SafeTensors
import Training

/// SalientLoRA (Ke et al., NeurIPS 2024): options with names that say what they are (the paper's
/// symbols are accepted as aliases). `lora.r` is the average final rank per module.
public struct SalientLoRAConfig: Settings, Sendable, Equatable {
    public var lora = LoRATargeting()
    public var initR = 12
    /// Warm-up steps before recording starts and final steps with a fixed mask: explicit counts, or
    /// (the default) fractions of the run.
    public var phases = PhaseSettings()
    /// λ: salience = λ·magnitude + (1−λ)·influence domain.
    public var magnitudeWeight: Float = 0.5
    /// β: Pearson correlation needed for a dependency edge.
    public var correlationThreshold: Float = 0.9
    /// γ: regression slope needed for a dependency edge.
    public var slopeThreshold: Float = 2
    /// Ti and Tf: time-series window length at the start and at the end, in steps or (the default) as
    /// fractions of the run (the paper's 10 and 200 are 1% and 20% of a 1,000-step run).
    public var windowStart: Int? = nil
    public var windowEnd: Int? = nil
    public var windowStartFraction = 0.01
    public var windowEndFraction = 0.2
    public var recordInterval = 1
    public var orthRegWeight: Float = 0.1
    public var start = SVDStartSettings()
    public init() {}

    public static let help = [
        "initR": "initial rank of every module",
        "tinit": RunPhases.stepHelp("warm-up before recording starts", fractionFlag: "tinit-fraction"),
        "tfinal": RunPhases.stepHelp("final phase with a fixed rank pattern", fractionFlag: "tfinal-fraction"),
        "magnitudeWeight": "lambda: salience = lambda*magnitude + (1-lambda)*influence domain",
        "correlationThreshold": "beta: correlation needed for a dependency edge between singular values",
        "slopeThreshold": "gamma: regression slope needed for a dependency edge",
        "windowStart": RunPhases.stepHelp(
            "Ti: time-series window length at the start", fractionFlag: "window-start-fraction") + ", at least 2",
        "windowEnd": RunPhases.stepHelp("Tf: time-series window length at the end", fractionFlag: "window-end-fraction")
            + ", at least Ti",
        "windowStartFraction": "Ti as a fraction of the run's steps (when --window-start is not given)",
        "windowEndFraction": "Tf as a fraction of the run's steps (when --window-end is not given)",
        "recordInterval": "record the singular values every N steps",
        "orthRegWeight": "weight of the orthogonal regulariser",
    ]
    public static let aliases = [
        "target-r": "r", "lambda": "magnitudeWeight", "beta": "correlationThreshold", "gamma": "slopeThreshold",
        "ti": "windowStart", "tf": "windowEnd", "interval": "recordInterval",
    ]

    /// Errors for options no run could use, before anything is built; the schedule is checked against the
    /// run's own steps when they are known (`prepare`).
    public func validate() throws {
        try lora.validate(method: "SalientLoRA")
        try phases.validate(method: "SalientLoRA")
        try RunPhases.validate(
            [("window-start-fraction", windowStartFraction), ("window-end-fraction", windowEndFraction)],
            method: "SalientLoRA")
        guard orthRegWeight >= 0 else { throw ModelError("SalientLoRA: orth_reg_weight must not be negative") }
        _ = try start.kind(method: "SalientLoRA")
        func bad(_ m: String) -> ModelError { ModelError("SalientLoRA: " + m) }
        guard initR > 0, lora.r >= 0, lora.r <= initR else {
            throw bad("need 0 <= target_r (\(lora.r)) <= init_r (\(initR))")
        }
        guard (windowStart ?? 2) > 1, (windowEnd ?? Int.max) >= (windowStart ?? 0) else {
            throw bad("need 1 < window-start Ti (\(windowStart ?? 0)) <= window-end Tf (\(windowEnd ?? 0))")
        }
        guard recordInterval > 0 else { throw bad("record-interval must be positive") }
        guard magnitudeWeight >= 0 && magnitudeWeight <= 1 else {
            throw bad("magnitude-weight (lambda) must be in [0, 1]")
        }
        guard correlationThreshold >= -1 && correlationThreshold <= 1 else {
            throw bad("correlation-threshold (beta) must be in [-1, 1]")
        }
    }
}

/// SalientLoRA's settings resolved for a run of `totalStep` steps (the paper's symbols).
public struct SalientLoRASchedule: Sendable, Equatable {
    public var initR = 12, targetR = 8
    public var lambda: Float = 0.5, beta: Float = 0.9, gamma: Float = 2
    public var ti = 10, tf = 200, interval = 1
    public var tinit = 0, tfinal = 0, totalStep = 0
    public init() {}

    public init(_ c: SalientLoRAConfig, totalStep: Int) {
        initR = c.initR
        targetR = c.lora.r
        lambda = c.magnitudeWeight
        beta = c.correlationThreshold
        gamma = c.slopeThreshold
        interval = c.recordInterval
        self.totalStep = totalStep
        (tinit, tfinal) = c.phases.steps(of: totalStep)
        ti = RunPhases.steps(c.windowStart, fraction: c.windowStartFraction, of: totalStep, minimum: 2)
        tf = RunPhases.steps(
            c.windowEnd, fraction: c.windowEndFraction, of: totalStep, minimum: c.windowEnd == nil ? ti : 0)
    }

    public func validate() throws {
        func bad(_ m: String) -> ModelError { ModelError("SalientLoRA: " + m) }
        guard initR > 0, targetR >= 0, targetR <= initR else {
            throw bad("need 0 <= target_r (\(targetR)) <= init_r (\(initR))")
        }
        guard totalStep > 0, tinit >= 0, tfinal >= 0, tinit + tfinal < totalStep else {
            throw bad("tinit (\(tinit)) + tfinal (\(tfinal)) must be below the total steps (\(totalStep))")
        }
        guard ti > 1, tf >= ti else { throw bad("need 1 < window-start Ti (\(ti)) <= window-end Tf (\(tf))") }
        guard interval > 0 else { throw bad("record-interval must be positive") }
        guard lambda >= 0 && lambda <= 1 else { throw bad("magnitude-weight (lambda) must be in [0, 1]") }
        guard beta >= -1 && beta <= 1 else { throw bad("correlation-threshold (beta) must be in [-1, 1]") }
    }
}

/// The pieces of SalientLoRA's salience, as pure functions on singular-value histories.
public enum Salience {
    /// Dependency graph over singular values: an edge i → j (weight = regression slope of j on i,
    /// cov(i, j) / var(i)) when their Pearson correlation is at least `beta` and the slope at least
    /// `gamma`. `history[i]` is value i's time series. No self-loops.
    public static func dependencyGraph(_ history: [[Float]], beta: Float, gamma: Float) -> [[Float]] {
        let n = history.count
        let t = history.first?.count ?? 0
        var centered = history.map { row -> [Double] in
            let m = row.reduce(0.0) { $0 + Double($1) } / Double(max(1, t))
            return row.map { Double($0) - m }
        }
        let ss = centered.map { $0.reduce(0) { $0 + $1 * $1 } }
        var g = [[Float]](repeating: [Float](repeating: 0, count: n), count: n)
        for i in 0..<n where ss[i] > 0 {
            for j in 0..<n where j != i && ss[j] > 0 {
                var cov = 0.0
                for k in 0..<t { cov += centered[i][k] * centered[j][k] }
                let corr = cov / (ss[i] * ss[j]).squareRoot()
                let slope = cov / ss[i]
                if corr >= Double(beta) && slope >= Double(gamma) { g[i][j] = Float(slope) }
            }
        }
        centered.removeAll()
        return g
    }

    /// Removes the weakest edge of each cycle until the graph is acyclic.
    public static func breakCycles(_ g: inout [[Float]]) {
        let n = g.count
        while let cycle = findCycle(g, n) {
            var weakest = (cycle[0], cycle[1 % cycle.count])
            var w = Float.infinity
            for k in 0..<cycle.count {
                let u = cycle[k]
                let v = cycle[(k + 1) % cycle.count]
                if g[u][v] < w {
                    w = g[u][v]
                    weakest = (u, v)
                }
            }
            g[weakest.0][weakest.1] = 0
        }
    }

    /// A cycle as a node list (u0 → u1 → … → u0), or nil.
    static func findCycle(_ g: [[Float]], _ n: Int) -> [Int]? {
        var state = [UInt8](repeating: 0, count: n)  // 0 new, 1 on stack, 2 done
        var parent = [Int](repeating: -1, count: n)
        for s in 0..<n where state[s] == 0 {
            var stack: [(Int, Int)] = [(s, 0)]
            state[s] = 1
            while let (u, next) = stack.last {
                var j = next
                while j < n && g[u][j] == 0 { j += 1 }
                if j == n {
                    state[u] = 2
                    stack.removeLast()
                    continue
                }
                stack[stack.count - 1].1 = j + 1
                if state[j] == 1 {  // back edge u → j closes a cycle j → … → u
                    var cyc = [u]
                    var x = u
                    while x != j {
                        x = parent[x]
                        cyc.append(x)
                    }
                    return cyc.reversed()
                }
                if state[j] == 0 {
                    state[j] = 1
                    parent[j] = u
                    stack.append((j, 0))
                }
            }
        }
        return nil
    }

    /// Influence domain on an acyclic graph: D(i) = Σ_j w(i→j)·D'(j) with D'(leaf) = 1; nodes with no
    /// outgoing edge have D = 0 (they influence nothing). Normalised to sum 1 (all zero when no edges).
    public static func influence(_ g: [[Float]]) -> [Float] {
        let n = g.count
        var memo = [Double?](repeating: nil, count: n)
        func reach(_ i: Int) -> Double {
            if let m = memo[i] { return m }
            var s = 0.0
            var out = false
            for j in 0..<n where g[i][j] != 0 {
                out = true
                s += Double(g[i][j]) * reach(j)
            }
            let v = out ? s : 1
            memo[i] = v
            return v
        }
        var d = (0..<n).map { i -> Double in g[i].contains { $0 != 0 } ? reach(i) : 0 }
        let total = d.reduce(0, +)
        if total > 0 { d = d.map { $0 / total } }
        return d.map(Float.init)
    }

    /// Orthogonality-aware magnitude: Σ_t |E_i,t|·w_t with w_t = min-max-normalised (Σ_s reg_s) / reg_t
    /// (steps whose factors were more orthogonal count more), normalised within each module.
    public static func magnitude(_ history: [[Float]], orthLosses: [Float], moduleSizes: [Int]) -> [Float] {
        let total = orthLosses.reduce(0, +)
        var w = orthLosses.map { $0 > 0 ? total / $0 : 0 }
        if let lo = w.min(), let hi = w.max() { w = w.map { hi > lo ? ($0 - lo) / (hi - lo) : 1 } }
        var m = history.map { row in zip(row, w).reduce(Float(0)) { $0 + abs($1.0) * $1.1 } }
        var start = 0
        for size in moduleSizes {
            let s = m[start..<(start + size)].reduce(0, +)
            if s > 0 { for i in start..<(start + size) { m[i] /= s } }
            start += size
        }
        return m
    }

    /// S = λ·M̂ + (1−λ)·D̂.
    public static func salience(magnitude: [Float], influence: [Float], lambda: Float) -> [Float] {
        zip(magnitude, influence).map { lambda * $0 + (1 - lambda) * $1 }
    }
}

/// SalientLoRA's rank allocation over SVD adapters: record singular values over a time-series window
/// that widens from Ti to Tf, then prune the least salient ranks toward the target total rank. Pruned
/// ranks are removed for good (E held at 0, optimizer moments reset).
public final class SalientLoRAAllocator: CheckpointState {
    public let config: SalientLoRASchedule
    public let adapters: [(String, SVDAdapter)]
    public let regularizer: OrthogonalRegularizer
    public let totalRank: Int
    public let targetRank: Int
    /// Singular values recorded in the current window: one row per step, one column per rank.
    var window: [[Float]] = []
    var orthLosses: [Float] = []
    var stepsLeft: Int
    public var resetMoments: (Param, Int) -> Void = { _, _ in }
    public var onAllocate: (Int, Int, [String: Int]) -> Void = { _, _, _ in }

    public init(adapters: [String: SVDAdapter], config: SalientLoRASchedule, regularizer: OrthogonalRegularizer) {
        self.config = config
        self.adapters = adapters.sorted { $0.key < $1.key }
        self.regularizer = regularizer
        totalRank = adapters.values.reduce(0) { $0 + $1.rMax }
        targetRank = config.targetR * adapters.count
        stepsLeft = config.ti
    }

    /// Window length and rank budget at `step`: T = round(Tf + (Ti − Tf)(1 − c)³), c = (step − tinit)/(total − tfinal),
    /// budget = initial − (T/Tf)(initial − target).
    public func schedule(at step: Int) -> (window: Int, budget: Int) {
        let c = config
        if step <= c.tinit { return (c.ti, totalRank) }
        if step > c.totalStep - c.tfinal { return (c.tf, targetRank) }
        let coeff = Double(step - c.tinit) / Double(c.totalStep - c.tfinal)
        let t = Int((Double(c.tf) + Double(c.ti - c.tf) * pow(1 - coeff, 3)).rounded())
        let budget = Int(Double(totalRank) - Double(t) / Double(c.tf) * Double(totalRank - targetRank))
        return (t, budget)
    }

    /// Called after each optimizer step.
    public func step(_ step: Int) {
        let c = config
        // Pruned ranks stay pruned: keep their E at zero after every update.
        for (_, ad) in adapters { for j in 0..<ad.rMax where !ad.active[j] { ad.e.value[j] = 0 } }
        guard step > c.tinit else { return }
        if step > c.totalStep - c.tfinal {
            if currentRank > targetRank { allocate(step: step, budget: targetRank) }  // final phase: exactly the target
            return
        }
        if (step - c.tinit) % c.interval == 0 {
            window.append(adapters.flatMap { ad in (0..<ad.1.rMax).map { ad.1.e.value[$0] } })
            orthLosses.append(regularizer.adapters.isEmpty ? 1 : max(regularizer.lossUnweighted(), 1e-12))
        }
        stepsLeft -= 1
        if stepsLeft <= 0 {
            let (t, budget) = schedule(at: step)
            if window.count >= 2 { allocate(step: step, budget: budget) }
            stepsLeft = max(1, t)
        }
    }

    public var currentRank: Int { adapters.reduce(0) { $0 + $1.1.rank } }

    /// Scores every rank over the recorded window and prunes the least salient down to `budget`.
    func allocate(step: Int, budget: Int) {
        let history: [[Float]] =
            window.isEmpty
            ? adapters.flatMap { ad in (0..<ad.1.rMax).map { [ad.1.e.value[$0]] } }
            : (0..<totalRank).map { i in window.map { $0[i] } }
        let sizes = adapters.map(\.1.rMax)
        var graph = Salience.dependencyGraph(history, beta: config.beta, gamma: config.gamma)
        Salience.breakCycles(&graph)
        let d = Salience.influence(graph)
        let m = Salience.magnitude(
            history,
            orthLosses: orthLosses.isEmpty ? [Float](repeating: 1, count: history.first?.count ?? 1) : orthLosses,
            moduleSizes: sizes)
        var s = Salience.salience(magnitude: m, influence: d, lambda: config.lambda)
        // Already-pruned ranks rank lowest.
        var flat = 0
        for (_, ad) in adapters {
            for j in 0..<ad.rMax {
                if !ad.active[j] { s[flat] = -Float.infinity }
                flat += 1
            }
        }
        let toPrune = max(0, currentRank - max(budget, targetRank))
        if toPrune > 0 {
            let order = s.indices.filter { s[$0] > -Float.infinity }.sorted {
                s[$0] < s[$1] || (s[$0] == s[$1] && $0 < $1)
            }
            var offsets: [Int] = []
            var o = 0
            for (_, ad) in adapters {
                offsets.append(o)
                o += ad.rMax
            }
            for idx in order.prefix(toPrune) {
                let mIdx = offsets.lastIndex { $0 <= idx }!
                adapters[mIdx].1.deactivate(idx - offsets[mIdx], moments: resetMoments)
            }
        }
        window.removeAll(keepingCapacity: true)
        orthLosses.removeAll(keepingCapacity: true)
        onAllocate(step, budget, ranks)
    }

    public var ranks: [String: Int] { Dictionary(uniqueKeysWithValues: adapters.map { ($0.0, $0.1.rank) }) }

    /// Active ranks as a rank pattern (for saving in AdaLoRA's format).
    public var pattern: [String: [Bool]] { Dictionary(uniqueKeysWithValues: adapters.map { ($0.0, $0.1.active) }) }

    // MARK: CheckpointState

    public func checkpointTensors() -> [TensorToWrite] {
        var t = [TensorToWrite(name: "salient.state", shape: [2], floats: [Float(stepsLeft), Float(window.count)])]
        if !window.isEmpty {
            t.append(
                TensorToWrite(name: "salient.window", shape: [window.count, totalRank], floats: window.flatMap { $0 }))
            t.append(TensorToWrite(name: "salient.orth", shape: [orthLosses.count], floats: orthLosses))
        }
        t.append(
            TensorToWrite(
                name: "salient.active", shape: [totalRank], floats: adapters.flatMap { $0.1.active.map { $0 ? 1 : 0 } })
        )
        return t
    }

    public func restore(from f: CheckpointSection) throws {
        let st = try f.floats("salient.state", count: 2)
        guard st[0] >= 0, st[1] >= 0, st[1] <= 1e6 else { throw TrainError("salient.state out of range: \(st)") }
        stepsLeft = Int(st[0])
        let rows = Int(st[1])
        window = []
        orthLosses = []
        if rows > 0 {
            let w = try f.floats("salient.window", count: rows * totalRank)
            window = (0..<rows).map { Array(w[($0 * totalRank)..<(($0 + 1) * totalRank)]) }
            orthLosses = try f.floats("salient.orth", count: rows)
        }
        let act = try f.floats("salient.active", count: totalRank)
        var k = 0
        for (_, ad) in adapters {
            for j in 0..<ad.rMax {
                ad.active[j] = act[k] != 0
                k += 1
            }
        }
    }
}

/// `--method salientlora`: SVD adapters at `initR`, pruned by salience to `lora.r` per module on average.
public final class SalientLoRAMethod: SVDTuningMethod {
    public let name = "salientlora"
    public let config: SalientLoRAConfig
    public let svdAdapters: [(String, SVDAdapter)]
    public let regularizer: OrthogonalRegularizer
    public private(set) var allocator: SalientLoRAAllocator?

    public init(config: SalientLoRAConfig, backbone: any Backbone, seed: UInt64) throws {
        try config.validate()
        self.config = config
        svdAdapters = try SVDAdapter.attach(
            to: backbone, targeting: config.lora, initialRank: config.initR, seed: seed, method: "SalientLoRA",
            start: config.start
        )
        .sorted { $0.key < $1.key }
        regularizer = OrthogonalRegularizer(adapters: svdAdapters.map(\.1), weight: config.orthRegWeight)
    }

    public func prepare(totalSteps: Int) throws {
        let s = SalientLoRASchedule(config, totalStep: totalSteps)
        try s.validate()
        allocator = SalientLoRAAllocator(
            adapters: Dictionary(uniqueKeysWithValues: svdAdapters), config: s, regularizer: regularizer)
    }

    public var regularizers: [LossRegularizer] { [regularizer] }

    public func afterOptimizerStep(_ ctx: StepContext) throws {
        guard let allocator else { return }
        allocator.resetMoments = { p, j in ctx.optimizer.resetMoments(p, j) }
        allocator.onAllocate = { _, budget, ranks in
            ctx.log(["event": "ranks", "step": ctx.step, "budget": budget, "ranks": ranks])
        }
        allocator.step(ctx.step)
    }

    public var checkpointStates: [String: CheckpointState] { allocator.map { ["salientlora": $0] } ?? [:] }

    public func save(directory: String, model: TaskModel, metadata: AdapterMetadata) throws {
        let s = allocator?.config
        try AdaLoRAFormat.save(
            directory: directory, model: model, adapters: svdAdapters, pattern: svdPattern, targeting: config.lora,
            initR: config.initR,
            schedule: [
                "tinit": s?.tinit ?? 0, "tfinal": s?.tfinal ?? 0, "total_step": s?.totalStep ?? 1,
                "orth_reg_weight": Double(config.orthRegWeight),
            ], extra: metadata)
    }

    public var maxRank: Int { config.initR }
    public var summary: String {
        let s = allocator?.config
        return
            "init_r \(config.initR) -> r \(config.lora.r), tinit \(s?.tinit ?? 0), tfinal \(s?.tfinal ?? 0), window "
            + "\(s?.ti ?? 0) -> \(s?.tf ?? 0), lambda \(config.magnitudeWeight), beta "
            + "\(config.correlationThreshold), gamma \(config.slopeThreshold)"
    }
}
