import Foundation
import Metrics

/// What a head reads from a whole set's outputs: each example's prediction and, with targets, the metrics.
public struct Evaluation {
    /// The predicted class of each example (classification; 0 otherwise).
    public var predictions: [Int]
    /// Each example's class probabilities (classification; empty rows otherwise).
    public var probabilities: [[Float]]
    /// Each example's raw outputs.
    public var logits: [[Float]]
    /// Each example's predicted value (regression), or its mean token loss (causal LM); 0 otherwise.
    public var values: [Float]
    public var classification: ClassificationMetrics?
    public var regression: RegressionMetrics?
    /// Causal language modelling: perplexity over the set's target tokens.
    public var languageModel: LanguageModelMetrics?
    /// The mean loss over the set's examples (causal LM: over its target tokens; 0 without targets).
    public var loss: Double

    public init(
        predictions: [Int], probabilities: [[Float]], logits: [[Float]], values: [Float],
        classification: ClassificationMetrics? = nil, regression: RegressionMetrics? = nil, loss: Double = 0
    ) {
        self.predictions = predictions
        self.probabilities = probabilities
        self.logits = logits
        self.values = values
        self.classification = classification
        self.regression = regression
        self.loss = loss
    }

    /// Flat metric names → values (accuracy, macro_f1, mcc, loss / pearson, spearman, mse / perplexity, tokens).
    public var summary: [String: Double] {
        var summary: [String: Double] = ["loss": loss]
        if let classification {
            summary["accuracy"] = classification.accuracy
            summary["macro_f1"] = classification.macroF1
            summary["mcc"] = classification.mcc
        }
        if let regression {
            summary["pearson"] = regression.pearson
            summary["spearman"] = regression.spearman
            summary["mse"] = regression.mse
        }
        if let languageModel {
            summary["perplexity"] = languageModel.perplexity
            summary["tokens"] = Double(languageModel.tokens)
        }
        return summary
    }
}
