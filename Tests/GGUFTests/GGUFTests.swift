import Foundation
import GGUF
import SafeTensors
import Testing
import TestSupport

/// The GGUF reader against the `gguf` package (scripts/make_gguf_fixtures.py): every metadata value type, every
/// tensor type on seeded blocks, real blocks of SmolLM2, and hostile files.
@Suite struct GGUFTests {
    static let fixtures = Fixtures.packageRoot.path + "/Tests/Fixtures/gguf"

    @Test func metadataOfEveryValueType() throws {
        let file = try GGUFFile(path: Self.fixtures + "/tiny.gguf")
        #expect(file.version == 3)
        #expect(file.alignment == 64)
        #expect(try file.string("general.architecture") == "llama")
        #expect(file.metadata["test.uint8"] == .unsigned(200))
        #expect(file.metadata["test.int8"] == .signed(-100))
        #expect(file.metadata["test.uint16"] == .unsigned(60000))
        #expect(file.metadata["test.int16"] == .signed(-30000))
        #expect(file.metadata["test.uint32"] == .unsigned(4_000_000_000))
        #expect(file.metadata["test.int32"] == .signed(-2_000_000_000))
        #expect(file.metadata["test.float32"] == .float(0.125))
        #expect(try file.bool("test.bool"))
        #expect(try file.string("test.string") == "héllo ✓ 世界")
        #expect(file.metadata["test.uint64"] == .unsigned(UInt64(1) << 63 + 5))
        #expect(file.metadata["test.int64"] == .signed(-(Int64(1) << 62)))
        #expect(file.metadata["test.float64"] == .float(-1.5e-300))
        #expect(try file.strings("test.strings") == ["a", "", "Ġthe", "<|im_start|>"])
        #expect(try file.integers("test.ints") == [1, -2, 3])
        #expect(file.metadata["test.nested"] == .array([.array([.signed(1), .signed(2)]), .array([.signed(3)])]))
        #expect(file.keys.first == "general.architecture" && file.keys.contains("test.nested"))
        #expect { try file.integer("test.string") } throws: { "\($0)".contains("key \"test.string\": expected an integer") }
        #expect { try file.string("no.such.key") } throws: { "\($0)".contains("\"no.such.key\": not in the metadata") }
    }

    /// Each type's 3 x 256 tensor dequantises to the package's values (F16, BF16 and the block formats exactly:
    /// the same float products in the same order; allow one rounding step for the package's float16 products).
    @Test func everyTypeDequantisesAsTheGGUFPackage() throws {
        let file = try GGUFFile(path: Self.fixtures + "/tiny.gguf")
        let expected = try SafeTensorsFile(path: Self.fixtures + "/tiny-expected.safetensors")
        #expect(Set(file.tensors.map(\.type)) == Set(GGMLType.allCases))
        for tensor in file.tensors {
            #expect(tensor.shape == [3, 256], "\(tensor.name)")
            let ours = try file.floats(tensor.name)
            let theirs = try expected.floats(tensor.name)
            #expect(ours.count == theirs.count)
            let worst = zip(ours, theirs).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? .infinity
            #expect(worst <= 1e-6, "\(tensor.name) (\(tensor.type.name)): worst relative difference \(worst)")
            #expect(theirs.contains { $0 != 0 }, "\(tensor.name): the fixture is all zeros")
        }
    }

