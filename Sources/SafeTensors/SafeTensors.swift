import Foundation
import MappedFile

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Element types of the safetensors format.
public enum DType: String, Sendable, CaseIterable {
    case F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL

    public var size: Int {
        switch self {
        case .F64, .I64, .U64: return 8
        case .F32, .I32, .U32: return 4
        case .F16, .BF16, .I16, .U16: return 2
        case .I8, .U8, .BOOL: return 1
        }
    }
}

/// An error reading or writing a safetensors file. Every case names the file, and the tensor when one is at fault.
public struct SafeTensorsError: Error, CustomStringConvertible {
    public var file: String
    public var tensor: String?
    public var message: String
    public var description: String {
        if let tensor { return "\(file): tensor \"\(tensor)\": \(message)" }
        return "\(file): \(message)"
    }
}

/// Where a tensor lives in the file.
public struct TensorInfo: Sendable {
    public var name: String
    public var dtype: DType
    public var shape: [Int]
    /// Byte range relative to the start of the data section.
    public var begin: Int
    public var end: Int
    public var count: Int { shape.reduce(1, *) }
}

/// A safetensors file, memory-mapped read-only (copy-on-write), validated when opened.
///
/// Validation covers every way a broken or hostile file can go wrong: a header length beyond the
/// file, a header that is not JSON or not an object, unknown dtypes, negative or overflowing shapes,
/// offsets out of range, reversed or overlapping, byte counts that do not match the shape, and
/// duplicate names. Nothing is read past the end of the mapping.
public final class SafeTensorsFile: @unchecked Sendable {
    public let path: String
    /// Tensors in file order.
    public let infos: [TensorInfo]
    public let metadata: [String: String]
    private let index: [String: Int]
    /// Mapped copy-on-write: a tensor's bytes can be borrowed as mutable parameter storage without touching the file.
    private let file: MappedFile
    private var base: UnsafeMutableRawPointer { file.base }
    private let dataStart: Int

