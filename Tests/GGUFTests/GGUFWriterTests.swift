import Foundation
import Testing

@testable import GGUF

/// What `GGUFWriter` writes reads back through `GGUFFile`: metadata of every written type, copied raw entries, F32
/// tensors exactly, F16 to its rounding, Q8_0 within half a step (plus the F16 rounding of the step) of every value, as ggml's
/// reference quantiser does.
@Suite struct GGUFWriterTests {
    @Test func writtenFilesReadBack() throws {
        var random = SystemRandomNumberGenerator()
        let values = (0..<(64 * 3)).map { _ in Float.random(in: -2...2, using: &random) }
        let source = FileManager.default.temporaryDirectory.appendingPathComponent("rankwise-writer-\(getpid()).gguf")
            .path
        defer { try? FileManager.default.removeItem(atPath: source) }
        var writer = GGUFWriter()
        writer.add("general.architecture", .string("llama"))
        writer.add("test.scale", .float32(0.5))
        writer.add("test.count", .uint32(7))
        writer.add("test.offset", .int32(-3))
        writer.add("test.flag", .bool(true))
        writer.add("test.names", .strings(["a", "bé"]))
        for type in GGMLType.writable {
            writer.addTensor("t.\(type.name)", shape: [3, 64], type: type, bytes: type.encode(values))
        }
        try writer.write(to: source)
        let file = try GGUFFile(path: source)
        #expect(try file.string("general.architecture") == "llama" && file.number("test.scale") == 0.5)
        #expect(try file.integer("test.count") == 7 && file.integer("test.offset") == -3 && file.bool("test.flag"))
        #expect(try file.strings("test.names") == ["a", "bé"])
        #expect(try file.floats("t.F32") == values)
        let half = try file.floats("t.F16")
        #expect(zip(half, values).allSatisfy { abs($0 - $1) <= abs($1) * 1e-3 + 1e-7 })
        let quantised = try file.floats("t.Q8_0")
        for block in 0..<(values.count / 32) {
            let slice = (block * 32)..<(block * 32 + 32)
            let step = values[slice].map(abs).max()! / 127
            // Half a step, plus what storing the step as F16 costs the largest value (127 x its rounding).
            for i in slice { #expect(abs(quantised[i] - values[i]) <= step * (0.5 + 127 / 2048) + 1e-6) }
        }
        // Raw entries copy a file's metadata exactly.
        var copy = GGUFWriter()
        for key in file.keys { copy.add(key, .raw(file.rawEntries[key]!)) }
        let copied = source + ".copy"
        defer { try? FileManager.default.removeItem(atPath: copied) }
        try copy.write(to: copied)
        let reread = try GGUFFile(path: copied)
        #expect(reread.keys == file.keys && reread.metadata == file.metadata && reread.tensors.isEmpty)
    }
}
