import Adapters
import Foundation
import Models
import RankwiseCore
import SafeTensors
import Training

/// SoRA's options (Ding et al. 2023; reference code TsinghuaC3I/SoRA). `r` is the rank every module
/// SoRA's sparsifying schedule of ξ (the reference's `lambda_schedule`).
public enum SoRASchedule: String, Sendable, SettingChoice {
    case none
    case linear
    case logLinear = "log_linear"
    case expLinear = "exp_linear"
}

/// starts with; the final ranks are the gates left non-zero.
public struct SoRAConfig: Settings, Sendable, Equatable {
    public var lora = LoRATargeting()
    /// η: weight of the L1 penalty η · Σ|g| / (number of gates) added to the loss (the reference's `sparse_lambda`).
    public var l1Weight: Float = 1e-3
    /// ξ: after each optimizer step every gate is soft-thresholded by ξ, g ← sign(g) · max(|g| − ξ, 0)
    /// (the reference's `sparse_lambda_2`, not multiplied by the learning rate, as in its `sparse_optimizer.py`).
    public var threshold: Float = 3e-4
    /// The sparsifying schedule: `none` (ξ throughout) or ξ rising from `threshold` to `max-threshold` in
    /// `stages` equal parts of training, `linear`, `log_linear` or `exp_linear` as in the reference.
    public var schedule = SoRASchedule.none
    public var maxThreshold: Float = 1e-3
    public var stages = 5
    public init() {}

    public static let help = [
        "l1Weight": "eta: weight of the L1 penalty on the gates (mean |g|) in the loss",
        "threshold": "xi: soft threshold applied to every gate after each optimizer step",
        "schedule":
            "sparsifying schedule of xi: none, linear, log_linear, exp_linear (the reference's lambda_schedule); "
            + "give it as --xi-schedule, since --schedule is the learning rate's",
        "maxThreshold": "the last xi of a schedule (the reference's max_lambda)",
        "stages":
            "number of xi values a schedule steps through, in equal parts of training (the reference's lambda_num)",
    ]

    /// `--schedule` is the training option (the learning rate's schedule), so this one is reached by its alias.
    public static let aliases = ["xi-schedule": "schedule"]

    public func validate() throws {
        try lora.validate(method: "SoRA")
        guard l1Weight >= 0, threshold >= 0, maxThreshold >= 0 else {
            throw SettingsError("SoRA: --l1-weight, --threshold and --max-threshold must not be negative")
        }
        guard stages >= 1 else { throw SettingsError("SoRA: --stages must be at least 1") }
        if schedule == .expLinear && (threshold <= 0 || maxThreshold <= 0) {
            throw SettingsError("SoRA: an exp_linear schedule needs positive --threshold and --max-threshold")
        }
    }

    /// ξ for each stage of the schedule.
    public var thresholds: [Float] {
        let n = schedule == .none ? 1 : stages
        return (0..<n).map { i in
            let t = n == 1 ? 0 : Float(i) / Float(n - 1)
            switch schedule {
            case .linear: return threshold + t * (maxThreshold - threshold)
            case .logLinear: return log(exp(threshold) + t * (exp(maxThreshold) - exp(threshold)))
            case .expLinear: return exp(log(threshold) + t * (log(maxThreshold) - log(threshold)))
            case .none: return threshold
            }
        }
    }
}

/// `--method sora`: a gate between the down and up projection of every LoRA adapter, pushed to zero by
/// an L1 penalty and a proximal (soft-threshold) step after each optimizer step; ranks whose gate is
/// zero are dropped from the export, which is PEFT's LoRA format with `rank_pattern` (the gate folded
/// into B), so PEFT loads it. What is ours: the reference trains its schedule's stages as separate runs
/// of 15 epochs each; here the stages divide one run's steps.
public final class SoRAMethod: TuningMethod {
    public let name = "sora"
    public let config: SoRAConfig
    public let soraAdapters: [(String, SoRAAdapter)]
    private var lastRanks: [String: Int] = [:]

    public init(config: SoRAConfig, backbone: any Backbone, seed: UInt64) throws {
        try config.validate()
        self.config = config
        let r = config.lora.r
        var rng = SplitMix64(seed: seed)
        var out: [(String, SoRAAdapter)] = []
        for lin in try config.lora.targets(in: backbone, method: "SoRA", rank: r) {
            // A as LoRA (Kaiming-uniform), B = 0, gates from a standard normal as the reference.
            let a = LoRA.initialA(r: r, inDim: lin.inDim, rng: &rng)
            let g = Tensor(zeros: [r])
            for k in 0..<r { g[k] = rng.nextNormal() }
            out.append(
                (
                    lin.path,
                    SoRAAdapter(
                        path: lin.path, inDim: lin.inDim, outDim: lin.outDim, r: r,
                        scaling: config.lora.alpha / Float(r),
                        dropout: config.lora.loraDropout, a: a, b: Tensor(zeros: [lin.outDim, r]), gate: g)
                ))
        }
        soraAdapters = out.sorted { $0.0 < $1.0 }
        attach(backbone)
    }