    public init(path: String) throws {
        self.path = path
        func fail(_ m: String, _ t: String? = nil) -> SafeTensorsError {
            SafeTensorsError(file: path, tensor: t, message: m)
        }
        let file: MappedFile
        do { file = try MappedFile(path: path, writable: true) } catch { throw fail("\(error)") }
        let m = file.base
        let len = file.length
        guard len >= 8 else { throw fail("file is \(len) bytes, too short for a safetensors header") }
        let headerLen = m.loadUnaligned(as: UInt64.self).littleEndian
        guard headerLen <= UInt64(len - 8) else {
            throw fail(
                "header length \(headerLen) runs past the end of the file (\(len) bytes): truncated or not a "
                    + "safetensors file"
            )
        }
        guard headerLen <= 100_000_000 else { throw fail("header length \(headerLen) is over the 100 MB limit") }
        let hbytes = UnsafeBufferPointer(start: (m + 8).assumingMemoryBound(to: UInt8.self), count: Int(headerLen))
        let json: JSONValue
        do { json = try JSONParser.parse(hbytes) } catch { throw fail("header is not valid JSON: \(error)") }
        guard case .object(let entries) = json else { throw fail("header is not a JSON object") }
        let dataStart = 8 + Int(headerLen)
        let dataLen = len - dataStart
        var infos: [TensorInfo] = []
        var meta: [String: String] = [:]
        for (name, v) in entries {
            if name == "__metadata__" {
                guard case .object(let kv) = v else { throw fail("__metadata__ is not an object") }
                for (k, mv) in kv {
                    guard case .string(let s) = mv else {
                        throw fail("__metadata__ value for \"\(k)\" is not a string")
                    }
                    meta[k] = s
                }
                continue
            }
            guard case .object = v else { throw fail("entry is not an object", name) }
            guard case .string(let ds)? = v["dtype"] else { throw fail("missing dtype", name) }
            guard let dtype = DType(rawValue: ds) else { throw fail("unknown dtype \"\(ds)\"", name) }
            guard case .array(let sh)? = v["shape"] else { throw fail("missing shape", name) }
            var shape: [Int] = []
            var count = 1
            for d in sh {
                guard case .number(let x) = d, x >= 0, x == x.rounded(), x < 9.0e15 else {
                    throw fail("shape \(sh.map(Self.render)) is not a list of non-negative integers", name)
                }
                shape.append(Int(x))
                let (p, o) = count.multipliedReportingOverflow(by: Int(x))
                guard !o else { throw fail("shape \(shape) overflows", name) }
                count = p
            }
            guard case .array(let off)? = v["data_offsets"], off.count == 2,
                case .number(let b0) = off[0], case .number(let e0) = off[1],
                b0 >= 0, e0 >= 0, b0 == b0.rounded(), e0 == e0.rounded(), b0 < 9.0e15, e0 < 9.0e15
            else { throw fail("data_offsets must be two non-negative integers", name) }
            let begin = Int(b0)
            let end = Int(e0)
            guard begin <= end else { throw fail("data_offsets [\(begin), \(end)] are reversed", name) }
            guard end <= dataLen else {
                throw fail(
                    "data_offsets [\(begin), \(end)] run past the data section (\(dataLen) bytes): file truncated?",
                    name)
            }
            let (bytes, o) = count.multipliedReportingOverflow(by: dtype.size)
            guard !o, bytes == end - begin else {
                throw fail(
                    "shape \(shape) of \(dtype) needs \(o ? "too many" : String(bytes)) bytes but data_offsets give "
                        + "\(end - begin)",
                    name)
            }
            infos.append(TensorInfo(name: name, dtype: dtype, shape: shape, begin: begin, end: end))
        }
        let sorted = infos.sorted { ($0.begin, $0.end) < ($1.begin, $1.end) }
        for k in sorted.indices.dropFirst() where sorted[k].begin < sorted[k - 1].end {
            throw fail("data overlaps tensor \"\(sorted[k - 1].name)\"", sorted[k].name)
        }
        self.infos = infos
        self.metadata = meta
        self.index = Dictionary(uniqueKeysWithValues: infos.enumerated().map { ($1.name, $0) })
        self.dataStart = dataStart
        self.file = file
    }

    private static func render(_ v: JSONValue) -> String {
        switch v {
        case .number(let x): return x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : String(x)
        case .string(let s): return "\"\(s)\""
        default: return "\(v)"
        }
    }

    public var names: [String] { infos.map(\.name) }
    public func info(_ name: String) -> TensorInfo? { index[name].map { infos[$0] } }
    public func contains(_ name: String) -> Bool { index[name] != nil }

    private func require(_ name: String) throws -> TensorInfo {
        guard let i = info(name) else {
            throw SafeTensorsError(file: path, tensor: name, message: "not found in the file")
        }
        return i
    }

    /// Raw bytes of a tensor (valid while this file is alive).
    public func rawBytes(_ name: String) throws -> UnsafeMutableRawBufferPointer {
        let i = try require(name)
        return UnsafeMutableRawBufferPointer(start: base + dataStart + i.begin, count: i.end - i.begin)
    }

    /// A pointer to F32 data used in place (no copy), or nil when the tensor is not F32 or not 4-byte aligned.
    /// Valid while this file object is alive.
    public func f32Pointer(_ name: String) throws -> UnsafeMutablePointer<Float>? {
        let i = try require(name)
        guard i.dtype == .F32 else { return nil }
        let p = base + dataStart + i.begin
        guard Int(bitPattern: p) % 4 == 0 else { return nil }
        return p.bindMemory(to: Float.self, capacity: i.count)
    }

