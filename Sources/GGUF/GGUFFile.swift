import Foundation
import MappedFile

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An error reading a GGUF file. It names the file, and the metadata key or tensor when one is at fault.
public struct GGUFError: Error, CustomStringConvertible {
    public var file: String
    /// The metadata key or tensor at fault ("tensor \"blk.0.attn_q.weight\"", "key \"llama.block_count\"").
    public var subject: String?
    public var message: String
    public var description: String {
        if let subject { return "\(file): \(subject): \(message)" }
        return "\(file): \(message)"
    }
}

/// A metadata value: GGUF's twelve scalar types fold into four, arrays keep their elements.
public enum GGUFValue: Sendable, Equatable {
    case unsigned(UInt64)
    case signed(Int64)
    case float(Double)
    case bool(Bool)
    case string(String)
    case array([GGUFValue])
}

/// Where a tensor lives in the file and how it is stored.
public struct GGUFTensorInfo: Sendable {
    public var name: String
    /// GGUF's dimensions, fastest first (ggml's `ne`): a `[out, in]` matrix is stored as `[in, out]`.
    public var dimensions: [Int]
    public var type: GGMLType
    /// Byte offset from the start of the data section.
    public var offset: Int
    public var count: Int { dimensions.reduce(1, *) }
    /// The shape in row-major order (slowest first), as Hugging Face and Rankwise write it.
    public var shape: [Int] { dimensions.reversed() }
    public var byteCount: Int { count / type.blockSize * type.blockBytes }
}

/// A GGUF file (versions 2 and 3), memory-mapped read-only and validated when opened.
///
/// The header, every metadata value and every tensor info are checked against the file's length before anything is
/// allocated: a count or a length that cannot fit in the bytes left is an error, not an allocation, so a hostile or
/// truncated file fails with its name and the key or tensor at fault. Tensor data stays in the mapping until asked
/// for (`floats`, `bytes`).
///
/// Tensors keep GGUF's layout. llama.cpp's converter permutes the rows of a LLaMA model's query and key weights
/// (each head's two rotary halves interleaved, for its RoPE); the reader does not undo that, since it is the model's
/// business: the LLaMA family undoes it when it loads a GGUF file, and a writer of GGUF adapters applies it again.
public final class GGUFFile: @unchecked Sendable {
    public let path: String
    public let version: UInt32
    /// Metadata keys in file order.
    public let keys: [String]
    public let metadata: [String: GGUFValue]
    /// Each key's whole entry as the file stores it (key, type, value), for writers that copy metadata exactly.
    public let rawEntries: [String: [UInt8]]
    /// Tensors in file order.
    public let tensors: [GGUFTensorInfo]
    /// The data section's alignment (`general.alignment`, 32 when absent).
    public let alignment: Int
    private let index: [String: Int]
    private let file: MappedFile
    private var base: UnsafeMutableRawPointer { file.base }
    private let dataStart: Int

