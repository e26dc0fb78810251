import Foundation

/// Writes GGUF version 3 files: metadata, then tensors (float32, F16 or Q8_0), each aligned to `alignment` bytes.
/// Shapes are given row-major, outermost first (`[out, in]`), and stored as GGUF's `ne`, innermost first.
/// The file appears whole or not at all (written beside it, then renamed).
public struct GGUFWriter {
    /// A metadata value of a type llama.cpp reads.
    public enum Value {
        case string(String)
        case float32(Float)
        case uint32(UInt32)
        case int32(Int32)
        case bool(Bool)
        case strings([String])
        /// A whole entry copied from another file (`GGUFFile.rawEntries`): its key, type and value bytes.
        case raw([UInt8])
    }

    public private(set) var metadata: [(key: String, value: Value)] = []
    public private(set) var tensors: [(name: String, shape: [Int], type: GGMLType, bytes: [UInt8])] = []
    /// The data section's alignment (32, GGUF's default; a copied `general.alignment` must match it).
    public var alignment = 32

    public init() {}

    public mutating func add(_ key: String, _ value: Value) { metadata.append((key, value)) }

    /// Adds a float32 tensor; `values` holds the product of `shape` elements.
    public mutating func addTensor(_ name: String, shape: [Int], values: [Float]) {
        precondition(shape.reduce(1, *) == values.count, "\(name): \(values.count) values for shape \(shape)")
        addTensor(name, shape: shape, type: .f32, bytes: values.withUnsafeBytes { Array($0) })
    }

    /// Adds a tensor already encoded as `type` (`GGMLType.encode`).
    public mutating func addTensor(_ name: String, shape: [Int], type: GGMLType, bytes: [UInt8]) {
        let count = shape.reduce(1, *)
        precondition(shape.last! % type.blockSize == 0 && bytes.count == count / type.blockSize * type.blockBytes)
        tensors.append((name, shape, type, bytes))
    }

    /// The file's bytes.
    public func bytes() -> Data {
        var out = Data()
        func integer<T: FixedWidthInteger>(_ value: T) {
            withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
        }
        func string(_ text: String) {
            integer(UInt64(text.utf8.count))
            out.append(contentsOf: Array(text.utf8))
        }
        out.append(contentsOf: Array("GGUF".utf8))
        integer(UInt32(3))
        integer(UInt64(tensors.count))
        integer(UInt64(metadata.count))
        for (key, value) in metadata {
            if case .raw(let entry) = value {
                out.append(contentsOf: entry)
                continue
            }
            string(key)
            switch value {
            case .raw: break
            case .string(let text):
                integer(UInt32(8))
                string(text)
            case .float32(let number):
                integer(UInt32(6))
                integer(number.bitPattern)
            case .uint32(let number):
                integer(UInt32(4))
                integer(number)
            case .int32(let number):
                integer(UInt32(5))
                integer(number)
            case .bool(let flag):
                integer(UInt32(7))
                out.append(flag ? 1 : 0)
            case .strings(let texts):
                integer(UInt32(9))
                integer(UInt32(8))
                integer(UInt64(texts.count))
                for text in texts { string(text) }
            }
        }
        func aligned(_ offset: Int) -> Int { (offset + alignment - 1) / alignment * alignment }
        var offset = 0
        for tensor in tensors {
            string(tensor.name)
            integer(UInt32(tensor.shape.count))
            for dimension in tensor.shape.reversed() { integer(UInt64(dimension)) }
            integer(tensor.type.rawValue)
            integer(UInt64(offset))
            offset = aligned(offset + tensor.bytes.count)
        }
        out.append(contentsOf: [UInt8](repeating: 0, count: aligned(out.count) - out.count))
        let dataStart = out.count
        for tensor in tensors {
            out.append(
                contentsOf: [UInt8](repeating: 0, count: aligned(out.count - dataStart) - (out.count - dataStart)))
            out.append(contentsOf: tensor.bytes)
        }
        return out
    }

    /// Writes the file atomically.
    public func write(to path: String) throws {
        let temporary = path + ".partial-\(getpid())"
        do {
            try bytes().write(to: URL(fileURLWithPath: temporary))
        } catch {
            throw GGUFError(file: path, subject: nil, message: "cannot write (\(error.localizedDescription))")
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: temporary)
            throw GGUFError(file: path, subject: nil, message: "cannot write (\(reason))")
        }
    }
}
