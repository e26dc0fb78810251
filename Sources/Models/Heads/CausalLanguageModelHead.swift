import Foundation
import Metrics
import RankwiseCore

/// Hugging Face's `*ForCausalLM` head: the backbone's last hidden states times its output projection (`lm_head`, or
/// the tied embedding), next-token cross-entropy on the rows that have a target. The logits of a batch are never
/// all in memory (`ChunkedCrossEntropy`). The batch loss is the mean over its target tokens, each example's tokens
/// weighted by the example's weight (all 1: transformers' token mean); each example's own loss is the mean over its
/// tokens. The head has no parameters of its own: the projection is the backbone's and stays frozen.
public final class CausalLanguageModelHead: TaskHead {
    public let projection: Param
    let vocabulary: Int
    let hidden: Int
    let crossEntropy: ChunkedCrossEntropy
    /// `[rows, hidden]`: the gradient of the last forward's loss with respect to the hidden states.
    private let dHiddenBuffer = Scratch()
    private var lastRows: Int?
    /// After a forward without `training`: what `backward` needs to compute the gradient (the hidden states stay
    /// valid until the backbone's next forward).
    private var pending: (hidden: UnsafePointer<Float>, targets: [Int32], scales: [Float])?

    public init(backbone: any Backbone, chunkRows: Int = 256) throws {
        guard let languageModel = backbone as? any LanguageModelBackbone else {
            throw ModelError("causal language modelling needs a decoder with an output projection (lm_head)")
        }
        projection = languageModel.outputProjection
        vocabulary = backbone.vocabularySize
        hidden = backbone.hiddenSize
        crossEntropy = ChunkedCrossEntropy(chunkRows: chunkRows)
    }

    public var params: [Param] { [] }
    /// Per example: the summed loss of its target tokens and their number.
    public var outputs: Int { 2 }
    public var primaryMetric: String { "perplexity" }
    public var metricNames: [String] { ["perplexity"] }

    public var names: HeadNames {
        HeadNames(peftTaskType: "CAUSAL_LM", modulesToSave: [], classSuffix: "ForCausalLM", problemType: "causal_lm")
    }

    public func forward(
        _ features: BackboneOutput, targets: HeadTargets?, training: Bool, seed: UInt64
    ) throws -> HeadOutput {
        let layout = features.layout
        let rows = layout.tokens
        let examples = features.batch
        guard let tokens = targets?.tokens else {
            lastRows = nil
            pending = nil
            return HeadOutput(logits: [Float](repeating: 0, count: examples * 2), loss: nil, exampleLosses: [])
        }
        guard tokens.count == rows else {
            throw ModelError("next-token targets: \(tokens.count) for a batch of \(rows) token rows")
        }
        for (row, token) in tokens.enumerated() where token < -1 || Int(token) >= vocabulary {
            throw ModelError("next-token target \(token) of row \(row) is outside 0..<\(vocabulary)")
        }
        let weights = targets?.exampleWeights ?? [Float](repeating: 1, count: examples)
        guard weights.count == examples else {
            throw ModelError("example weights: \(weights.count) for a batch of \(examples)")
        }
        let counts = Self.learntTokens(tokens, layout: layout)
        var scales = [Float](repeating: 0, count: rows)
        let weightedCount = zip(weights, counts).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let denominator = Float(max(weightedCount, 1e-12))
        for example in 0..<examples {
            let start = layout.starts[example]
            for row in start..<(start + layout.lengths[example]) { scales[row] = weights[example] / denominator }
        }
        // Training computes the gradient now, with the logits; otherwise `backward` recomputes them if asked.
        let dHidden = training ? dHiddenBuffer.get(rows * hidden) : nil
        let rowLosses = Profiler.section("lm head + loss") {
            crossEntropy.run(
                hidden: features.lastHidden, rows: rows, width: hidden, projection: projection.value.data,
                vocab: vocabulary, targets: tokens, scales: scales, dHidden: dHidden)
        }
        pending = training ? nil : (UnsafePointer(features.lastHidden), tokens, scales)
        var logits = [Float](repeating: 0, count: examples * 2)
        var exampleLosses = [Float](repeating: 0, count: examples)
        var loss: Double = 0
        for example in 0..<examples {
            let start = layout.starts[example]
            var sum: Double = 0
            for row in start..<(start + layout.lengths[example]) { sum += Double(rowLosses[row]) }
            logits[example * 2] = Float(sum)
            logits[example * 2 + 1] = Float(counts[example])
            exampleLosses[example] = counts[example] == 0 ? 0 : Float(sum / Double(counts[example]))
            loss += Double(weights[example]) * sum
        }
        lastRows = rows
        return HeadOutput(logits: logits, loss: Float(loss / Double(denominator)), exampleLosses: exampleLosses)
    }

    /// Each example's learnt tokens (rows with a target).
    static func learntTokens(_ tokens: [Int32], layout: SequenceLayout) -> [Int] {
        (0..<layout.count).map { example in
            let start = layout.starts[example]
            return (start..<(start + layout.lengths[example])).filter { tokens[$0] >= 0 }.count
        }
    }

    /// The learnt tokens, each counted with its example's weight.
    public func lossDenominator(_ targets: HeadTargets, layout: SequenceLayout) -> Double {
        guard let tokens = targets.tokens, tokens.count == layout.tokens else { return 0 }
        let counts = Self.learntTokens(tokens, layout: layout)
        let weights = targets.exampleWeights ?? [Float](repeating: 1, count: counts.count)
        return zip(weights, counts).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    }

    public func backward(
        lossScale: Float, perExample: PerExampleNorms?
    ) throws -> (dLastHidden: UnsafePointer<Float>?, dPooled: UnsafePointer<Float>?) {
        guard let rows = lastRows else {
            throw ModelError("backward called before a forward with next-token targets")
        }
        let dHidden = dHiddenBuffer.get(rows * hidden)
        if let (hiddenStates, targets, scales) = pending {
            _ = crossEntropy.run(
                hidden: hiddenStates, rows: rows, width: hidden, projection: projection.value.data, vocab: vocabulary,
                targets: targets, scales: scales, dHidden: dHidden)
            pending = nil
        }
        if lossScale != 1 { for index in 0..<(rows * hidden) { dHidden[index] *= lossScale } }
        return (UnsafePointer(dHidden), nil)
    }

    /// No linear layer of its own: nil.
    public func lastLinearGradient() -> (features: UnsafePointer<Float>, dOutputs: UnsafePointer<Float>, batch: Int)? {
        nil
    }

    /// Perplexity over the set's target tokens: exp(total loss / tokens); `loss` is the mean token loss.
    public func evaluate(outputs rows: [[Float]], classes: [Int32]?, values: [Float]?) -> Evaluation {
        var evaluation = Evaluation(
            predictions: [Int](repeating: 0, count: rows.count),
            probabilities: [[Float]](repeating: [], count: rows.count), logits: rows,
            values: rows.map { $0[1] > 0 ? $0[0] / $0[1] : 0 })
        let total = rows.reduce(0.0) { $0 + Double($1[0]) }
        let tokens = rows.reduce(0) { $0 + Int($1[1]) }
        if tokens > 0 { evaluation.languageModel = LanguageModelMetrics(totalLoss: total, tokens: tokens) }
        return evaluation
    }
}
