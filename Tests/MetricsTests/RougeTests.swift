import Foundation
import Testing

@testable import Metrics

/// ROUGE against the `rouge-score` package on a golden set (Tests/Fixtures/rouge/golden.json,
/// scripts/make_rouge_reference.py): the words it compares and every precision, recall and F-measure. The pairs
/// scored with its Porter stemmer wait for Rankwise's stemmer.
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

    @Test func unstemmedScoresMatchRougeScore() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        let data = try Data(contentsOf: root.appendingPathComponent("Fixtures/rouge/golden.json"))
        let golden = try JSONDecoder().decode([Entry].self, from: data).filter { !$0.stemmed }
        #expect(golden.count >= 14)
        for entry in golden {
            #expect(Rouge.words(entry.target) == entry.target_tokens, "\(entry.target)")
            #expect(Rouge.words(entry.prediction) == entry.prediction_tokens, "\(entry.prediction)")
            let scores = Rouge.score(target: entry.target, prediction: entry.prediction)
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
}