    init(config: SoRAConfig, adapters: [(String, SoRAAdapter)], backbone: any Backbone) {
        self.config = config
        soraAdapters = adapters.sorted { $0.0 < $1.0 }
        attach(backbone)
    }

    private func attach(_ backbone: any Backbone) {
        let byPath = Dictionary(uniqueKeysWithValues: soraAdapters)
        for lin in backbone.adaptableLinears {
            if let ad = byPath[lin.path] {
                lin.adapter = ad
                for p in ad.params { backbone.params.add(p) }
            }
        }
        lastRanks = ranks
    }

    public var adapters: [(String, LinearAdapter)] { soraAdapters.map { ($0.0, $0.1 as LinearAdapter) } }
    public var regularizers: [LossRegularizer] {
        config.l1Weight > 0 ? [GateL1(gates: soraAdapters.map(\.1.gate), weight: config.l1Weight)] : []
    }
    public var ranks: [String: Int] { Dictionary(uniqueKeysWithValues: soraAdapters.map { ($0.0, $0.1.activeRank) }) }
    public var maxRank: Int { config.lora.r }
    public var summary: String {
        let threshold =
            config.schedule == .none
            ? "\(config.threshold)"
            : "\(config.schedule.rawValue) \(config.threshold) to \(config.maxThreshold) in \(config.stages) stages"
        return "SoRA r \(config.lora.r), eta \(config.l1Weight), xi \(threshold)"
    }

    /// ξ at `step` of `totalSteps`.
    public func threshold(step: Int, totalSteps: Int) -> Float {
        let xs = config.thresholds
        return xs[min(xs.count - 1, step * xs.count / max(1, totalSteps))]
    }

    /// The proximal step of the L1 penalty: every gate soft-thresholded by ξ; a change of ranks is logged.
    public func afterOptimizerStep(_ context: StepContext) throws {
        let xi = threshold(step: context.step - 1, totalSteps: context.totalSteps)
        for (_, ad) in soraAdapters {
            for k in 0..<ad.r {
                let g = ad.gate.value[k]
                ad.gate.value[k] = g > xi ? g - xi : g < -xi ? g + xi : 0
            }
        }
        let now = ranks
        if now != lastRanks {
            context.log([
                "event": "ranks", "step": context.step, "ranks": now, "budget": now.values.reduce(0, +),
                "threshold": Double(xi),
            ])
            lastRanks = now
        }
    }

    /// PEFT's LoRA format: per module only the ranks whose gate is not zero, the gate folded into B, the
    /// ranks in `rank_pattern` and `alpha_pattern` keeping each module's scale; modules with no rank left
    /// are left out of `target_modules`.
    public func save(directory: String, model: TaskModel, metadata: AdapterMetadata) throws {
        var modules: [String: PEFTFormat.KeptRanks] = [:]
        for (path, ad) in soraAdapters {
            let (bg, kept) = ad.folded()
            modules[path] = PEFTFormat.KeptRanks(a: ad.a.value, b: bg, kept: kept, scaling: ad.scaling)
        }
        try PEFTFormat.save(
            directory: directory, model: model, keptRanks: modules,
            config: LoRAConfig(r: config.lora.r, alpha: config.lora.alpha, dropout: config.lora.loraDropout),
            extra: metadata)
    }

    /// Reads a PEFT LoRA directory with per-module ranks (as `save` writes it) into `backbone`, each module's
    /// ranks with gates of 1.
    public static func load(directory: String, backbone: any Backbone) throws -> (TuningMethod, WeightSource?) {
        let (loraConfig, loraAdapters, head) = try PEFTFormat.loadKeptRanks(directory: directory, backbone: backbone)
        var c = SoRAConfig()
        c.lora.r = max(1, loraAdapters.values.map(\.r).max() ?? loraConfig.r)
        c.lora.alpha = loraConfig.alpha
        c.lora.targetModules = loraConfig.targetModules
        let ads = loraAdapters.map { path, l in
            (
                path,
                SoRAAdapter(
                    path: path, inDim: l.a.shape[1], outDim: l.b.shape[0], r: l.r, scaling: l.scaling, dropout: 0,
                    a: l.a.value, b: l.b.value, gate: Tensor(shape: [l.r], values: [Float](repeating: 1, count: l.r)))
            )
        }
        return (SoRAMethod(config: c, adapters: ads, backbone: backbone), head)
    }
}

/// η · Σ|g| / (number of gates), the reference's `sparse_loss`; its gradient η · sign(g) / N (0 at 0).
final class GateL1: LossRegularizer {
    let gates: [Param], weight: Float, count: Float
    init(gates: [Param], weight: Float) {
        self.gates = gates
        self.weight = weight
        count = Float(max(1, gates.map(\.count).reduce(0, +)))
    }
    func loss() -> Float {
        weight * gates.map { g in (0..<g.count).map { abs(g.value[$0]) }.reduce(0, +) }.reduce(0, +) / count
    }
    func backward(scale: Float) {
        for g in gates {
            guard let grad = g.grad else { continue }
            for k in 0..<g.count {
                let v = g.value[k]
                grad[k] += scale * weight * (v > 0 ? 1 : v < 0 ? -1 : 0) / count
            }
        }
    }
}
