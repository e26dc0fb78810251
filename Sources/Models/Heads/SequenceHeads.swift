import Foundation
import Metrics
import RankwiseCore

/// Hugging Face's `*ForSequenceClassification` head: the backbone's pooled vector → dropout → a linear layer
/// (`classifier`). The two subclasses differ in the loss: cross-entropy over classes, or squared error on one value.
public class SequenceHead {
    public let classifier: Linear
    public let outputs: Int
    public var dropout: Float
    let hidden: Int
    // [batch, hidden] dropped features, [batch, hidden] dropout mask, [batch, outputs] logits, [batch, outputs] dlogits
    private let workspace = Scratch()
    private let dPooledBuffer = Scratch()
    private var lastBatch: Int?

    /// The classifier comes from `weights` when given (`classifier.weight`, `classifier.bias`), else it is
    /// initialised as Hugging Face does (normal(0, 0.02), zero bias).
    init(backbone: any Backbone, outputs: Int, weights: WeightSource?, seed: UInt64) throws {
        guard backbone.hasPooledOutput else {
            throw ModelError(
                "sequence classification needs one vector per sequence (BERT: pooler.dense) but the model has none")
        }
        self.outputs = outputs
        hidden = backbone.hiddenSize
        dropout = backbone.headDropout
        let weight: Tensor
        let bias: Tensor
        if let weights {
            weight = try weights.tensor("classifier.weight", shape: [outputs, hidden])
            bias = try weights.tensor("classifier.bias", shape: [outputs])
        } else {
            weight = try RandomWeights(seed: seed, std: 0.02).tensor("classifier.weight", shape: [outputs, hidden])
            bias = Tensor(zeros: [outputs])
        }
        let weightParam = Param(name: "classifier.weight", value: weight)
        let biasParam = Param(name: "classifier.bias", value: bias, role: .bias)
        backbone.params.add(weightParam)
        backbone.params.add(biasParam)
        classifier = Linear(path: "classifier", weight: weightParam, bias: biasParam)
    }

    public var params: [Param] { [classifier.weight, classifier.bias].compactMap { $0 } }

    /// config.json's `problem_type`, set by each head.
    var problemType: String { fatalError("SequenceHead.problemType is defined by each head") }

    /// Hugging Face's sequence-classification model; PEFT saves the head as `classifier` (BERT) or `score`.
    public var names: HeadNames {
        HeadNames(
            peftTaskType: "SEQ_CLS", modulesToSave: ["classifier", "score"], classSuffix: "ForSequenceClassification",
            problemType: problemType)
    }

    /// Pointers into the workspace for a batch of `batch`.
    private func buffers(
        _ batch: Int
    ) -> (
        dropped: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<Float>,
        logits: UnsafeMutablePointer<Float>, dLogits: UnsafeMutablePointer<Float>
    ) {
        let base = workspace.get(batch * hidden * 2 + batch * outputs * 2)
        let logits = base + 2 * batch * hidden
        return (base, base + batch * hidden, logits, logits + batch * outputs)
    }

    /// The loss of `logits` against the batch's targets, writing its gradient into `dLogits` and each example's
    /// loss into `exampleLosses`; nil when this head's targets were not given.
    func loss(
        logits: UnsafePointer<Float>, batch: Int, classes: [Int32]?, values: [Float]?,
        dLogits: UnsafeMutablePointer<Float>, exampleLosses: inout [Float]
    ) throws -> Float? {
        fatalError("SequenceHead.loss is defined by each head")
    }

    public func forward(
        _ features: BackboneOutput, targets: HeadTargets?, training: Bool, seed: UInt64
    ) throws -> HeadOutput {
        guard let pooled = features.pooled else {
            throw ModelError("the backbone gave no pooled vector for the sequence head")
        }
        let batch = features.batch
        let b = buffers(batch)
        if training && dropout > 0 {
            let exampleKeys = features.exampleKeys
            Ops.dropoutRowsForward(
                x: pooled, y: b.dropped, mask: b.mask, rows: batch, width: hidden, p: dropout, seed: seed &+ 0xC1A5_51F1
            ) { DropoutKeys.pooled(example: exampleKeys[$0]) }
        } else {
            b.dropped.update(from: pooled, count: batch * hidden)
            b.mask.update(repeating: 1, count: batch * hidden)
        }
        classifier.forward(b.dropped, b.logits, n: batch)
        var exampleLosses = [Float](repeating: 0, count: batch)
        let loss = try self.loss(
            logits: b.logits, batch: batch, classes: targets?.classes, values: targets?.values, dLogits: b.dLogits,
            exampleLosses: &exampleLosses)
        lastBatch = batch
        let logits = Array(UnsafeBufferPointer(start: b.logits, count: batch * outputs))
        return HeadOutput(logits: logits, loss: loss, exampleLosses: loss == nil ? [] : exampleLosses)
    }

