import Foundation
import Testing

@testable import Metrics

/// ROUGE against the `rouge-score` package on a golden set (Tests/Fixtures/rouge/golden.json,
/// scripts/make_rouge_reference.py): the words it compares and every precision, recall and F-measure, without and with
/// its Porter stemmer (NLTK's, whose irregular forms and extra rules the last pairs exercise).
@Suite struct RougeTests {
    struct Entry: Decodable {
        struct Triple: Decodable {
            var precision: Double
            var recall: Double
            var fmeasure: Double
        }
        var target: String
        var prediction: String
        var stemmed: Bool
        var target_tokens: [String]
        var prediction_tokens: [String]
        var rouge1: Triple
        var rouge2: Triple
        var rougeL: Triple
    }

    @Test(arguments: [false, true]) func scoresMatchRougeScore(stemming: Bool) throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        let data = try Data(contentsOf: root.appendingPathComponent("Fixtures/rouge/golden.json"))
        let golden = try JSONDecoder().decode([Entry].self, from: data).filter { $0.stemmed == stemming }
        #expect(golden.count >= 14)
        for entry in golden {
            #expect(Rouge.words(entry.target, stemming: stemming) == entry.target_tokens, "\(entry.target)")
            #expect(Rouge.words(entry.prediction, stemming: stemming) == entry.prediction_tokens, "\(entry.prediction)")
            let scores = Rouge.score(target: entry.target, prediction: entry.prediction, stemming: stemming)
            for (ours, theirs, name) in [
                (scores.rouge1, entry.rouge1, "rouge1"), (scores.rouge2, entry.rouge2, "rouge2"),
                (scores.rougeL, entry.rougeL, "rougeL"),
            ] {
                #expect(abs(ours.precision - theirs.precision) < 1e-12, "\(name) precision: \(entry.target)")
                #expect(abs(ours.recall - theirs.recall) < 1e-12, "\(name) recall: \(entry.target)")
                #expect(abs(ours.fmeasure - theirs.fmeasure) < 1e-12, "\(name) F: \(entry.target)")
            }
        }
    }

    /// 6,000 real words (SmolLM2's whole-word tokens) stem as NLTK stems them for rouge-score, and a few edge words.
    @Test func stemsMatchNLTK() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        let data = try Data(contentsOf: root.appendingPathComponent("Fixtures/rouge/stems.json"))
        let stems = try JSONDecoder().decode([String: String].self, from: data)
        #expect(stems.count == 6000)
        let wrong = stems.filter { PorterStemmer.stem($0.key) != $0.value }
        #expect(wrong.isEmpty, "\(wrong.count) words differ, e.g. \(wrong.prefix(5).map { "\($0.key): \(PorterStemmer.stem($0.key)) vs \($0.value)" })")
        #expect(PorterStemmer.stem("ab") == "ab" && PorterStemmer.stem("skies") == "sky" && PorterStemmer.stem("ties") == "tie")
        #expect(PorterStemmer.stem(String(repeating: "y", count: 10_000)).count > 0)  // no quadratic walk
    }
}
