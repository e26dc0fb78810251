/// ROUGE-1, ROUGE-2 and ROUGE-L as the `rouge-score` package computes them (`RougeScorer.score(target, prediction)`):
/// text lowercased, every run of characters outside a-z and 0-9 a space, the words compared as n-gram multisets
/// (ROUGE-N) or by their longest common subsequence (ROUGE-L); with `stemming` (rouge-score's `use_stemmer`) words
/// longer than three letters go through `PorterStemmer` first.
public enum Rouge {
    /// Precision, recall and their harmonic mean (0 when both are 0).
    public struct Score: Sendable, Equatable, Codable {
        public var precision: Double
        public var recall: Double
        public var fmeasure: Double

        init(matches: Int, predicted: Int, target: Int) {
            precision = Double(matches) / Double(max(predicted, 1))
            recall = Double(matches) / Double(max(target, 1))
            fmeasure = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0
        }
    }

    public struct Scores: Sendable, Equatable, Codable {
        public var rouge1: Score
        public var rouge2: Score
        public var rougeL: Score
    }

    /// rouge-score's words: lowercase (Unicode, as Python's `lower`), then only the ASCII letters and digits count, any
    /// run of other characters separating words; stemmed when asked.
    public static func words(_ text: String, stemming: Bool = false) -> [String] {
        var words: [String] = []
        var word = ""
        for scalar in text.lowercased().unicodeScalars {
            if ("a"..."z").contains(scalar) || ("0"..."9").contains(scalar) {
                word.unicodeScalars.append(scalar)
            } else if !word.isEmpty {
                words.append(word)
                word = ""
            }
        }
        if !word.isEmpty { words.append(word) }
        guard stemming else { return words }
        return words.map { $0.utf8.count > 3 ? PorterStemmer.stem($0) : $0 }
    }

    public static func score(target: String, prediction: String, stemming: Bool = false) -> Scores {
        score(targetWords: words(target, stemming: stemming), predictionWords: words(prediction, stemming: stemming))
    }

    public static func score(targetWords: [String], predictionWords: [String]) -> Scores {
        Scores(
            rouge1: ngrams(targetWords, predictionWords, n: 1), rouge2: ngrams(targetWords, predictionWords, n: 2),
            rougeL: longestCommonSubsequence(targetWords, predictionWords))
    }

    /// ROUGE-N: the n-grams both share (each counted as often as the rarer side has it).
    static func ngrams(_ target: [String], _ prediction: [String], n: Int) -> Score {
        func counts(_ words: [String]) -> [ArraySlice<String>: Int] {
            var counts: [ArraySlice<String>: Int] = [:]
            if words.count >= n {
                for start in 0...(words.count - n) { counts[words[start..<(start + n)], default: 0] += 1 }
            }
            return counts
        }
        let targetCounts = counts(target)
        let predictionCounts = counts(prediction)
        let matches = targetCounts.reduce(0) { $0 + min($1.value, predictionCounts[$1.key] ?? 0) }
        return Score(
            matches: matches, predicted: predictionCounts.values.reduce(0, +), target: targetCounts.values.reduce(0, +))
    }

    /// ROUGE-L: the longest common subsequence over each side's length (0 when either side is empty).
    static func longestCommonSubsequence(_ target: [String], _ prediction: [String]) -> Score {
        guard !target.isEmpty, !prediction.isEmpty else { return Score(matches: 0, predicted: 1, target: 1) }
        var previous = [Int](repeating: 0, count: prediction.count + 1)
        var current = previous
        for word in target {
            for (j, other) in prediction.enumerated() {
                current[j + 1] = word == other ? previous[j] + 1 : max(previous[j + 1], current[j])
            }
            swap(&previous, &current)
        }
        return Score(matches: previous[prediction.count], predicted: prediction.count, target: target.count)
    }
}
