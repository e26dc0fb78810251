import Data
import Foundation
import Metrics
import Models
import RankwiseCore

/// Runs a model over a tokenized set; its head reads the outputs (predictions and metrics).
public enum Evaluator {
    public typealias Result = Evaluation

    /// Tokens of a causal-LM evaluation batch when the caller gives no bound: a decoder keeps about 1 MB of
    /// activations a token (SmolLM2), so a batch of 64 long examples would outweigh the training step.
    public static let languageModelBatchTokens = 2048

    /// Runs `set` through `model` in batches sorted by length (packed unless `padded`) of at most `batchSize`
    /// examples and `maxTokens` tokens (default: no bound, `languageModelBatchTokens` for a causal-LM set).
    public static func evaluate(
        _ model: TaskModel, _ set: TokenizedSet, batchSize: Int = 64, withLabels: Bool = true, padded: Bool = false,
        maxTokens: Int? = nil
    ) throws -> Evaluation {
        let order = set.ids.indices.sorted { set.ids[$0].count < set.ids[$1].count }
        let outputs = model.numLabels
        var rows = [[Float]](repeating: [], count: set.count)
        var lossSum: Double = 0
        let tokenBound = maxTokens ?? (set.isLanguageModel ? languageModelBatchTokens : Int.max)
        var batches: [[Int]] = []
        var current: [Int] = []
        for example in order {
            // Sorted by length: a padded batch's size is its count times this, its longest.
            let length = set.ids[example].count
            if !current.isEmpty && (current.count == batchSize || (current.count + 1) * length > tokenBound) {
                batches.append(current)
                current = []
            }
            current.append(example)
        }
        if !current.isEmpty { batches.append(current) }
        for indices in batches {
            let labelled = set.batch(indices, packed: !padded)
            let output = withLabels ? try model.forward(labelled) : try model.forward(labelled.tokens)
            if let loss = output.loss { lossSum += Double(loss) * Double(indices.count) }
            for (row, example) in indices.enumerated() {
                rows[example] = Array(output.logits[(row * outputs)..<((row + 1) * outputs)])
            }
        }
        var evaluation = model.head.evaluate(
            outputs: rows, classes: withLabels ? set.labels : nil, values: withLabels ? set.targets : nil)
        // A causal-LM set's loss is over its tokens, not the mean of its batches' means.
        evaluation.loss = evaluation.languageModel?.meanLoss ?? lossSum / Double(max(1, set.count))
        return evaluation
    }
}
