import Foundation
import RankwiseCore

/// Everything that shapes a training run. Each property is an option (`--batch-size`, YAML
/// `batch_size`), declared here once with its default.
public struct TrainConfig: Settings, Sendable, Codable, Equatable {
    public var epochs: Double = 3
    public var batchSize: Int? = nil
    public var gradAccum = 1
    public var lr: Float = 5e-4
    public var schedule = Schedule.linear
    public var warmupRatio: Float = 0.06
    public var warmupSteps: Int? = nil
    public var weightDecay: Float = 0
    public var maxGradNorm: Float = 1
    public var maxLength: Int? = nil
    public var seed: UInt64 = 42
    public var sampler = SamplerKind.random
    public var padded = false
    public var evalEvery = 0
    public var checkpointEvery = 200
    public var patience = 0
    public var maxSteps: Int? = nil
    public var logEvery = 10
    public init() {}

    public static let help = [
        "epochs": "epochs (fractions allowed)",
        "batchSize": "examples per batch [none: 32; a causal LM 8]",
        "gradAccum": "batches per optimizer step",
        "lr": "peak learning rate (the SVD methods want about 10x LoRA's)",
        "schedule": "linear, cosine or constant (after warmup)",
        "warmupRatio": "warmup as a fraction of the steps", "warmupSteps": "warmup steps (overrides --warmup-ratio)",
        "weightDecay": "AdamW weight decay", "maxGradNorm": "global gradient-norm clip (0: off)",
        "maxLength": "maximum tokens per example [none: 128; a causal LM 1024]",
        "seed": "random seed (initialisation, batches, dropout; the data split has --split-seed)",
        "sampler":
            "random (seeded random batches, run unpadded) or bucketed (batches of texts of similar length: where "
            + "length goes with the label, as in sentence pairs, each batch's label mix is skewed; measured worse "
            + "on SNLI)",
        "padded":
            "pad each batch to its longest text (the default runs batches unpadded, with per-sequence attention: same "
            + "results, no work on padding)",
        "evalEvery": "evaluate on dev every N steps (0: each epoch)",
        "checkpointEvery": "checkpoint every N steps (0: at each evaluation)",
        "patience": "early stopping after N evaluations without improvement (0: off)",
        "maxSteps": "stop after N optimizer steps",
        "logEvery": "write a train line to metrics.jsonl every N steps",
    ]
    public static let aliases = [
        "learning-rate": "lr", "gradient-accumulation": "gradAccum", "early-stopping-patience": "patience",
    ]

    public var scheduleKind: Schedule { schedule }

    /// The batch size and maximum length a run uses when not given: an encoder's (32 short texts of 128 tokens) or
    /// a causal LM's (8 examples of up to 1,024 tokens, as TRL's trainer batches them).
    public static func defaults(languageModel: Bool) -> (batchSize: Int, maxLength: Int) {
        languageModel ? (8, 1024) : (32, 128)
    }

    /// This configuration with the model's defaults where `batchSize` and `maxLength` are not given; the default
    /// length is at most the model's `contextLength`.
    public func resolved(languageModel: Bool, contextLength: Int? = nil) -> TrainConfig {
        var config = self
        let defaults = Self.defaults(languageModel: languageModel)
        config.batchSize = batchSize ?? defaults.batchSize
        config.maxLength = maxLength ?? min(defaults.maxLength, contextLength ?? defaults.maxLength)
        return config
    }

    /// Errors for settings that cannot work, naming the option.
    public func validate() throws {
        guard (batchSize ?? 1) > 0, gradAccum > 0, epochs > 0 else {
            throw TrainError("--batch-size, --grad-accum and --epochs must be positive")
        }
        guard lr.isFinite, lr > 0, lr < 10 else {
            throw TrainError("--lr must be a positive number below 10 (got \(lr))")
        }
        guard warmupRatio.isFinite, (0...1).contains(warmupRatio) else {
            throw TrainError("--warmup-ratio must be between 0 and 1 (got \(warmupRatio))")
        }
        guard weightDecay.isFinite, weightDecay >= 0, maxGradNorm.isFinite, maxGradNorm >= 0 else {
            throw TrainError("--weight-decay and --max-grad-norm must be finite and not negative")
        }
        guard epochs.isFinite, epochs <= 10_000, (batchSize ?? 1) <= 65_536, gradAccum <= 65_536,
            (maxLength ?? 2) <= 1 << 20,
            (warmupSteps ?? 0) >= 0
        else {
            throw TrainError("--epochs, --batch-size, --grad-accum, --max-length or --warmup-steps out of range")
        }
        guard (maxLength ?? 2) >= 2 else { throw TrainError("--max-length must be at least 2") }
        guard evalEvery >= 0, checkpointEvery >= 0, patience >= 0, logEvery > 0, (maxSteps ?? 1) > 0 else {
            throw TrainError(
                "--eval-every, --checkpoint-every and --patience must not be negative; --max-steps and --log-every "
                    + "must be positive"
            )
        }
    }
}

/// What the trainer reports as it goes.
public enum TrainEvent {
    case step(
        step: Int, totalSteps: Int, epoch: Double, loss: Float, lr: Float, gradNorm: Float, tokensPerSecond: Double)
    case evaluation(step: Int, metrics: [String: Double], isBest: Bool)
    case checkpoint(step: Int, path: String)
    case resumed(step: Int, epoch: Int, batch: Int)
    case stoppedEarly(step: Int, reason: String)
    /// Something the user should know that does not stop training.
    case warning(String)
}

public struct TrainError: Error, CustomStringConvertible {
    public var message: String
    public init(_ m: String) { message = m }
    public var description: String { message }
}
