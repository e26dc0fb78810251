import Foundation
import Metrics

/// A model that no longer tells examples apart: it predicts one class for every example, its macro-F1
/// is no better than always predicting the most frequent class, or (regression) its predictions are a
/// constant or do not correlate with the targets. Such a run can look like a result (its accuracy is the
/// majority share); the trainer, `results.json`, `compare`'s tables and the report say so plainly.
public struct Collapse: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case singleClass = "single_class", majorityLevel = "majority_level", constant, noCorrelation = "no_correlation"
    }

    public var kind: Kind
    /// What happened, in one sentence naming the set and the numbers.
    public var finding: String

    /// The macro-F1 margin over the majority-class predictor below which a model counts as collapsed.
    public static let majorityMargin = 0.02
    /// Pearson correlation at or below which a regression model counts as collapsed.
    public static let correlationFloor = 0.05

    /// What to try, for the message.
    public static let fixes =
        "likely fixes: another --lr (too low leaves the classifier head to learn alone, too high "
        + "can also collapse), more --epochs or data, and for the adaptive methods a later or shorter pruning "
        + "(--tinit-fraction, --tfinal-fraction) or the LoRA-like start (--adapter-init zero-b); `rankwise methods` "
        + "lists each method's options"

    public var message: String { finding + "; " + Self.fixes }

    /// The collapse an evaluation shows, or nil: `labels` (classification) or `targets` (regression) are the set's
    /// gold values; `setName` names the set in the finding ("dev", "test").
    public static func diagnose(
        _ r: Evaluator.Result, labels: [Int32], targets: [Float] = [], labelNames: [String],
        setName: String
    ) -> Collapse? {
        if let g = r.regression {
            // Nothing to judge without predictions, or against targets that are all the same.
            guard !r.values.isEmpty, let lo = targets.min(), let hi = targets.max(), hi > lo else { return nil }
            let mean = r.values.reduce(0, +) / Float(max(1, r.values.count))
            let spread = (r.values.reduce(Float(0)) { $0 + ($1 - mean) * ($1 - mean) } / Float(max(1, r.values.count)))
                .squareRoot()
            if spread <= 1e-6 * max(1, abs(mean)) {
                return Collapse(
                    kind: .constant,
                    finding: String(format: "the model predicts the constant %.4g for every %@ example", mean, setName))
            }
            if !(g.pearson > correlationFloor) {
                return Collapse(
                    kind: .noCorrelation,
                    finding: String(
                        format: "the model's %@ predictions do not follow the targets (Pearson %.3f <= %.2f)",
                        setName, g.pearson, correlationFloor))
            }
            return nil
        }
        guard let c = r.classification, c.confusion.count > 1, !labels.isEmpty else { return nil }
        let k = c.confusion.count
        var predicted = [Int](repeating: 0, count: k)
        for p in r.predictions where p >= 0 && p < k { predicted[p] += 1 }
        let used = predicted.indices.filter { predicted[$0] > 0 }
        func name(_ i: Int) -> String { i < labelNames.count ? labelNames[i] : "\(i)" }
        if used.count == 1 {
            return Collapse(
                kind: .singleClass,
                finding:
                    "the model predicts one class (\(name(used[0]))) for all \(r.predictions.count) \(setName) examples"
            )
        }
        let level = majorityMacroF1(labels: labels, numClasses: k)
        if c.macroF1 <= level + majorityMargin {
            return Collapse(
                kind: .majorityLevel,
                finding: String(
                    format:
                        "the model's %@ macro-F1 %.3f is no better than always predicting the most frequent class "
                        + "(%.3f)",
                    setName, c.macroF1, level))
        }
        return nil
    }

    /// Macro-F1 (over `numClasses`, as `ClassificationMetrics` counts it) of predicting the most frequent label for
    /// every example.
    public static func majorityMacroF1(labels: [Int32], numClasses k: Int) -> Double {
        guard k > 0, !labels.isEmpty else { return 0 }
        var counts = [Int](repeating: 0, count: k)
        for y in labels where y >= 0 && Int(y) < k { counts[Int(y)] += 1 }
        let p = Double(counts.max() ?? 0) / Double(labels.count)
        return 2 * p / (1 + p) / Double(k)
    }

    /// The record `results.json` and `metrics.jsonl` hold.
    public var record: [String: Any] { ["kind": kind.rawValue, "finding": finding, "message": message] }
}