    /// Copies a floating-point tensor to Float32, converting F16, BF16 and F64.
    public func floats(_ name: String) throws -> [Float] {
        let i = try require(name)
        let p = UnsafeRawPointer(base + dataStart + i.begin)
        let n = i.count
        switch i.dtype {
        case .F32:
            return (0..<n).map {
                Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)))
            }
        case .F16:
            return (0..<n).map {
                Float(float16Bits: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)))
            }
        case .BF16:
            return (0..<n).map {
                Float(
                    bitPattern: UInt32(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)))
                        << 16)
            }
        case .F64:
            return (0..<n).map {
                Float(
                    Double(bitPattern: UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self))))
            }
        default:
            throw SafeTensorsError(file: path, tensor: name, message: "dtype \(i.dtype) is not a floating-point type")
        }
    }

    /// Copies an integer tensor to Int64.
    public func ints(_ name: String) throws -> [Int64] {
        let i = try require(name)
        let p = UnsafeRawPointer(base + dataStart + i.begin)
        let n = i.count
        switch i.dtype {
        case .I64: return (0..<n).map { Int64(littleEndian: p.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self)) }
        case .I32:
            return (0..<n).map { Int64(Int32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self))) }
        case .I16:
            return (0..<n).map { Int64(Int16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * $0, as: Int16.self))) }
        case .I8: return (0..<n).map { Int64(p.load(fromByteOffset: $0, as: Int8.self)) }
        case .U8, .BOOL: return (0..<n).map { Int64(p.load(fromByteOffset: $0, as: UInt8.self)) }
        case .U16:
            return (0..<n).map { Int64(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) }
        case .U32:
            return (0..<n).map { Int64(UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
        case .U64:
            return (0..<n).map {
                Int64(
                    truncatingIfNeeded: UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self)))
            }
        default:
            throw SafeTensorsError(file: path, tensor: name, message: "dtype \(i.dtype) is not an integer type")
        }
    }
}

extension Float {
    /// IEEE half-precision bits to Float32 (handles subnormals, infinities and NaN).
    public init(float16Bits h: UInt16) {
        let sign = UInt32(h & 0x8000) << 16
        let exp = Int((h >> 10) & 0x1F)
        let mant = UInt32(h & 0x3FF)
        if exp == 0 {
            let v = Float(mant) * Float(sign: .plus, exponent: -24, significand: 1)
            self = sign != 0 ? -v : v
        } else if exp == 31 {
            self = Float(bitPattern: sign | 0x7F80_0000 | (mant << 13))
        } else {
            self = Float(bitPattern: sign | (UInt32(exp - 15 + 127) << 23) | (mant << 13))
        }
    }
}

/// A tensor to write.
public struct TensorToWrite {
    public var name: String
    public var dtype: DType
    public var shape: [Int]
    public var bytes: [UInt8]

    public init(name: String, dtype: DType, shape: [Int], bytes: [UInt8]) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    /// An F32 tensor from values.
    public init(name: String, shape: [Int], floats: [Float]) {
        precondition(shape.reduce(1, *) == floats.count, "tensor \(name): shape \(shape) for \(floats.count) values")
        var b = [UInt8](repeating: 0, count: floats.count * 4)
        b.withUnsafeMutableBytes { raw in
            for (k, v) in floats.enumerated() {
                raw.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: 4 * k, as: UInt32.self)
            }
        }
        self.init(name: name, dtype: .F32, shape: shape, bytes: b)
    }

    /// An I64 tensor from values.
    public init(name: String, shape: [Int], int64s: [Int64]) {
        var b = [UInt8](repeating: 0, count: int64s.count * 8)
        b.withUnsafeMutableBytes { raw in
            for (k, v) in int64s.enumerated() {
                raw.storeBytes(of: v.littleEndian, toByteOffset: 8 * k, as: Int64.self)
            }
        }
        self.init(name: name, dtype: .I64, shape: shape, bytes: b)
    }
}

