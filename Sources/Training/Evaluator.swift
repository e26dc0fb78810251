import Data
import Foundation
import Metrics
import Models
import RankwiseCore

/// Runs a model over a tokenized set; its head reads the outputs (predictions and metrics).
public enum Evaluator {
    public typealias Result = Evaluation

    /// Runs `set` through `model` in batches sorted by length (packed unless `padded`).
    public static func evaluate(
        _ model: TaskModel, _ set: TokenizedSet, batchSize: Int = 64, withLabels: Bool = true, padded: Bool = false
    ) throws -> Evaluation {
        let order = set.ids.indices.sorted { set.ids[$0].count < set.ids[$1].count }
        let outputs = model.numLabels
        var rows = [[Float]](repeating: [], count: set.count)
        var lossSum: Double = 0
        for start in stride(from: 0, to: order.count, by: batchSize) {
            let indices = Array(order[start..<min(order.count, start + batchSize)])
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
