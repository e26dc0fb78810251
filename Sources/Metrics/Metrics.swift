import Foundation

/// Classification metrics from predictions and gold labels.
public struct ClassificationMetrics: Sendable, Codable {
    public var accuracy: Double
    public var macroF1: Double
    public var mcc: Double
    public var precision: [Double]
    public var recall: [Double]
    public var f1: [Double]
    public var support: [Int]
    /// `confusion[gold][predicted]`
    public var confusion: [[Int]]

    public init(predictions: [Int], labels: [Int], numClasses k: Int) {
        var c = [[Int]](repeating: [Int](repeating: 0, count: k), count: k)
        for (p, y) in zip(predictions, labels) where y >= 0 && y < k && p >= 0 && p < k { c[y][p] += 1 }
        confusion = c
        let n = c.joined().reduce(0, +)
        let correct = (0..<k).reduce(0) { $0 + c[$1][$1] }
        accuracy = n == 0 ? 0 : Double(correct) / Double(n)
        precision = []
        recall = []
        f1 = []
        support = []
        for i in 0..<k {
            let tp = Double(c[i][i])
            let predicted = Double((0..<k).reduce(0) { $0 + c[$1][i] })
            let actual = Double(c[i].reduce(0, +))
            let p = predicted == 0 ? 0 : tp / predicted
            let r = actual == 0 ? 0 : tp / actual
            precision.append(p)
            recall.append(r)
            f1.append(p + r == 0 ? 0 : 2 * p * r / (p + r))
            support.append(Int(actual))
        }
        macroF1 = k == 0 ? 0 : f1.reduce(0, +) / Double(k)
        // Multi-class MCC (Gorodkin's R_K), equal to the binary MCC for two classes.
        let t = (0..<k).map { Double(c[$0].reduce(0, +)) }
        let pcol = (0..<k).map { j in Double((0..<k).reduce(0) { $0 + c[$1][j] }) }
        let s = Double(n)
        let cc = Double(correct)
        let num = cc * s - zip(t, pcol).map(*).reduce(0, +)
        let den =
            (s * s - pcol.map { $0 * $0 }.reduce(0, +)).squareRoot()
            * (s * s - t.map { $0 * $0 }.reduce(0, +)).squareRoot()
        mcc = den == 0 ? 0 : num / den
    }

    /// A per-class table and the confusion matrix, for the terminal.
    public func table(labelNames: [String]) -> String {
        let w = max(9, (labelNames.map(\.count).max() ?? 0) + 1)
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
        func rpad(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }
        var out =
            pad("class", w) + rpad("precision", 10) + rpad("recall", 8) + rpad("f1", 8) + rpad("support", 9) + "\n"
        for (i, name) in labelNames.enumerated() {
            out +=
                pad(name, w) + rpad(String(format: "%.3f", precision[i]), 10)
                + rpad(String(format: "%.3f", recall[i]), 8)
                + rpad(String(format: "%.3f", f1[i]), 8) + rpad(String(support[i]), 9) + "\n"
        }
        out += String(format: "accuracy %.4f   macro-F1 %.4f   MCC %.4f\n", accuracy, macroF1, mcc)
        out +=
            "confusion (rows gold, columns predicted):\n" + pad("", w)
            + labelNames.map { rpad(String($0.prefix(8)), 9) }.joined() + "\n"
        for (i, name) in labelNames.enumerated() {
            out += pad(name, w) + confusion[i].map { rpad(String($0), 9) }.joined() + "\n"
        }
        return out
    }
}

/// Regression metrics.
public struct RegressionMetrics: Sendable, Codable {
    public var pearson: Double
    public var spearman: Double
    public var mse: Double

    public init(predictions p: [Float], targets y: [Float]) {
        let a = p.map(Double.init)
        let b = y.map(Double.init)
        pearson = Self.pearson(a, b)
        spearman = Self.pearson(Self.ranks(a), Self.ranks(b))
        mse = zip(a, b).map { ($0 - $1) * ($0 - $1) }.reduce(0, +) / Double(max(1, a.count))
    }

    static func pearson(_ a: [Double], _ b: [Double]) -> Double {
        let n = Double(a.count)
        guard n > 1 else { return 0 }
        let ma = a.reduce(0, +) / n
        let mb = b.reduce(0, +) / n
        var sab = 0.0
        var saa = 0.0
        var sbb = 0.0
        for i in a.indices {
            sab += (a[i] - ma) * (b[i] - mb)
            saa += (a[i] - ma) * (a[i] - ma)
            sbb += (b[i] - mb) * (b[i] - mb)
        }
        return saa == 0 || sbb == 0 ? 0 : sab / (saa * sbb).squareRoot()
    }

    /// Average ranks (ties share the mean rank), 1-based.
    static func ranks(_ x: [Double]) -> [Double] {
        let idx = x.indices.sorted { x[$0] < x[$1] }
        var r = [Double](repeating: 0, count: x.count)
        var i = 0
        while i < idx.count {
            var j = i
            while j + 1 < idx.count && x[idx[j + 1]] == x[idx[i]] { j += 1 }
            let avg = Double(i + j) / 2 + 1
            for k in i...j { r[idx[k]] = avg }
            i = j + 1
        }
        return r
    }
}

/// How well a score ranks a set of flagged items (e.g. wrongly labelled examples) first.
public enum Ranking {
    /// Area under the ROC curve of `scores` for `positives` (a higher score should mean positive):
    /// the probability that a random positive scores above a random negative, ties counting half
    /// (the Mann–Whitney statistic). 0.5 when either class is empty.
    public static func auroc(scores: [Double], positives: [Bool]) -> Double {
        let nPos = Double(positives.filter { $0 }.count)
        let nNeg = Double(positives.count) - nPos
        guard nPos > 0, nNeg > 0 else { return 0.5 }
        let r = RegressionMetrics.ranks(scores)
        let rankSum = zip(r, positives).filter(\.1).reduce(0.0) { $0 + $1.0 }
        return (rankSum - nPos * (nPos + 1) / 2) / (nPos * nNeg)
    }

    /// The fraction of positives among the `k` highest scores (ties broken by position).
    public static func precision(atTop k: Int, scores: [Double], positives: [Bool]) -> Double {
        guard k > 0 else { return 0 }
        let top = scores.indices.sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }.prefix(k)
        return Double(top.filter { positives[$0] }.count) / Double(min(k, scores.count))
    }

    /// Spearman's rank correlation (average ranks for ties).
    public static func spearman(_ a: [Double], _ b: [Double]) -> Double {
        RegressionMetrics.pearson(RegressionMetrics.ranks(a), RegressionMetrics.ranks(b))
    }
}

/// Next-token metrics of a set: its target tokens, their mean loss (nats) and perplexity.
public struct LanguageModelMetrics: Sendable, Codable {
    public var tokens: Int
    /// Mean negative log-likelihood per target token.
    public var meanLoss: Double
    /// exp(meanLoss).
    public var perplexity: Double

    public init(totalLoss: Double, tokens: Int) {
        self.tokens = tokens
        meanLoss = tokens == 0 ? 0 : totalLoss / Double(tokens)
        perplexity = exp(meanLoss)
    }
}
