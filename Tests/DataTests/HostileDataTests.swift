import Foundation
import Testing
@testable import Data

/// Data files that once became silent nonsense (a class named `array([...])`, a NUL-byte fourth class)
/// or an unhelpful message ("cannot read", "no usable rows ()", 6 KB of binary shown as columns).
@Suite struct HostileDataTests {
    func file(_ name: String, _ bytes: [UInt8]) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rankwise-hostile-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: dir + "/" + name, contents: Data(bytes))
        return dir + "/" + name
    }

    @Test func clearErrors() throws {
        let cases: [(String, String, String)] = [
            ("nested.jsonl", "{\"text\":\"a\",\"label\":{\"x\":1}}\n{\"text\":\"b\",\"label\":\"pos\"}\n", "line 1: column \"label\" holds an object"),
            ("array.jsonl", "{\"text\":\"b\",\"label\":\"pos\"}\n{\"text\":[1],\"label\":\"neg\"}\n", "line 2: column \"text\" holds an array"),
            ("nul.csv", "text,label\na,po\u{0}s\nb,neg\n", "line 2: column \"label\" contains a NUL byte"),
            ("header.csv", "text,label\n", "no data rows"),
            ("twice.tsv", "text\ttext\tlabel\na\tb\tc\n", "line 1: the header names column \"text\" more than once"),  // found by rankwise-fuzz
            ("binary.csv", String(decoding: (0..<600).map { UInt8($0 % 32) }, as: UTF8.self), "looks like a binary file"),
        ]
        for (name, text, says) in cases {
            let path = try file(name, Array(text.utf8))
            #expect { try Dataset.load(path: path, spec: DataSpec()) } throws: { "\($0)".contains(says) && "\($0)".contains(name) }
        }
        let dir = FileManager.default.temporaryDirectory.path
        #expect { try Dataset.load(path: dir, spec: DataSpec()) } throws: { "\($0)".contains("is a directory") }
        // An extra column holding an array is fine when no used column does.
        let ok = try file("extra.jsonl", Array("{\"text\":\"a\",\"label\":\"x\",\"tags\":[1,2]}\n".utf8))
        #expect(try Dataset.load(path: ok, spec: DataSpec()).0.examples.count == 1)
    }
}