    public init(path: String) throws {
        self.path = path
        func fail(_ message: String, _ subject: String? = nil) -> GGUFError {
            GGUFError(file: path, subject: subject, message: message)
        }
        let file: MappedFile
        do { file = try MappedFile(path: path) } catch { throw fail("\(error)") }
        let mapping = file.base
        let fileLength = file.length
        guard fileLength >= 24 else { throw fail("file is \(fileLength) bytes, too short for a GGUF header") }
        var reader = ByteReader(base: UnsafeRawPointer(mapping), length: fileLength, path: path)
        guard try reader.bytes(4, "the magic") == Array("GGUF".utf8) else {
            throw fail("not a GGUF file (the first four bytes are not \"GGUF\")")
        }
        version = try reader.scalar(UInt32.self, "the version")
        guard version == 2 || version == 3 else {
            throw fail("GGUF version \(version) is not supported (versions 2 and 3 are)")
        }
        let tensorCount = try reader.count("the tensor count", atLeast: 24)
        let keyCount = try reader.count("the metadata count", atLeast: 13)
        var keys: [String] = []
        var metadata: [String: GGUFValue] = [:]
        var rawEntries: [String: [UInt8]] = [:]
        for _ in 0..<keyCount {
            let entryStart = reader.position
            let key = try reader.string("a metadata key")
            let type = try reader.scalar(UInt32.self, "the type of key \"\(key)\"")
            let value = try reader.value(type: type, subject: "key \"\(key)\"", depth: 0)
            guard metadata.updateValue(value, forKey: key) == nil else {
                throw fail("appears twice", "key \"\(key)\"")
            }
            keys.append(key)
            rawEntries[key] = Array(
                UnsafeRawBufferPointer(start: mapping + entryStart, count: reader.position - entryStart))
        }
        var alignment = 32
        if let given = metadata["general.alignment"] {
            guard case .unsigned(let value) = given, value > 0, value <= 1 << 20, value & (value - 1) == 0 else {
                throw fail("must be a power of two up to 1 MiB, is \(given)", "key \"general.alignment\"")
            }
            alignment = Int(value)
        }
        var tensors: [GGUFTensorInfo] = []
        var index: [String: Int] = [:]
        for _ in 0..<tensorCount {
            let name = try reader.string("a tensor name")
            let subject = "tensor \"\(name)\""
            let dimensionCount = try reader.scalar(UInt32.self, "the dimension count of \(subject)")
            guard (1...4).contains(dimensionCount) else {
                throw fail("has \(dimensionCount) dimensions (1 to 4 allowed)", subject)
            }
            var dimensions: [Int] = []
            var count = 1
            for _ in 0..<dimensionCount {
                let dimension = try reader.scalar(UInt64.self, "a dimension of \(subject)")
                guard dimension > 0, dimension < 1 << 40 else { throw fail("has dimension \(dimension)", subject) }
                let (product, overflow) = count.multipliedReportingOverflow(by: Int(dimension))
                guard !overflow, product < 1 << 48 else { throw fail("has too many elements", subject) }
                count = product
                dimensions.append(Int(dimension))
            }
            let typeID = try reader.scalar(UInt32.self, "the type of \(subject)")
            guard let type = GGMLType(rawValue: typeID) else {
                let known = GGMLType.otherNames[typeID].map { "\($0) is not supported" } ?? "unknown type \(typeID)"
                let supported = GGMLType.allCases.map(\.name).joined(separator: ", ")
                throw fail("\(known) (Rankwise reads \(supported))", subject)
            }
            guard dimensions[0] % type.blockSize == 0 else {
                throw fail(
                    "first dimension \(dimensions[0]) is not whole \(type.name) blocks of \(type.blockSize)", subject)
            }
            let offset = try reader.scalar(UInt64.self, "the offset of \(subject)")
            guard offset < 1 << 48, Int(offset) % alignment == 0 else {
                throw fail("data offset \(offset) is not a multiple of the alignment \(alignment)", subject)
            }
            guard index.updateValue(tensors.count, forKey: name) == nil else { throw fail("appears twice", subject) }
            tensors.append(GGUFTensorInfo(name: name, dimensions: dimensions, type: type, offset: Int(offset)))
        }
        let dataStart = (reader.position + alignment - 1) / alignment * alignment
        for tensor in tensors {
            let end = dataStart + tensor.offset + tensor.byteCount
            guard end <= fileLength else {
                throw fail(
                    "\(tensor.type.name) data (\(tensor.byteCount) bytes at \(dataStart + tensor.offset)) runs past "
                        + "the "
                        + "end of the file (\(fileLength) bytes): truncated?", "tensor \"\(tensor.name)\"")
            }
        }
        self.keys = keys
        self.metadata = metadata
        self.rawEntries = rawEntries
        self.tensors = tensors
        self.index = index
        self.alignment = alignment
        self.dataStart = dataStart
        self.file = file
    }

