import Foundation
import Models
import RankwiseCore
import SafeTensors

/// Something besides parameters and optimizer moments that a checkpoint must hold (a method's
/// scores and rank masks, a sampler's weights). The trainer stores each state under its own name.
public protocol CheckpointState: AnyObject {
    func checkpointTensors() -> [TensorToWrite]
    func restore(from section: CheckpointSection) throws
}

/// The tensors one named state wrote into a checkpoint (names without the state's prefix).
public struct CheckpointSection {
    public let file: SafeTensorsFile
    public let prefix: String
    public init(file: SafeTensorsFile, prefix: String) {
        self.file = file
        self.prefix = prefix
    }

    public func contains(_ name: String) -> Bool { file.contains(prefix + name) }

    /// Float values of `name`; with `count`, an error unless there are exactly that many.
    public func floats(_ name: String, count: Int? = nil) throws -> [Float] {
        guard file.contains(prefix + name) else {
            throw TrainError("\(file.path): checkpoint has no tensor \(prefix + name)")
        }
        let v = try file.floats(prefix + name)
        if let count, v.count != count {
            throw TrainError("\(file.path): \(prefix + name) has \(v.count) values, expected \(count)")
        }
        return v
    }

    public func ints(_ name: String, count: Int? = nil) throws -> [Int64] {
        guard file.contains(prefix + name) else {
            throw TrainError("\(file.path): checkpoint has no tensor \(prefix + name)")
        }
        let v = try file.ints(prefix + name)
        if let count, v.count != count {
            throw TrainError("\(file.path): \(prefix + name) has \(v.count) values, expected \(count)")
        }
        return v
    }
}

/// What a method sees at its hooks. Steps are counted one way everywhere: `step` is the number of
/// optimizer steps completed, 1 after the first update, `totalSteps` after the last.
public struct StepContext {
    public let step: Int
    public let totalSteps: Int
    /// 0-based epoch of the step's batches.
    public let epoch: Int
    /// The optimizer, to reset or slice moments of ranks that are pruned or grown.
    public let optimizer: AdamW
    /// The sampler the batches come from (a method may set a `WeightedSampler`'s weights).
    public let sampler: Sampler
    /// Example indices of this step's batches, and each example's loss (without regularisers).
    public let examples: [Int]
    public let exampleLosses: [Float]
    /// Writes one JSON object to `metrics.jsonl`.
    public let log: ([String: Any]) -> Void
    /// The model being trained and its training set (a method that scores examples runs them through it).
    public let model: TaskModel?
    public let data: TokenizedSet?
    /// The learning rate of this step's update.
    public let learningRate: Float

    public init(
        step: Int, totalSteps: Int, epoch: Int, optimizer: AdamW, sampler: Sampler, examples: [Int] = [],
        exampleLosses: [Float] = [],
        model: TaskModel? = nil, data: TokenizedSet? = nil, learningRate: Float = 0,
        log: @escaping ([String: Any]) -> Void = { _ in }
    ) {
        self.step = step
        self.totalSteps = totalSteps
        self.epoch = epoch
        self.optimizer = optimizer
        self.sampler = sampler
        self.examples = examples
        self.exampleLosses = exampleLosses
        self.model = model
        self.data = data
        self.learningRate = learningRate
        self.log = log
    }
}

/// A tuning method attached to a model: LoRA, AdaLoRA, SalientLoRA, ElaLoRA, … The trainer knows
/// nothing else about a method. Hooks are called in this order:
///
///     prepare(totalSteps:)                         once, before the first step (and before a resume)
///     per step: forward + backward of each batch (with `regularizers`), clipping,
///               beforeOptimizerStep(_:)            gradients final, parameters not yet updated
///               optimizer update
///               afterOptimizerStep(_:)             parameters updated, this step's gradients still there
///               gradients zeroed
///
/// `checkpointStates` are written with every checkpoint and restored on resume.
public protocol TuningMethod: AnyObject {
    /// Registry name (`--method`).
    var name: String { get }
    /// Adapters by module path, sorted by path.
    var adapters: [(String, LinearAdapter)] { get }
    /// Learns the number of optimizer steps of the run; throws when the method's schedule cannot work.
    func prepare(totalSteps: Int) throws
    /// Whether a parameter of the backbone trains besides the head's, which always do (default: adapter parameters).
    func isTrainable(_ name: String) -> Bool
    /// Terms the method adds to the loss.
    var regularizers: [LossRegularizer] { get }
    /// A sampler of the method's own (e.g. a `WeightedSampler`), or nil for the run's default.
    func makeSampler(count: Int, batchSize: Int, seed: UInt64) -> Sampler?
    func beforeOptimizerStep(_ context: StepContext) throws
    func afterOptimizerStep(_ context: StepContext) throws
    /// Named states the checkpoint must hold.
    var checkpointStates: [String: CheckpointState] { get }
    /// Writes the adapter and the classifier (PEFT format where PEFT can express the method).
    func save(directory: String, model: TaskModel, metadata: AdapterMetadata) throws
    /// Current rank of every adapted module, and the largest rank a module may have.
    var ranks: [String: Int] { get }
    var maxRank: Int { get }
    /// One line for the run's header (settings that matter).
    var summary: String { get }
}

extension TuningMethod {
    public func prepare(totalSteps: Int) throws {}
    public func isTrainable(_ name: String) -> Bool { name.contains("lora_") }
    public var regularizers: [LossRegularizer] { [] }
    public func makeSampler(count: Int, batchSize: Int, seed: UInt64) -> Sampler? { nil }
    public func beforeOptimizerStep(_ context: StepContext) throws {}
    public func afterOptimizerStep(_ context: StepContext) throws {}
    public var checkpointStates: [String: CheckpointState] { [:] }
}
