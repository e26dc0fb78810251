import Foundation
import Testing
@testable import Data

func writeTemp(_ name: String, _ bytes: [UInt8]) -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rankwise-data-\(getpid())")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let p = dir.appendingPathComponent(name).path
    _ = FileManager.default.createFile(atPath: p, contents: Data(bytes))
    return p
}

@Suite struct TableReaderTests {
    @Test func csvQuotingFollowsRFC4180() throws {
        let csv = "label,text\r\npos,\"hello, world\"\nneg,\"she said \"\"no\"\"\"\nneu,\"two\nlines\"\npos,plain\n"
        let (cols, recs, bad) = try TableReader.parse(Array(csv.utf8), format: .csv, name: "t.csv")
        #expect(cols == ["label", "text"])
        #expect(bad.isEmpty)
        #expect(recs.map { $0.fields["text"]! } == ["hello, world", "she said \"no\"", "two\nlines", "plain"])
        #expect(recs.map(\.line) == [2, 3, 4, 6])  // the quoted newline moves later lines down
    }

    @Test func unterminatedQuoteIsAnErrorWithTheLine() {
        #expect(throws: DataError.self) { try TableReader.parse(Array("a,b\n1,\"oops\n".utf8), format: .csv, name: "t.csv") }
    }

    @Test func wrongFieldCountIsReportedNotFatal() throws {
        let (_, recs, bad) = try TableReader.parse(Array("a,b\n1,2\n1,2,3\n4,5\n".utf8), format: .csv, name: "t.csv")
        #expect(recs.count == 2)
        #expect(bad.count == 1 && bad[0].0 == 3)
    }

    @Test func tsvAndJSONL() throws {
        let (_, t, _) = try TableReader.parse(Array("text\tlabel\na \"quoted\" word\t1\n".utf8), format: .tsv, name: "t.tsv")
        #expect(t[0].fields["text"] == "a \"quoted\" word")
        let (cols, j, bad) = try TableReader.parse(Array("{\"text\": \"hi\", \"label\": 2}\nnot json\n\n{\"text\": \"x\", \"label\": \"neg\", \"score\": 0.5}\n".utf8), format: .jsonl, name: "t.jsonl")
        #expect(cols == ["text", "label", "score"])
        #expect(j.map { $0.fields["label"]! } == ["2", "neg"])
        #expect(j[1].fields["score"] == "0.5")
        #expect(bad.count == 1 && bad[0].0 == 2)
    }

    @Test func invalidUTF8IsReplacedAndFlagged() throws {
        var b = Array("label,text\npos,ok\nneg,bad ".utf8)
        b += [0xFF, 0xFE]
        b += Array(" bytes\n".utf8)
        let (_, recs, _) = try TableReader.parse(b, format: .csv, name: "t.csv")
        #expect(recs[1].hadInvalidUTF8 && !recs[0].hadInvalidUTF8)
        #expect(recs[1].fields["text"]!.contains("\u{FFFD}"))
    }
}

@Suite struct DatasetTests {
    @Test func skipsAndReportsBadRows() throws {
        let csv = "sentiment,text\npositive,good\nnegative,\nneutral,fine\nangry,what\n,no label\npositive,good\nnegative,good\n"
        let p = writeTemp("rows.csv", Array(csv.utf8))
        var spec = DataSpec(); spec.labelColumn = "sentiment"; spec.labels = ["negative", "neutral", "positive"]
        let (ds, rep) = try Dataset.load(path: p, spec: spec)
        #expect(ds.examples.map(\.text) == ["good", "fine", "good", "good"])
        #expect(ds.examples.map(\.label) == [2, 1, 2, 0])
        #expect(rep.emptyTextCount == 1 && rep.emptyText == [3])
        #expect(rep.unknownLabelCount == 1 && rep.unknownLabel[0].0 == 5)
        #expect(rep.missingLabelCount == 1 && rep.missingLabel == [6])
        #expect(rep.duplicates == 2 && rep.conflictingDuplicates == 1)
        spec.dropDuplicates = true
        let (d2, r2) = try Dataset.load(path: p, spec: spec)
        #expect(d2.examples.count == 2 && r2.duplicatesDropped == 2)
        #expect(rep.problems.count == 4)
    }

    @Test func discoversLabelsAndRegression() throws {
        let p = writeTemp("ints.csv", Array("text,label\na,2\nb,0\nc,1\n".utf8))
        let (ds, _) = try Dataset.load(path: p, spec: DataSpec())
        #expect(ds.labelNames == ["0", "1", "2"] && ds.examples.map(\.label) == [2, 0, 1])
        let q = writeTemp("reg.jsonl", Array("{\"text\":\"a\",\"label\":0.25}\n{\"text\":\"b\",\"label\":\"x\"}\n".utf8))
        var spec = DataSpec(); spec.regression = true
        let (r, rep) = try Dataset.load(path: q, spec: spec)
        #expect(r.examples.map(\.target) == [0.25] && rep.unknownLabelCount == 1)
    }

    @Test func missingColumnNamesTheColumns() throws {
        let p = writeTemp("cols.csv", Array("a,b\n1,2\n".utf8))
        do { _ = try Dataset.load(path: p, spec: DataSpec()); Issue.record("accepted") }
        catch { #expect("\(error)".contains("\"text\"") && "\(error)".contains("a, b")) }
    }

    @Test func splitIsDeterministicAndKeepsDuplicatesTogether() throws {
        var ex: [Example] = []
        for i in 0..<1000 { ex.append(Example(text: "t\(i % 700)", pair: nil, label: i % 3, target: 0, line: i + 2)) }
        let ds = Dataset(examples: ex, labelNames: ["a", "b", "c"], regression: false)
        let s1 = ds.split(dev: 0.1, test: 0.1, seed: 42), s2 = ds.split(dev: 0.1, test: 0.1, seed: 42)
        #expect(s1.train.examples == s2.train.examples && s1.test.examples == s2.test.examples)
        #expect(s1.train.examples.count + s1.dev.examples.count + s1.test.examples.count == 1000)
        let trainTexts = Set(s1.train.examples.map(\.text))
        #expect(s1.dev.examples.allSatisfy { !trainTexts.contains($0.text) })
        #expect(s1.test.examples.allSatisfy { !trainTexts.contains($0.text) })
        let s3 = ds.split(dev: 0.1, test: 0.1, seed: 43)
        #expect(s3.test.examples != s1.test.examples)
    }
}