    /// The tensor called `name`, or an error naming it.
    public func info(_ name: String) throws -> GGUFTensorInfo {
        guard let position = index[name] else {
            throw GGUFError(file: path, subject: "tensor \"\(name)\"", message: "not in the file")
        }
        return tensors[position]
    }

    /// The stored bytes of a tensor, in the mapping (valid while the file is alive).
    public func bytes(_ name: String) throws -> UnsafeRawBufferPointer {
        let tensor = try info(name)
        return UnsafeRawBufferPointer(start: base + dataStart + tensor.offset, count: tensor.byteCount)
    }

    /// A tensor's values as floats, dequantised, in row-major order of `info(name).shape`.
    public func floats(_ name: String) throws -> [Float] {
        let tensor = try info(name)
        let stored = try bytes(name)
        return [Float](unsafeUninitializedCapacity: tensor.count) { buffer, initialised in
            tensor.type.dequantize(stored.baseAddress!, count: tensor.count, into: buffer.baseAddress!)
            initialised = tensor.count
        }
    }

    /// The metadata value of `key`, or an error naming the key.
    public func value(_ key: String) throws -> GGUFValue {
        guard let value = metadata[key] else {
            throw GGUFError(file: path, subject: "key \"\(key)\"", message: "not in the metadata")
        }
        return value
    }

    /// An integer metadata value (any integer type), or an error naming the key.
    public func integer(_ key: String) throws -> Int {
        switch try value(key) {
        case .unsigned(let value) where value <= UInt64(Int.max): return Int(value)
        case .signed(let value): return Int(value)
        case let other: throw mismatch(key, "an integer", other)
        }
    }

    /// A floating-point metadata value (or an integer), or an error naming the key.
    public func number(_ key: String) throws -> Double {
        switch try value(key) {
        case .float(let value): return value
        case .unsigned(let value): return Double(value)
        case .signed(let value): return Double(value)
        case let other: throw mismatch(key, "a number", other)
        }
    }

    /// A string metadata value, or an error naming the key.
    public func string(_ key: String) throws -> String {
        guard case .string(let value) = try value(key) else { throw mismatch(key, "a string", metadata[key]!) }
        return value
    }

    /// A boolean metadata value, or an error naming the key.
    public func bool(_ key: String) throws -> Bool {
        guard case .bool(let value) = try value(key) else { throw mismatch(key, "a boolean", metadata[key]!) }
        return value
    }

    /// An array of strings, or an error naming the key.
    public func strings(_ key: String) throws -> [String] {
        guard case .array(let values) = try value(key) else { throw mismatch(key, "an array", metadata[key]!) }
        return try values.map {
            guard case .string(let value) = $0 else { throw mismatch(key, "an array of strings", $0) }
            return value
        }
    }

    /// An array of integers, or an error naming the key.
    public func integers(_ key: String) throws -> [Int] {
        guard case .array(let values) = try value(key) else { throw mismatch(key, "an array", metadata[key]!) }
        return try values.map {
            switch $0 {
            case .unsigned(let value) where value <= UInt64(Int.max): return Int(value)
            case .signed(let value): return Int(value)
            default: throw mismatch(key, "an array of integers", $0)
            }
        }
    }

    private func mismatch(_ key: String, _ expected: String, _ found: GGUFValue) -> GGUFError {
        let kind: String
        switch found {
        case .unsigned, .signed: kind = "an integer"
        case .float: kind = "a float"
        case .bool: kind = "a boolean"
        case .string: kind = "a string"
        case .array: kind = "an array"
        }
        return GGUFError(file: path, subject: "key \"\(key)\"", message: "expected \(expected), found \(kind)")
    }
}

/// Reads little-endian values from the mapping, never past its end.
struct ByteReader {
    let base: UnsafeRawPointer
    let length: Int
    let path: String
    var position = 0

