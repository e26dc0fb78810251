import Adapters
import Foundation
import Models
import RankwiseCore
import SafeTensors
import Training

/// AdaLoRA (Zhang et al. 2023) as PEFT implements it. `lora.r` is PEFT's `target_r`, the average final
/// rank per module, so `--r` means the same final budget for every method. Two defaults differ from
/// PEFT, each measured (README, "Adaptive methods in short runs"): the adapters start as LoRA does
/// (`--adapter-init zero-b`; `peft` is PEFT's start, which the parity tests use) and the schedule is
/// given as fractions of the run (`--delta-t 1` with `--tinit`/`--tfinal` in steps is PEFT's).
public struct AdaLoRAConfig: Settings, Sendable, Equatable {
    public var lora = LoRATargeting()
    public var initR = 12
    /// Steps before pruning starts, final steps with a fixed rank pattern and steps between budget
    /// updates: explicit counts, or (the default) fractions of the run.
    public var phases = PhaseSettings()
    public var deltaT: Int? = nil
    public var deltaTFraction = 0.01
    public var beta1: Float = 0.85
    public var beta2: Float = 0.85
    public var orthRegWeight: Float = 0.5
    public var start = SVDStartSettings()
    public init() {}

    public static let help = [
        "initR": "initial rank of every module",
        "tinit": RunPhases.stepHelp("warm-up before pruning starts", fractionFlag: "tinit-fraction"),
        "tfinal": RunPhases.stepHelp("final phase with a fixed rank pattern", fractionFlag: "tfinal-fraction"),
        "deltaT": RunPhases.stepHelp(
            "interval between budget updates (PEFT's default is 1)", fractionFlag: "delta-t-fraction") + ", at least 1",
        "deltaTFraction":
            "interval between budget updates as a fraction of the run's steps (when --delta-t is not given)",
        "beta1": "EMA factor of the sensitivity |p*g|",
        "beta2": "EMA factor of the sensitivity's uncertainty",
        "orthRegWeight": "weight of the orthogonal regulariser",
    ]
    public static let aliases = ["target-r": "r"]

    public var targetR: Int { lora.r }

    /// Errors for options no run could use, before anything is built; the schedule is checked against the
    /// run's own steps when they are known (`prepare`).
    public func validate() throws {
        try lora.validate(method: "AdaLoRA")
        try phases.validate(method: "AdaLoRA")
        try RunPhases.validate([("delta-t-fraction", deltaTFraction)], method: "AdaLoRA")
        guard orthRegWeight >= 0 else { throw ModelError("AdaLoRA: orth_reg_weight must not be negative") }
        _ = try start.kind(method: "AdaLoRA")
        func bad(_ m: String) -> ModelError { ModelError("AdaLoRA: " + m) }
        guard initR > 0 else { throw bad("init_r must be positive (got \(initR))") }
        guard targetR >= 0 && targetR <= initR else {
            throw bad("target_r (\(targetR)) must be between 0 and init_r (\(initR))")
        }
        guard (deltaT ?? 1) > 0 else { throw bad("delta-t must be positive (got \(deltaT ?? 0))") }
        guard beta1 > 0 && beta1 < 1 && beta2 > 0 && beta2 < 1 else { throw bad("beta1 and beta2 must be in (0, 1)") }
    }
}

/// AdaLoRA's schedule resolved for a run of `totalStep` optimizer steps.
public struct AdaLoRASchedule: Sendable, Equatable {
    public var initR: Int, targetR: Int, tinit: Int, tfinal: Int, deltaT: Int, totalStep: Int
    public var beta1: Float, beta2: Float

    public init(_ c: AdaLoRAConfig, totalStep: Int) {
        initR = c.initR
        targetR = c.targetR
        self.totalStep = totalStep
        (tinit, tfinal) = c.phases.steps(of: totalStep)
        deltaT = RunPhases.steps(c.deltaT, fraction: c.deltaTFraction, of: totalStep, minimum: 1)
        beta1 = c.beta1
        beta2 = c.beta2
    }

    /// Rejects schedules that cannot work, before any training happens.
    public func validate() throws {
        func bad(_ m: String) -> ModelError { ModelError("AdaLoRA: " + m) }
        guard initR > 0 else { throw bad("init_r must be positive (got \(initR))") }
        guard targetR >= 0 && targetR <= initR else {
            throw bad("target_r (\(targetR)) must be between 0 and init_r (\(initR))")
        }
        guard totalStep > 0 else { throw bad("total_step must be positive (got \(totalStep))") }
        guard tinit >= 0, tfinal >= 0 else { throw bad("tinit and tfinal must not be negative") }
        guard tinit + tfinal < totalStep else {
            throw bad(
                "tinit (\(tinit)) + tfinal (\(tfinal)) must be below the total steps (\(totalStep)): no step would be "
                    + "left for allocating ranks"
            )
        }
        guard deltaT > 0 else { throw bad("deltaT must be positive (got \(deltaT))") }
        guard beta1 > 0 && beta1 < 1 && beta2 > 0 && beta2 < 1 else { throw bad("beta1 and beta2 must be in (0, 1)") }
    }
}

/// AdaLoRA as PEFT implements it: SVD adapters, orthogonal regulariser, smoothed sensitivity ×
/// uncertainty scores, a cubic budget schedule, a global threshold over all triplets, and a fixed mask
/// in the final phase. `step(_:)` takes PEFT's 0-based `global_step`.
public final class AdaLoRAAllocator: CheckpointState {
    public let config: AdaLoRASchedule
    /// Adapters by module path, in a fixed (sorted) order.
    public let adapters: [(String, SVDAdapter)]
    public let initBudget: Int
    public let targetBudget: Int
    /// Smoothed sensitivity × uncertainty of every adapter parameter.
    let sensitivity: Sensitivity
    /// The kept triplets after the last masking (nil before any).
    public internal(set) var rankPattern: [String: [Bool]]?
    public var onAllocate: (Int, Int, [String: Int]) -> Void = { _, _, _ in }

