import Foundation

/// Writes GGUF version 3 files: metadata, then float32 tensors, each aligned to 32 bytes (`general.alignment`'s
/// default). Shapes are given row-major, outermost first (`[out, in]`), and stored as GGUF's `ne`, innermost first.
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
    }

    public private(set) var metadata: [(key: String, value: Value)] = []
    public private(set) var tensors: [(name: String, shape: [Int], values: [Float])] = []
    public static let alignment = 32

    public init() {}

    public mutating func add(_ key: String, _ value: Value) { metadata.append((key, value)) }

    /// Adds a float32 tensor; `values` holds the product of `shape` elements.
    public mutating func addTensor(_ name: String, shape: [Int], values: [Float]) {
        precondition(shape.reduce(1, *) == values.count, "\(name): \(values.count) values for shape \(shape)")
        tensors.append((name, shape, values))
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
            string(key)
            switch value {
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
        func aligned(_ offset: Int) -> Int { (offset + Self.alignment - 1) / Self.alignment * Self.alignment }
        var offset = 0
        for tensor in tensors {
            string(tensor.name)
            integer(UInt32(tensor.shape.count))
            for dimension in tensor.shape.reversed() { integer(UInt64(dimension)) }
            integer(UInt32(0))  // GGML_TYPE_F32
            integer(UInt64(offset))
            offset = aligned(offset + tensor.values.count * 4)
        }
        out.append(contentsOf: [UInt8](repeating: 0, count: aligned(out.count) - out.count))
        let dataStart = out.count
        for tensor in tensors {
            out.append(
                contentsOf: [UInt8](repeating: 0, count: aligned(out.count - dataStart) - (out.count - dataStart)))
            tensor.values.withUnsafeBytes { out.append(contentsOf: $0) }
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