    /// Real blocks of the SmolLM2 file (Q8_0 embeddings, Q4_1 projections, F32 norms) as the package reads them.
    @Test func realSmolLM2BlocksMatchTheGGUFPackage() throws {
        guard let model = Fixtures.smollm2() else { return }
        let file = try GGUFFile(path: model)
        #expect(try file.string("general.architecture") == "llama")
        #expect(try file.integer("llama.block_count") == 30)
        #expect(try file.integer("llama.attention.head_count_kv") == 3)
        #expect(try file.number("llama.rope.freq_base") == 100_000)
        #expect(try file.strings("tokenizer.ggml.tokens").count == 49152)
        #expect(try file.strings("tokenizer.ggml.merges").count == 48900)
        #expect(file.tensors.count == 272)
        #expect(try file.info("token_embd.weight").shape == [49152, 576])
        #expect(try file.info("blk.0.attn_k.weight").shape == [192, 576])
        let expected = try SafeTensorsFile(path: Self.fixtures + "/smollm2-blocks.safetensors")
        for name in ["token_embd.weight", "blk.0.attn_q.weight", "blk.29.ffn_down.weight", "blk.0.attn_norm.weight"] {
            let info = try file.info(name)
            let all = try file.floats(name)
            let rows = try expected.ints(name + ".rows").map { Int($0) }
            let width = info.shape.last!
            let ours = rows.isEmpty ? all : rows.flatMap { all[($0 * width)..<(($0 + 1) * width)] }
            let theirs = try expected.floats(name)
            #expect(ours.count == theirs.count, "\(name)")
            let worst = zip(ours, theirs).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? .infinity
            #expect(worst <= 1e-6, "\(name): worst relative difference \(worst)")
        }
    }

    /// Broken files fail with the file's name and what is wrong, before any large allocation.
    @Test func hostileFilesAreClearErrors() throws {
        let good = try Data(contentsOf: URL(fileURLWithPath: Self.fixtures + "/tiny.gguf"))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gguf-hostile-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        func reading(_ bytes: Data) -> String {
            let path = directory.appendingPathComponent("bad.gguf").path
            FileManager.default.createFile(atPath: path, contents: bytes)
            do {
                _ = try GGUFFile(path: path)
                return "opened"
            } catch {
                return "\(error)"
            }
        }
        func patched(_ offset: Int, _ bytes: [UInt8]) -> Data {
            var data = good
            data.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
            return data
        }
        #expect(reading(good.prefix(100)).contains("the tensor count 9 cannot fit in the 84 bytes left after byte 16"))
        // No tensors and one key, cut inside that key's type: "general.architecture" is 20 bytes from byte 32.
        let oneKey = patched(8, [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]).prefix(54)
        #expect(reading(oneKey).contains("truncated at byte 52 while reading the type of key \"general.architecture\""))
        #expect(reading(good.prefix(good.count - 20)).contains("runs past the end of the file"))
        #expect(reading(Data("GGML".utf8) + good.dropFirst(4)).contains("not a GGUF file"))
        #expect(reading(patched(4, [9, 0, 0, 0])).contains("GGUF version 9 is not supported"))
        // A tensor count of 2^60: refused from the bytes left, not allocated.
        #expect(reading(patched(8, [0, 0, 0, 0, 0, 0, 0, 0x10])).contains("cannot fit in the"))
        // A string length of 2^62 in the first key.
        #expect(reading(patched(24, [0, 0, 0, 0, 0, 0, 0, 0x40])).contains("cannot fit in the"))
        #expect(reading(Data()).contains("too short for a GGUF header"))
        #expect(reading(good).contains("opened"))
        let names = try GGUFFile(path: Self.fixtures + "/tiny.gguf")
        #expect { try names.floats("no.such.tensor") } throws: { "\($0)".contains("tensor \"no.such.tensor\": not in the file") }
    }

    /// An unsupported type names the tensor and the type.
    @Test func unsupportedTensorTypeNamesTheTensor() throws {
        var data = try Data(contentsOf: URL(fileURLWithPath: Self.fixtures + "/tiny.gguf"))
        let file = try GGUFFile(path: Self.fixtures + "/tiny.gguf")
        // Find the F32 tensor's type field: name, then n_dims (u32), dims (u64 each), then the type (u32).
        let name = Array("tensor.f32".utf8)
        let bytes = [UInt8](data)
        let start = try #require((0..<(bytes.count - name.count)).first { Array(bytes[$0..<($0 + name.count)]) == name })
        let typeOffset = start + name.count + 4 + 8 * file.tensors[0].dimensions.count
        #expect(bytes[typeOffset] == 0)
        data[typeOffset] = 10  // Q2_K
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("q2k-\(getpid()).gguf").path
        FileManager.default.createFile(atPath: path, contents: data)
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect { try GGUFFile(path: path) } throws: { "\($0)".contains("tensor \"tensor.f32\": Q2_K is not supported") }
    }
}
