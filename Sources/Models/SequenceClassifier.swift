import Foundation
import RankwiseCore

/// A term added to the training loss by an adaptation method (e.g. AdaLoRA's orthogonality penalty).
public protocol LossRegularizer: AnyObject {
    func loss() -> Float
    /// Accumulates `scale ·` the gradient of `loss()` into the parameters' gradients.
    func backward(scale: Float)
}

/// `BertForSequenceClassification`: pooler output → dropout → linear classifier, with cross-entropy
/// (single label) or mean squared error (regression, one output) as Hugging Face computes them.
public final class SequenceClassifier: @unchecked Sendable {
    public enum Problem: String, Sendable, Codable { case singleLabel = "single_label_classification", regression }

    public let backbone: any Backbone
    public let classifier: Linear
    public let numLabels: Int
    public let problem: Problem
    public var dropout: Float
    /// Extra loss terms, added to the loss whenever labels are given (as PEFT adds AdaLoRA's).
    public var regularizers: [LossRegularizer] = []
    private let ws = Scratch()
    private let dpool = Scratch()
    private var last: (B: Int, training: Bool, labels: [Int32], targets: [Float])?

    /// Wraps an backbone that has a pooler. The classifier comes from `head` when given (a
    /// `WeightSource` with `classifier.weight`/`.bias`), else it is initialised as Hugging Face does
    /// (normal(0, 0.02), zero bias).
    public init(backbone: any Backbone, numLabels: Int, problem: Problem, head: WeightSource? = nil, seed: UInt64 = 0) throws {
        guard backbone.hasPooledOutput else {
            throw ModelError("sequence classification needs one vector per sequence (BERT: pooler.dense) but the model has none")
        }
        guard numLabels >= 1, problem != .regression || numLabels == 1 else {
            throw ModelError("regression needs exactly one output (got num_labels \(numLabels))")
        }
        self.backbone = backbone; self.numLabels = numLabels; self.problem = problem
        dropout = backbone.headDropout
        let H = backbone.hiddenSize
        let w: Tensor, b: Tensor
        if let head {
            w = try head.tensor("classifier.weight", shape: [numLabels, H])
            b = try head.tensor("classifier.bias", shape: [numLabels])
        } else {
            w = try RandomWeights(seed: seed, std: 0.02).tensor("classifier.weight", shape: [numLabels, H])
            b = Tensor(zeros: [numLabels])
        }
        let wp = Param(name: "classifier.weight", value: w), bp = Param(name: "classifier.bias", value: b)
        backbone.params.add(wp); backbone.params.add(bp)
        classifier = Linear(path: "classifier", weight: wp, bias: bp)
    }

    public var params: ParameterSet { backbone.params }

    /// Result of a forward pass: logits `[batch, numLabels]` (copied) and the loss when labels were given.
    public struct Output {
        public var logits: [Float]
        public var loss: Float?
        /// Each example's loss (cross-entropy or squared error), without regularisers; empty without labels.
        public var exampleLosses: [Float] = []
    }

    /// Runs the model. `labels` (class ids) for classification or `targets` for regression give a loss.
    public func forward(_ input: TokenBatch, labels: [Int32]? = nil, targets: [Float]? = nil, training: Bool = false, seed: UInt64 = 0) throws -> Output {
        let out = try backbone.forward(input, training: training, seed: seed)
        let B = input.batch, H = backbone.hiddenSize, C = numLabels
        let w = ws.get(B * H * 2 + B * C * 2)
        let drop = w, mask = w + B * H, logits = w + 2 * B * H, dlogits = logits + B * C
        if training && dropout > 0 {
            Ops.dropoutForward(x: out.pooled!, y: drop, mask: mask, count: B * H, p: dropout, seed: seed &+ 0xC1A5_51F1)
        } else {
            drop.update(from: out.pooled!, count: B * H)
            mask.update(repeating: 1, count: B * H)
        }
        classifier.forward(drop, logits, n: B)
        var loss: Float? = nil
        var rowLoss = [Float](repeating: 0, count: B)
        switch problem {
        case .singleLabel:
            if let labels {
                guard labels.count == B else { throw ModelError("labels: \(labels.count) for a batch of \(B)") }
                for (i, l) in labels.enumerated() where l != -100 && (l < 0 || Int(l) >= C) {
                    throw ModelError("label \(l) of row \(i) is outside 0..<\(C)")
                }
                loss = labels.withUnsafeBufferPointer { Ops.crossEntropy(logits: logits, labels: $0.baseAddress!, n: B, classes: C, dlogits: dlogits, rowLoss: &rowLoss) }
            }
        case .regression:
            if let targets {
                guard targets.count == B else { throw ModelError("targets: \(targets.count) for a batch of \(B)") }
                loss = targets.withUnsafeBufferPointer { Ops.mse(x: logits, target: $0.baseAddress!, count: B, dx: dlogits, rowLoss: &rowLoss) }
            }
        }
        if loss != nil { for r in regularizers { loss! += r.loss() } }
        last = (B, training, labels ?? [], targets ?? [])
        return Output(logits: Array(UnsafeBufferPointer(start: logits, count: B * C)), loss: loss, exampleLosses: loss == nil ? [] : rowLoss)
    }

    /// The classifier's input (pooled features after dropout, `[batch, hidden]`) and the gradient of the
    /// batch's mean loss with respect to the logits (`[batch, numLabels]`) of the last forward with
    /// labels. Valid until the next forward or backward.
    public func lastHead() -> (features: UnsafePointer<Float>, dLogits: UnsafePointer<Float>, batch: Int)? {
        guard let last else { return nil }
        let B = last.B, H = backbone.hiddenSize, C = numLabels
        let w = ws.get(B * H * 2 + B * C * 2)
        return (UnsafePointer(w), UnsafePointer(w + 2 * B * H + B * C), B)
    }

    /// Back-propagates the loss of the last forward (scaled by `lossScale`, e.g. 1/accumulation steps).
    public func backward(lossScale: Float = 1) throws {
        guard let last else { throw ModelError("backward called before a forward with labels") }
        let B = last.B, H = backbone.hiddenSize, C = numLabels
        let w = ws.get(B * H * 2 + B * C * 2)
        let drop = w, mask = w + B * H, dlogits = w + 2 * B * H + B * C
        if lossScale != 1 { for i in 0..<(B * C) { dlogits[i] *= lossScale } }
        let dp = dpool.get(B * H)
        classifier.backward(dy: dlogits, x: drop, dx: dp, n: B)
        if let pe = backbone.perExample, classifier.weight.trainable {  // one row per example
            pe.addRows(dy: dlogits, x: drop, outDim: C, inDim: H, weight: classifier.weight, bias: classifier.bias?.trainable == true ? classifier.bias : nil)
        }
        for i in 0..<(B * H) { dp[i] *= mask[i] }
        try backbone.backward(dLastHidden: nil, dPooled: dp)
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
    public init(labelNames: [String], problem: String, maxLength: Int, baseModel: String, method: String) {
        self.labelNames = labelNames; self.problem = problem; self.maxLength = maxLength; self.baseModel = baseModel; self.method = method
    }
}
