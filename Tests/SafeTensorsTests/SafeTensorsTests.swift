import Foundation
import Testing
import TestSupport
@testable import SafeTensors

func tmpPath(_ name: String) -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rankwise-tests-\(getpid())")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.appendingPathComponent(name).path
}

/// A header + data file built by hand, for hostile cases.
func rawFile(_ header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
    let h = Array(header.utf8)
    var out: [UInt8] = []
    withUnsafeBytes(of: (declaredLength ?? UInt64(h.count)).littleEndian) { out.append(contentsOf: $0) }
    return out + h + data
}

func openError(_ bytes: [UInt8], _ name: String) -> String? {
    let p = tmpPath(name)
    _ = FileManager.default.createFile(atPath: p, contents: Data(bytes))
    do { _ = try SafeTensorsFile(path: p); return nil } catch { return "\(error)" }
}

@Suite struct SafeTensorsTests {
    @Test func roundTripAllDtypes() throws {
        let p = tmpPath("rt.safetensors")
        let half: [UInt16] = [0x3C00, 0xC000, 0x0001, 0x7C00]  // 1, -2, smallest subnormal, +inf
        var hb: [UInt8] = []
        for h in half { hb.append(UInt8(h & 0xFF)); hb.append(UInt8(h >> 8)) }
        let bf: [UInt16] = [0x3F80, 0xC040]  // 1, -3
        var bb: [UInt8] = []
        for h in bf { bb.append(UInt8(h & 0xFF)); bb.append(UInt8(h >> 8)) }
        try SafeTensorsWriter.write([
            TensorToWrite(name: "w", shape: [2, 3], floats: [1, 2, 3, 4, 5, 6]),
            TensorToWrite(name: "ids", shape: [3], int64s: [-1, 0, 1 << 40]),
            TensorToWrite(name: "h", dtype: .F16, shape: [4], bytes: hb),
            TensorToWrite(name: "b", dtype: .BF16, shape: [2], bytes: bb),
        ], metadata: ["format": "pt"], to: p)
        let f = try SafeTensorsFile(path: p)
        #expect(f.metadata["format"] == "pt")
        #expect(try f.floats("w") == [1, 2, 3, 4, 5, 6])
        #expect(try f.f32Pointer("w") != nil)  // F32 is used in place
        #expect(try f.ints("ids") == [-1, 0, 1 << 40])
        let h = try f.floats("h")
        #expect(h[0] == 1 && h[1] == -2 && h[2] == Float(sign: .plus, exponent: -24, significand: 1) && h[3] == .infinity)
        #expect(try f.floats("b") == [1, -3])
        #expect(f.info("w")!.shape == [2, 3])
        // no temp files left behind by the atomic write
        let left = try FileManager.default.contentsOfDirectory(atPath: (p as NSString).deletingLastPathComponent).filter { $0.contains(".tmp-") }
        #expect(left.isEmpty)
    }

    @Test func readsTheReferenceFixture() throws {
        let f = try SafeTensorsFile(path: Fixtures.minilm + "/encoder_forward.safetensors")
        #expect(f.info("last_hidden_state")?.shape == [3, 9, 384])
        #expect(try f.ints("input_ids").first == 101)
    }

