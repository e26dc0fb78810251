/// Which way a metric improves: most go up (accuracy, macro-F1, Pearson, ROUGE), a few go down (perplexity, loss,
/// MSE). Everything that picks a best checkpoint or a best learning rate compares through this.
public enum MetricOrder {
    /// Metrics where a smaller value is better.
    public static let lowerIsBetter: Set<String> = ["perplexity", "loss", "mse"]

    /// True when `name` improves downwards (a `dev_` or `test_` prefix is ignored).
    public static func isLowerBetter(_ name: String) -> Bool {
        var bare = Substring(name)
        for prefix in ["dev_", "test_"] where bare.hasPrefix(prefix) { bare = bare.dropFirst(prefix.count) }
        return lowerIsBetter.contains(String(bare))
    }

    /// `value` as a score that is larger when better (negated for lower-is-better metrics).
    public static func score(_ name: String, _ value: Double) -> Double {
        isLowerBetter(name) ? -value : value
    }

    /// True when `value` is strictly better than `other` for `name`.
    public static func isBetter(_ name: String, _ value: Double, than other: Double) -> Bool {
        score(name, value) > score(name, other)
    }

    /// The value every real one beats: -inf, or +inf for lower-is-better metrics.
    public static func worst(_ name: String) -> Double {
        isLowerBetter(name) ? Double.infinity : -Double.infinity
    }
}
