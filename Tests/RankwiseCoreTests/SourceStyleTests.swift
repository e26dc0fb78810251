import Foundation
import Testing

/// Sources stay readable at a glance: no line over 120 columns (swift-format with .swift-format, then
/// scripts/split-long-strings.py for the string literals it does not break).
@Suite struct SourceStyleTests {
    static let limit = 120

    @Test func everySourceLineFitsTheColumnLimit() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources")
        let files = FileManager.default.enumerator(atPath: root.path)?.compactMap { $0 as? String }
            .filter { $0.hasSuffix(".swift") } ?? []
        #expect(files.count > 50, "found only \(files.count) Swift files under \(root.path)")
        var long: [String] = []
        for file in files.sorted() {
            let text = try String(contentsOfFile: root.appendingPathComponent(file).path, encoding: .utf8)
            for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
            where line.count > Self.limit {
                long.append("Sources/\(file):\(number + 1) (\(line.count) columns)")
            }
        }
        let listed = long.prefix(40).joined(separator: "\n")
        #expect(long.isEmpty, "\(long.count) lines over \(Self.limit) columns:\n\(listed)")
    }
}
