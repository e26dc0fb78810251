import Data
import Foundation
import Models
import RankwiseCore

/// Why a step could not update the parameters (the trainer adds the step, epoch and checkpoint to tell the user).
public enum StepFailure: Error, CustomStringConvertible {
    /// The loss of the group's batch at `batchOffset` (0-based) was not finite.
    case loss(Float, batchOffset: Int)
    /// The clipped gradient's norm was not finite.
    case gradientNorm(Float)

    public var description: String {
        switch self {
        case let .loss(loss, offset): "the loss of batch \(offset + 1) of the step is \(loss)"
        case let .gradientNorm(norm): "the gradient norm of the step is \(norm)"
        }
    }
}

/// One optimizer step, as the trainer's loop and `bench train` both run it: forward and backward over a group of
/// batches (gradients accumulated, each loss scaled by 1 / group size), the global-norm clip, the method's hooks
/// around AdamW's update, then (`finish`) zeroed gradients.
public final class TrainingStep {
    public let model: TaskModel
    public let method: TuningMethod
    public let optimizer: AdamW
    /// Where the batches come from; a method may reweight it in its hooks.
    public let sampler: Sampler
    /// The training set the batches index (a method that scores examples runs them through the model).
    public let data: TokenizedSet
    /// Global gradient-norm clip (0: off).
    public let maxGradNorm: Float
    /// Seeds each batch's dropout together with the step number.
    public let seed: UInt64
    /// Per-group gradient, update and value norms, measured in the steps that ask for them.
    public let groupNorms: GroupNorms
    /// Writes one JSON object to `metrics.jsonl` (methods log their own events through it).
    public var log: ([String: Any]) -> Void = { _ in }

    public init(
        model: TaskModel, method: TuningMethod, optimizer: AdamW, sampler: Sampler, data: TokenizedSet,
        maxGradNorm: Float, seed: UInt64
    ) {
        self.model = model
        self.method = method
        self.optimizer = optimizer
        self.sampler = sampler
        self.data = data
        self.maxGradNorm = maxGradNorm
        self.seed = seed
        groupNorms = GroupNorms(params: model.params.trainable)
    }

    /// What one step did.
    public struct Outcome {
        /// The mean of the batches' losses.
        public var loss: Double
        /// The gradient's global norm before clipping.
        public var gradientNorm: Float
        /// Real (non-padding) tokens in the step's batches.
        public var realTokens: Int
    }

    /// Runs step number `step + 1` on `batches` (each a list of example indices into `data`), laid out packed
    /// unless `padded`; `epoch` is the 0-based epoch of the batches. With `measureGroups`, `groupNorms` records
    /// this step. Gradients must be zero on entry; `finish` zeroes them after the step. Throws `StepFailure` before the
    /// update when the loss or the gradient norm is not finite.
    public func run(
        batches: [[Int]], padded: Bool, step: Int, totalSteps: Int, epoch: Int, learningRate: Float,
        measureGroups: Bool = false
    ) throws -> Outcome {
        let groupSize = batches.count
        var stepLoss: Double = 0
        var realTokens = 0
        var examples: [Int] = []
        var exampleLosses: [Float] = []
        for (offset, indices) in batches.enumerated() {
            let labelled = data.batch(indices, packed: !padded)
            let dropoutSeed = seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(step * 64 + offset)
            let output = try model.forward(labelled, training: true, seed: dropoutSeed)
            let loss = output.loss!
            guard loss.isFinite else { throw StepFailure.loss(loss, batchOffset: offset) }
            try model.backward(lossScale: 1 / Float(groupSize))
            stepLoss += Double(loss) / Double(groupSize)
            realTokens += labelled.realTokens
            examples += indices
            exampleLosses += output.exampleLosses
        }
        if measureGroups { groupNorms.beforeStep() }
        let norm = clipGradNorm(model.params, maxNorm: maxGradNorm)
        guard norm.isFinite else { throw StepFailure.gradientNorm(norm) }
        func context(_ stepNumber: Int) -> StepContext {
            StepContext(
                step: stepNumber, totalSteps: totalSteps, epoch: epoch, optimizer: optimizer, sampler: sampler,
                examples: examples, exampleLosses: exampleLosses, model: model, data: data,
                learningRate: learningRate, log: log)
        }
        try method.beforeOptimizerStep(context(step))
        optimizer.step(lr: learningRate)
        if measureGroups { groupNorms.afterStep() }
        // Methods see the parameters after the update and this step's (clipped) gradients,
        // as PEFT's update_and_allocate does between optimizer.step() and zero_grad().
        try method.afterOptimizerStep(context(step + 1))
        return Outcome(loss: stepLoss, gradientNorm: norm, realTokens: realTokens)
    }

    /// Zeroes the gradients after a step (kept apart from `run` so that the trainer's observers see them).
    public func finish() {
        model.params.zeroGrad()
    }
}