public enum SafeTensorsWriter {
    /// Serialises tensors (sorted by name, as the reference implementation does) into safetensors bytes.
    public static func serialize(_ tensors: [TensorToWrite], metadata: [String: String] = [:]) throws -> [UInt8] {
        let sorted = tensors.sorted { $0.name < $1.name }
        var names = Set<String>()
        var header = "{"
        var parts: [String] = []
        if !metadata.isEmpty {
            let m = metadata.keys.sorted().map { "\(quote($0)):\(quote(metadata[$0]!))" }.joined(separator: ",")
            parts.append("\"__metadata__\":{\(m)}")
        }
        var offset = 0
        for t in sorted {
            guard names.insert(t.name).inserted else {
                throw SafeTensorsError(file: "(writing)", tensor: t.name, message: "duplicate tensor name")
            }
            guard t.shape.reduce(1, *) * t.dtype.size == t.bytes.count else {
                throw SafeTensorsError(
                    file: "(writing)", tensor: t.name,
                    message: "shape \(t.shape) does not match \(t.bytes.count) bytes of \(t.dtype)")
            }
            let shape = t.shape.map(String.init).joined(separator: ",")
            let range = "[\(offset),\(offset + t.bytes.count)]"
            let dtype = t.dtype.rawValue
            parts.append("\(quote(t.name)):{\"dtype\":\"\(dtype)\",\"shape\":[\(shape)],\"data_offsets\":\(range)}")
            offset += t.bytes.count
        }
        header += parts.joined(separator: ",") + "}"
        var h = Array(header.utf8)
        while h.count % 8 != 0 { h.append(0x20) }
        var out = [UInt8]()
        out.reserveCapacity(8 + h.count + offset)
        withUnsafeBytes(of: UInt64(h.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: h)
        for t in sorted { out.append(contentsOf: t.bytes) }
        return out
    }

    /// Writes atomically: to a temporary file in the same folder, flushed, then renamed over `path`.
    public static func write(_ tensors: [TensorToWrite], metadata: [String: String] = [:], to path: String) throws {
        let bytes = try serialize(tensors, metadata: metadata)
        try AtomicFile.write(bytes, to: path)
    }

    static func quote(_ s: String) -> String {
        var o = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": o += "\\\""
            case "\\": o += "\\\\"
            case "\n": o += "\\n"
            case "\r": o += "\\r"
            case "\t": o += "\\t"
            default:
                if u.value < 0x20 { o += String(format: "\\u%04x", u.value) } else { o.unicodeScalars.append(u) }
            }
        }
        return o + "\""
    }
}

/// Atomic file replacement: temp file in the same directory, fsync, rename. A symbolic link is written
/// through (its target is replaced); a device, pipe or directory at the path is refused, never replaced.
public enum AtomicFile {
    public static func write(_ bytes: [UInt8], to given: String) throws {
        guard !given.isEmpty else { throw SafeTensorsError(file: given, tensor: nil, message: "empty file name") }
        var path = given
        var st = stat()
        if lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK {
            guard let real = realpath(path, nil) else {
                throw SafeTensorsError(file: given, tensor: nil, message: "a symbolic link to a missing file")
            }
            path = String(cString: real)
            free(real)
        }
        if stat(path, &st) == 0 && (st.st_mode & S_IFMT) != S_IFREG {
            throw SafeTensorsError(
                file: given, tensor: nil,
                message: "not a regular file (a device, pipe or directory): refusing to replace it")
        }
        let tmp = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else {
            throw SafeTensorsError(
                file: path, tensor: nil, message: "cannot create \(tmp): \(String(cString: strerror(errno)))")
        }
        var written = 0
        let ok: Bool = bytes.withUnsafeBytes { raw in
            while written < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + written, raw.count - written)
                if n <= 0 {
                    if errno == EINTR { continue }
                    return false
                }
                written += n
            }
            return fsync(fd) == 0
        }
        let e = errno
        close(fd)
        guard ok else {
            unlink(tmp)
            throw SafeTensorsError(file: path, tensor: nil, message: "write failed: \(String(cString: strerror(e)))")
        }
        guard rename(tmp, path) == 0 else {
            let e2 = errno
            unlink(tmp)
            throw SafeTensorsError(file: path, tensor: nil, message: "rename failed: \(String(cString: strerror(e2)))")
        }
    }

    public static func write(_ string: String, to path: String) throws { try write(Array(string.utf8), to: path) }
}
