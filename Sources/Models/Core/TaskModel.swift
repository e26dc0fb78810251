import Foundation
import RankwiseCore

/// A term added to the training loss by an adaptation method (e.g. AdaLoRA's orthogonality penalty).
public protocol LossRegularizer: AnyObject {
    func loss() -> Float
    /// Accumulates `scale ·` the gradient of `loss()` into the parameters' gradients.
    func backward(scale: Float)
}

/// The model being trained: a backbone, a task head on it and the loss terms a method adds. The trainer, the
/// methods and the formats see this and nothing of the model family or the task.
public final class TaskModel: @unchecked Sendable {
    /// Which sequence head a model gets.
    public enum Problem: String, Sendable, Codable {
        case singleLabel = "single_label_classification"
        case regression
        case causalLanguageModel = "causal_lm"
    }

    public let backbone: any Backbone
    public let head: any TaskHead
    /// Extra loss terms, added to the loss whenever targets are given (as PEFT adds AdaLoRA's).
    public var regularizers: [LossRegularizer] = []

    public init(backbone: any Backbone, head: any TaskHead) {
        self.backbone = backbone
        self.head = head
    }

    /// A sequence classifier (`numLabels` classes), a regressor (one output) or a causal language model (the
    /// backbone's own output projection; `numLabels` is ignored) on `backbone`; a sequence head's weights come from
    /// `head` when given, else they are initialised from `seed`.
    public convenience init(
        backbone: any Backbone, numLabels: Int, problem: Problem, head weights: WeightSource? = nil,
        seed: UInt64 = 0
    ) throws {
        guard problem == .causalLanguageModel || numLabels >= 1, problem != .regression || numLabels == 1 else {
            throw ModelError("regression needs exactly one output (got num_labels \(numLabels))")
        }
        let head: any TaskHead
        switch problem {
        case .singleLabel:
            head = try ClassificationHead(backbone: backbone, classes: numLabels, weights: weights, seed: seed)
        case .regression: head = try RegressionHead(backbone: backbone, weights: weights, seed: seed)
        case .causalLanguageModel: head = try CausalLanguageModelHead(backbone: backbone)
        }
        self.init(backbone: backbone, head: head)
    }

    public var params: ParameterSet { backbone.params }

    /// Makes the head's parameters and those `adapted` names trainable, every other one frozen.
    public func setTrainable(adapted: (String) -> Bool) {
        let headNames = Set(head.params.map(\.name))
        params.setTrainable { adapted($0) || headNames.contains($0) }
    }
    /// Outputs per example.
    public var numLabels: Int { head.outputs }

    /// Result of a forward pass: outputs `[batch, numLabels]` and the loss when targets were given.
    public struct Output {
        public var logits: [Float]
        public var loss: Float?
        /// Each example's loss (cross-entropy or squared error), without regularisers; empty without targets.
        public var exampleLosses: [Float] = []
    }

    /// Runs the model; the targets the head learns (class ids, values or next tokens) give a loss.
    public func forward(
        _ batch: TokenBatch, targets: HeadTargets?, training: Bool = false, seed: UInt64 = 0
    ) throws -> Output {
        let features = try backbone.forward(batch, training: training, seed: seed)
        let out = try head.forward(features, targets: targets, training: training, seed: seed)
        var loss = out.loss
        if loss != nil { for r in regularizers { loss! += r.loss() } }
        return Output(logits: out.logits, loss: loss, exampleLosses: out.exampleLosses)
    }

    /// Runs the model with class ids (`labels`) or values (`targets`), whichever the head learns.
    public func forward(
        _ batch: TokenBatch, labels: [Int32]? = nil, targets: [Float]? = nil, training: Bool = false,
        seed: UInt64 = 0
    ) throws -> Output {
        let given = labels != nil || targets != nil
        return try forward(
            batch, targets: given ? HeadTargets(classes: labels, values: targets) : nil, training: training,
            seed: seed)
    }

    /// Runs the model on a labelled batch (the head takes the targets it learns).
    public func forward(_ batch: LabelledBatch, training: Bool = false, seed: UInt64 = 0) throws -> Output {
        try forward(batch.tokens, targets: batch.headTargets, training: training, seed: seed)
    }

    /// The head's input and the gradient of the batch's mean loss with respect to its outputs in the last forward
    /// with targets (a linear head only). Valid until the next forward or backward.
    public func lastHeadGradient() -> (features: UnsafePointer<Float>, dLogits: UnsafePointer<Float>, batch: Int)? {
        head.lastLinearGradient().map { ($0.features, $0.dOutputs, $0.batch) }
    }

    /// Back-propagates the loss of the last forward (scaled by `lossScale`, e.g. 1/accumulation steps).
    /// What `batch`'s loss divides by (`TaskHead.lossDenominator`).
    public func lossDenominator(_ batch: LabelledBatch) -> Double {
        head.lossDenominator(batch.headTargets, layout: batch.tokens.layout)
    }

    public func backward(lossScale: Float = 1) throws {
        let (dLastHidden, dPooled) = try head.backward(lossScale: lossScale, perExample: backbone.perExample)
        try backbone.backward(dLastHidden: dLastHidden, dPooled: dPooled)
        for r in regularizers { r.backward(scale: lossScale) }
    }
}

/// What Rankwise keeps next to a saved adapter (`rankwise.json`): label names, problem type, the
/// tokenizer's maximum length, the base model and the method that trained it.
public struct AdapterMetadata: Codable, Sendable, Equatable {
    public var labelNames: [String]
    public var problem: String
    public var maxLength: Int
    public var baseModel: String
    public var method: String
    /// A causal LM's `--truncation` (prompt or end); nil for classifiers and for adapters from before the option,
    /// which cut the end.
    public var truncation: String?
    public init(
        labelNames: [String], problem: String, maxLength: Int, baseModel: String, method: String,
        truncation: String? = nil
    ) {
        self.labelNames = labelNames
        self.problem = problem
        self.maxLength = maxLength
        self.baseModel = baseModel
        self.method = method
        self.truncation = truncation
    }
}