    public func backward(
        lossScale: Float, perExample: PerExampleNorms?
    ) throws
        -> (dLastHidden: UnsafePointer<Float>?, dPooled: UnsafePointer<Float>?)
    {
        guard let batch = lastBatch else { throw ModelError("backward called before a forward with labels") }
        let b = buffers(batch)
        if lossScale != 1 { for i in 0..<(batch * outputs) { b.dLogits[i] *= lossScale } }
        let dPooled = dPooledBuffer.get(batch * hidden)
        classifier.backward(dy: b.dLogits, x: b.dropped, dx: dPooled, n: batch)
        if let perExample, classifier.weight.trainable {  // one row per example
            let trainableBias = classifier.bias?.trainable == true ? classifier.bias : nil
            perExample.addRows(
                dy: b.dLogits, x: b.dropped, outDim: outputs, inDim: hidden, weight: classifier.weight,
                bias: trainableBias)
        }
        for i in 0..<(batch * hidden) { dPooled[i] *= b.mask[i] }
        return (nil, UnsafePointer(dPooled))
    }

    public func lastLinearGradient() -> (features: UnsafePointer<Float>, dOutputs: UnsafePointer<Float>, batch: Int)? {
        guard let batch = lastBatch else { return nil }
        let b = buffers(batch)
        return (UnsafePointer(b.dropped), UnsafePointer(b.dLogits), batch)
    }
}

/// Single-label classification: cross-entropy over `outputs` classes, macro-F1 as the primary metric.
public final class ClassificationHead: SequenceHead, TaskHead {
    public init(backbone: any Backbone, classes: Int, weights: WeightSource? = nil, seed: UInt64 = 0) throws {
        guard classes >= 1 else {
            throw ModelError("classification needs at least one class (got num_labels \(classes))")
        }
        try super.init(backbone: backbone, outputs: classes, weights: weights, seed: seed)
    }

    public var primaryMetric: String { "macro_f1" }
    public var metricNames: [String] { ["accuracy", "macro_f1", "mcc"] }
    override var problemType: String { "single_label_classification" }

    /// The examples whose label is not ignored (-100).
    public func lossDenominator(_ targets: HeadTargets, layout: SequenceLayout) -> Double {
        Double(targets.classes?.filter { $0 != -100 }.count ?? 0)
    }

    /// The arg-max class and the softmax of each row; accuracy, macro-F1 and MCC against `classes`.
    public func evaluate(outputs rows: [[Float]], classes: [Int32]?, values: [Float]?) -> Evaluation {
        var predictions = [Int](repeating: 0, count: rows.count)
        var probabilities = [[Float]](repeating: [], count: rows.count)
        for (index, row) in rows.enumerated() {
            let largest = row.max()!
            let exponentials = row.map { expf($0 - largest) }
            let total = exponentials.reduce(0, +)
            probabilities[index] = exponentials.map { $0 / total }
            predictions[index] = row.indices.max { row[$0] < row[$1] }!
        }
        var evaluation = Evaluation(
            predictions: predictions, probabilities: probabilities, logits: rows,
            values: [Float](repeating: 0, count: rows.count))
        if let classes {
            evaluation.classification = ClassificationMetrics(
                predictions: predictions, labels: classes.map(Int.init), numClasses: outputs)
        }
        return evaluation
    }

    override func loss(
        logits: UnsafePointer<Float>, batch: Int, classes: [Int32]?, values: [Float]?,
        dLogits: UnsafeMutablePointer<Float>, exampleLosses: inout [Float]
    ) throws -> Float? {
        guard let classes else { return nil }
        guard classes.count == batch else { throw ModelError("labels: \(classes.count) for a batch of \(batch)") }
        for (row, label) in classes.enumerated() where label != -100 && (label < 0 || Int(label) >= outputs) {
            throw ModelError("label \(label) of row \(row) is outside 0..<\(outputs)")
        }
        return classes.withUnsafeBufferPointer {
            Ops.crossEntropy(
                logits: logits, labels: $0.baseAddress!, n: batch, classes: outputs, dlogits: dLogits,
                rowLoss: &exampleLosses)
        }
    }
}

/// Regression on one value: squared error, Pearson correlation as the primary metric.
public final class RegressionHead: SequenceHead, TaskHead {
    public init(backbone: any Backbone, weights: WeightSource? = nil, seed: UInt64 = 0) throws {
        try super.init(backbone: backbone, outputs: 1, weights: weights, seed: seed)
    }

    public var primaryMetric: String { "pearson" }
    public var metricNames: [String] { ["pearson", "spearman", "mse"] }
    override var problemType: String { "regression" }

    /// Each row's one output as the predicted value; Pearson, Spearman and MSE against `values`.
    public func evaluate(outputs rows: [[Float]], classes: [Int32]?, values: [Float]?) -> Evaluation {
        let predicted = rows.map { $0[0] }
        var evaluation = Evaluation(
            predictions: [Int](repeating: 0, count: rows.count),
            probabilities: [[Float]](repeating: [], count: rows.count), logits: rows, values: predicted)
        if let values { evaluation.regression = RegressionMetrics(predictions: predicted, targets: values) }
        return evaluation
    }

    /// Every example.
    public func lossDenominator(_ targets: HeadTargets, layout: SequenceLayout) -> Double {
        Double(targets.values?.count ?? 0)
    }

    override func loss(
        logits: UnsafePointer<Float>, batch: Int, classes: [Int32]?, values: [Float]?,
        dLogits: UnsafeMutablePointer<Float>, exampleLosses: inout [Float]
    ) throws -> Float? {
        guard let values else { return nil }
        guard values.count == batch else { throw ModelError("targets: \(values.count) for a batch of \(batch)") }
        return values.withUnsafeBufferPointer {
            Ops.mse(x: logits, target: $0.baseAddress!, count: batch, dx: dLogits, rowLoss: &exampleLosses)
        }
    }
}