    init(base: UnsafeRawPointer, length: Int, path: String) {
        self.base = base
        self.length = length
        self.path = path
    }

    var remaining: Int { length - position }

    func truncated(_ what: String) -> GGUFError {
        GGUFError(file: path, subject: nil, message: "truncated at byte \(position) while reading \(what)")
    }

    mutating func bytes(_ count: Int, _ what: String) throws -> [UInt8] {
        guard count <= remaining else { throw truncated(what) }
        let result = [UInt8](UnsafeRawBufferPointer(start: base + position, count: count))
        position += count
        return result
    }

    mutating func scalar<T: FixedWidthInteger>(_: T.Type, _ what: String) throws -> T {
        guard MemoryLayout<T>.size <= remaining else { throw truncated(what) }
        let value = T(littleEndian: base.loadUnaligned(fromByteOffset: position, as: T.self))
        position += MemoryLayout<T>.size
        return value
    }

    /// A 64-bit count of items each taking at least `atLeast` bytes: more than the bytes left can hold is an error.
    mutating func count(_ what: String, atLeast itemBytes: Int) throws -> Int {
        let value = try scalar(UInt64.self, what)
        guard value <= UInt64(remaining / itemBytes) else {
            throw GGUFError(
                file: path, subject: nil,
                message: "\(what) \(value) cannot fit in the \(remaining) bytes left after byte \(position)")
        }
        return Int(value)
    }

    mutating func string(_ what: String) throws -> String {
        let byteCount = try count("the length of \(what)", atLeast: 1)
        let start = base + position
        position += byteCount
        guard let text = String(validating: UnsafeRawBufferPointer(start: start, count: byteCount), as: UTF8.self)
        else {
            throw GGUFError(file: path, subject: nil, message: "\(what) at byte \(position - byteCount) is not UTF-8")
        }
        return text
    }

    /// A metadata value of GGUF type `type`; arrays nest at most 4 deep.
    mutating func value(type: UInt32, subject: String, depth: Int) throws -> GGUFValue {
        func fail(_ message: String) -> GGUFError { GGUFError(file: path, subject: subject, message: message) }
        switch type {
        case 0: return .unsigned(UInt64(try scalar(UInt8.self, subject)))
        case 1: return .signed(Int64(try scalar(Int8.self, subject)))
        case 2: return .unsigned(UInt64(try scalar(UInt16.self, subject)))
        case 3: return .signed(Int64(try scalar(Int16.self, subject)))
        case 4: return .unsigned(UInt64(try scalar(UInt32.self, subject)))
        case 5: return .signed(Int64(try scalar(Int32.self, subject)))
        case 6: return .float(Double(Float(bitPattern: try scalar(UInt32.self, subject))))
        case 7:
            let byte = try scalar(UInt8.self, subject)
            guard byte <= 1 else { throw fail("boolean byte is \(byte), not 0 or 1") }
            return .bool(byte == 1)
        case 8: return .string(try string(subject))
        case 9:
            guard depth < 4 else { throw fail("arrays nest more than 4 deep") }
            let elementType = try scalar(UInt32.self, "the element type of \(subject)")
            let elementBytes = [0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 8: 8, 9: 12, 10: 8, 11: 8, 12: 8]
            guard let smallest = elementBytes[Int(elementType)] else {
                throw fail("array element type \(elementType) is not a GGUF value type")
            }
            let count = try count("the length of \(subject)", atLeast: smallest)
            var elements: [GGUFValue] = []
            elements.reserveCapacity(count)
            for _ in 0..<count {
                elements.append(try value(type: elementType, subject: subject, depth: depth + 1))
            }
            return .array(elements)
        case 10: return .unsigned(try scalar(UInt64.self, subject))
        case 11: return .signed(try scalar(Int64.self, subject))
        case 12: return .float(Double(bitPattern: try scalar(UInt64.self, subject)))
        default: throw fail("value type \(type) is not a GGUF value type")
        }
    }
}