    @Test(arguments: [
        ("header length beyond file", rawFile("{}", declaredLength: 1000), "past the end"),
        ("not JSON", rawFile("{\"a\": nope}"), "not valid JSON"),
        ("JSON array", rawFile("[1,2]"), "not a JSON object"),
        ("unknown dtype", rawFile(#"{"t":{"dtype":"Q8","shape":[1],"data_offsets":[0,1]}}"#, data: [0]), "unknown dtype"),
        ("offset out of range", rawFile(#"{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: [0, 0, 0, 0]), "run past"),
        ("reversed offsets", rawFile(#"{"t":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}"#, data: [0, 0, 0, 0]), "reversed"),
        ("byte count mismatch", rawFile(#"{"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8)), "needs 12 bytes"),
        ("overlap", rawFile(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: [UInt8](repeating: 0, count: 8)), "overlaps"),
        ("duplicate names", rawFile(#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#, data: [0, 0]), "duplicate"),
        ("negative shape", rawFile(#"{"t":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}}"#), "non-negative"),
        ("overflowing shape", rawFile(#"{"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}"#), "overflow"),
        ("too short", [1, 2, 3], "too short"),
    ])
    func hostileFilesGiveClearErrors(name: String, bytes: [UInt8], expected: String) {
        let err = openError(bytes, "hostile-\(name.replacingOccurrences(of: " ", with: "-")).safetensors")
        #expect(err != nil, "\(name) was accepted")
        #expect(err?.contains(expected) == true, "\(name): \(err ?? "")")
        #expect(err?.contains("hostile-") == true, "error must name the file: \(err ?? "")")
    }

    @Test func errorsNameTheTensor() {
        let err = openError(rawFile(#"{"my.weight":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8)), "t.safetensors")
        #expect(err?.contains("my.weight") == true)
    }

    /// Mutates real files in thousands of random ways: every outcome must be a clean open or a thrown
    /// error, and whatever opens must read back without crashing.
    @Test func randomCorruptionNeverCrashes() throws {
        var sources: [[UInt8]] = []
        for f in ["encoder_forward.safetensors", "lora_seqcls/adapter_model.safetensors", "adalora_seqcls/adapter_model.safetensors"] {
            if let d = FileManager.default.contents(atPath: Fixtures.minilm + "/" + f) { sources.append([UInt8](d)) }
        }
        try #require(sources.count == 3, "the shared fixtures (../shared/fixtures) are missing")
        var g = RandomSource(seed: 1234)
        var opened = 0, rejected = 0
        let p = tmpPath("fuzz.safetensors")
        for iter in 0..<1500 {
            var b = sources[iter % sources.count]
            let hlen = Int(b.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
            switch g.next(7) {
            case 0: b = Array(b.prefix(g.next(b.count)))  // truncate anywhere
            case 1: for _ in 0..<(1 + g.next(4)) { b[8 + g.next(hlen)] = UInt8(g.next(256)) }  // random header bytes
            case 2: for _ in 0..<(1 + g.next(3)) { b[g.next(8)] = UInt8(g.next(256)) }  // header length field
            case 3:  // digits in the header changed (shapes, offsets)
                let digits = (8..<(8 + hlen)).filter { b[$0] >= 0x30 && b[$0] <= 0x39 }
                for _ in 0..<(1 + g.next(3)) { b[digits[g.next(digits.count)]] = UInt8(0x30 + g.next(10)) }
            case 4:  // dtype swapped
                let s = String(decoding: b[8..<(8 + hlen)], as: UTF8.self)
                let repl = ["F32", "F16", "BF16", "I64", "U8", "XX", "F64"][g.next(7)]
                let hs = s.replacingOccurrences(of: ["F32", "I64"][g.next(2)], with: repl)
                b = rawFile(hs, data: Array(b[(8 + hlen)...]))
            case 5:  // header cut or extended inside the JSON
                let cut = g.next(hlen)
                b = rawFile(String(decoding: b[8..<(8 + cut)], as: UTF8.self), data: Array(b[(8 + hlen)...]))
            default:  // random bytes anywhere
                for _ in 0..<(1 + g.next(16)) { b[g.next(b.count)] = UInt8(g.next(256)) }
            }
            _ = FileManager.default.createFile(atPath: p, contents: Data(b))
            do {
                let f = try SafeTensorsFile(path: p)
                opened += 1
                for info in f.infos {
                    switch info.dtype {
                    case .F32, .F16, .BF16, .F64: _ = try f.floats(info.name)
                    default: _ = try f.ints(info.name)
                    }
                }
            } catch {
                rejected += 1
                #expect("\(error)".contains("fuzz.safetensors"))
            }
        }
        #expect(opened > 0 && rejected > 0)
    }
}

/// Deterministic small generator for the fuzz test.
struct RandomSource {
    var s: UInt64
    init(seed: UInt64) { s = seed }
    mutating func next(_ n: Int) -> Int {
        s = s &* 6364136223846793005 &+ 1442695040888963407
        return n <= 0 ? 0 : Int((s >> 33) % UInt64(n))
    }
}

@Suite struct JSONParserTests {
    @Test func parsesAndRejects() throws {
        let v = try JSONParser.parse(Array(#"{"a":[1,-2.5e3,true,null,"x\u00e9\n"],"b":{}}"#.utf8))
        #expect(v["a"] == .array([.number(1), .number(-2500), .bool(true), .null, .string("xé\n")]))
        #expect(throws: JSONParseError.self) { try JSONParser.parse(Array(#"{"a":1,"a":2}"#.utf8)) }
        #expect(throws: JSONParseError.self) { try JSONParser.parse(Array(#"{"a":1} x"#.utf8)) }
        #expect(throws: JSONParseError.self) { try JSONParser.parse(Array(String(repeating: "[", count: 1000).utf8)) }
    }

    /// `report --output /dev/full` (as root) once replaced the device with a regular file: an atomic write
    /// now writes through a symbolic link and refuses devices, pipes and directories.
    @Test func atomicWriteRefusesSpecialFilesAndFollowsLinks() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rankwise-atomic-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "old".write(toFile: dir + "/target", atomically: false, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: dir + "/link", withDestinationPath: dir + "/target")
        try AtomicFile.write("new", to: dir + "/link")
        #expect(try String(contentsOfFile: dir + "/target", encoding: .utf8) == "new")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: dir + "/link") == dir + "/target")  // still a link
        #expect(mkfifo(dir + "/fifo", 0o644) == 0)
        for p in ["/dev/full", dir + "/fifo", dir] {
            #expect { try AtomicFile.write("x", to: p) } throws: { "\($0)".contains("not a regular file") }
        }
        var st = stat()
        #expect(stat("/dev/full", &st) == 0 && (st.st_mode & S_IFMT) == S_IFCHR)
        #expect { try AtomicFile.write("x", to: "") } throws: { "\($0)".contains("empty file name") }
    }
}
