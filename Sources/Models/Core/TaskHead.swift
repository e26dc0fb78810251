import Foundation
import RankwiseCore

/// How a task's model is named in Hugging Face and PEFT files.
public struct HeadNames: Sendable, Equatable {
    /// PEFT `task_type` (`SEQ_CLS`).
    public let peftTaskType: String
    /// PEFT `modules_to_save`: the head's module names (Hugging Face calls BERT's `classifier`, LLaMA's `score`).
    public let modulesToSave: [String]
    /// The model class after the backbone's stem: `Bert` + `ForSequenceClassification`.
    public let classSuffix: String
    /// config.json `problem_type`, also rankwise.json's `problem`.
    public let problemType: String

    public init(peftTaskType: String, modulesToSave: [String], classSuffix: String, problemType: String) {
        self.peftTaskType = peftTaskType
        self.modulesToSave = modulesToSave
        self.classSuffix = classSuffix
        self.problemType = problemType
    }
}

/// What a batch is trained toward; each head reads the part it learns.
public struct HeadTargets: Sendable {
    /// One class id per example (classification).
    public var classes: [Int32]?
    /// One value per example (regression).
    public var values: [Float]?
    /// One next-token id per token row of the batch (in its layout's order), -1 where nothing is predicted
    /// (causal language modelling: the prompt under response-only loss, the last token, padding).
    public var tokens: [Int32]?
    /// Each example's weight in the batch loss (nil: all 1); the causal-LM head reads it.
    public var exampleWeights: [Float]?

    public init(
        classes: [Int32]? = nil, values: [Float]? = nil, tokens: [Int32]? = nil, exampleWeights: [Float]? = nil
    ) {
        self.classes = classes
        self.values = values
        self.tokens = tokens
        self.exampleWeights = exampleWeights
    }
}

/// What a head's forward gives: its outputs per example, and with targets the batch loss (the mean over
/// examples) and each example's loss.
public struct HeadOutput {
    /// `[batch, outputs]` (the causal-LM head: each example's summed token loss and its number of target tokens)
    public var logits: [Float]
    public var loss: Float?
    /// Each example's loss; empty without targets. The batch loss is their mean, so an example's weight is
    /// 1 / batch for the sequence heads; the causal-LM head gives each example's mean token loss.
    public var exampleLosses: [Float]

    public init(logits: [Float], loss: Float?, exampleLosses: [Float]) {
        self.logits = logits
        self.loss = loss
        self.exampleLosses = exampleLosses
    }
}

/// The task on top of a backbone: its parameters, its loss with per-example losses and the gradient back into
/// the backbone, its primary metric and what the adapter formats need to name it. The model being trained is
/// a backbone plus a head (`TaskModel`).
public protocol TaskHead: AnyObject {
    /// The head's parameters (Hugging Face names, e.g. `classifier.weight`), registered in the backbone's set.
    var params: [Param] { get }
    /// Outputs per example (classes, or 1 for regression).
    var outputs: Int { get }
    /// The metric that chooses the best checkpoint and the learning rate: `macro_f1`, `pearson`.
    var primaryMetric: String { get }
    /// The metrics `evaluate` gives, in the order a summary prints them (`loss` aside).
    var metricNames: [String] { get }
    /// Reads a set's outputs (`outputs[i]`: example i's logits): the predictions, and with `classes` or
    /// `values` (one per example) the metrics. The evaluator fills in the loss.
    func evaluate(outputs: [[Float]], classes: [Int32]?, values: [Float]?) -> Evaluation
    var names: HeadNames { get }
    /// Runs the head on the backbone's output; with the targets it learns it also computes the loss and keeps its
    /// gradient for `backward`.
    func forward(_ features: BackboneOutput, targets: HeadTargets?, training: Bool, seed: UInt64) throws -> HeadOutput
    /// What the batch loss divides its summed terms by for `targets` laid out as `layout`: the examples with a
    /// class or a value, or the learnt tokens weighted by their examples' weights. A batch cut into shards (one per
    /// data-parallel rank) gives the whole batch's gradient when each shard's backward is scaled by its share of the
    /// shards' total.
    func lossDenominator(_ targets: HeadTargets, layout: SequenceLayout) -> Double
    /// Back-propagates the last forward's loss (times `lossScale`) into the head's parameters and returns the
    /// gradients of the backbone's outputs; adds the head's rows to `perExample` when given.
    func backward(
        lossScale: Float, perExample: PerExampleNorms?
    ) throws
        -> (dLastHidden: UnsafePointer<Float>?, dPooled: UnsafePointer<Float>?)
    /// For a linear head: its input `[batch, in]` and the loss gradient of its outputs `[batch, outputs]` in the
    /// last forward with targets, from which an example's head gradient is `dOutputs ⊗ [features, 1]`.
    func lastLinearGradient() -> (features: UnsafePointer<Float>, dOutputs: UnsafePointer<Float>, batch: Int)?
}