    public init(adapters: [String: SVDAdapter], config: AdaLoRASchedule) {
        self.config = config
        self.adapters = adapters.sorted { $0.key < $1.key }
        initBudget = adapters.values.reduce(0) { $0 + $1.rMax }
        targetBudget = config.targetR * adapters.count
        sensitivity = Sensitivity(beta1: config.beta1, beta2: config.beta2)
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

    /// Triplet scores of one adapter (see `Sensitivity`).
    public func tripletScores(_ ad: SVDAdapter) -> [Float] { sensitivity.tripletScores(ad) }

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
            sensitivity.update(adapters.flatMap(\.1.params))
            let (b, mask) = budget(at: globalStep)
            if mask {
                rankPattern = maskToBudget(b)
                onAllocate(globalStep, b, ranks)
            }
        } else if globalStep == last {
            let (b, _) = budget(at: globalStep)
            rankPattern = maskToBudget(b)
            sensitivity.reset()
            onAllocate(globalStep, b, ranks)
        } else {
            applyPattern()
        }
    }

    /// Current rank of every module.
    public var ranks: [String: Int] { Dictionary(uniqueKeysWithValues: adapters.map { ($0.0, $0.1.rank) }) }

    /// The rank pattern to save: the last mask, or every rank kept when no allocation happened yet.
    public var patternForSaving: [String: [Bool]] {
        rankPattern
            ?? Dictionary(uniqueKeysWithValues: adapters.map { ($0.0, [Bool](repeating: true, count: $0.1.rMax)) })
    }

    // MARK: CheckpointState

    public func checkpointTensors() -> [TensorToWrite] {
        var t = sensitivity.checkpointTensors(adapters.flatMap(\.1.params), prefix: "adalora.")
        for (path, _) in adapters {
            if let keep = rankPattern?[path] {
                t.append(
                    TensorToWrite(name: "adalora.pattern." + path, shape: [keep.count], floats: keep.map { $0 ? 1 : 0 })
                )
            }
        }
        return t
    }

    public func restore(from f: CheckpointSection) throws {
        try sensitivity.restore(adapters.flatMap(\.1.params), prefix: "adalora.", from: f)
        var pattern: [String: [Bool]] = [:]
        for (path, ad) in adapters where f.contains("adalora.pattern." + path) {
            pattern[path] = try f.floats("adalora.pattern." + path, count: ad.rMax).map { $0 != 0 }
        }
        rankPattern = pattern.isEmpty ? nil : pattern
        if let rankPattern { for (path, ad) in adapters { if let k = rankPattern[path] { ad.active = k } } }
    }
}

/// `--method adalora`: SVD adapters at `initR`, PEFT's allocator pruning to `lora.r` per module on average.
public final class AdaLoRAMethod: SVDTuningMethod {
    public let name = "adalora"
    public let config: AdaLoRAConfig
    public let svdAdapters: [(String, SVDAdapter)]
    public let regularizer: OrthogonalRegularizer
    /// Made by `prepare`, once the number of steps is known.
    public private(set) var allocator: AdaLoRAAllocator?

    public init(config: AdaLoRAConfig, backbone: any Backbone, seed: UInt64) throws {
        try config.validate()
        self.config = config
        svdAdapters = try SVDAdapter.attach(
            to: backbone, targeting: config.lora, initialRank: config.initR, seed: seed, method: "AdaLoRA",
            start: config.start
        )
        .sorted { $0.key < $1.key }
        regularizer = OrthogonalRegularizer(adapters: svdAdapters.map(\.1), weight: config.orthRegWeight)
    }

    public func prepare(totalSteps: Int) throws {
        let schedule = AdaLoRASchedule(config, totalStep: totalSteps)
        try schedule.validate()
        allocator = AdaLoRAAllocator(adapters: Dictionary(uniqueKeysWithValues: svdAdapters), config: schedule)
    }

    public var regularizers: [LossRegularizer] { [regularizer] }

    public func afterOptimizerStep(_ ctx: StepContext) throws {
        guard let allocator else { return }
        allocator.onAllocate = { _, budget, ranks in
            ctx.log(["event": "ranks", "step": ctx.step, "budget": budget, "ranks": ranks])
        }
        allocator.step(ctx.step - 1)  // PEFT's update_and_allocate takes the 0-based global_step
    }

    public var checkpointStates: [String: CheckpointState] { allocator.map { ["adalora": $0] } ?? [:] }

    public func save(directory: String, model: TaskModel, metadata: AdapterMetadata) throws {
        let s = allocator?.config
        try AdaLoRAFormat.save(
            directory: directory, model: model, adapters: svdAdapters,
            pattern: allocator?.patternForSaving ?? svdPattern, targeting: config.lora, initR: config.initR,
            schedule: [
                "tinit": s?.tinit ?? 0, "tfinal": s?.tfinal ?? 0, "deltaT": s?.deltaT ?? 1,
                "total_step": s?.totalStep ?? 1,
                "beta1": Double(config.beta1), "beta2": Double(config.beta2),
                "orth_reg_weight": Double(config.orthRegWeight),
            ],
            extra: metadata)
    }

    public var maxRank: Int { config.initR }
    public var summary: String {
        let s = allocator?.config
        return
            "init_r \(config.initR) -> r \(config.lora.r), tinit \(s?.tinit ?? 0), tfinal \(s?.tfinal ?? 0), deltaT "
            + "\(s?.deltaT ?? 0), orth_reg_weight \(config.orthRegWeight)"
    }
}
