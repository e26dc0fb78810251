import CKernels
import GGUF
import RankwiseCore

/// A frozen weight `[rows, columns]` kept as the GGUF file's ggml blocks (in its memory mapping), multiplied by a
/// vector with each block dequantised inside the dot product, as llama.cpp does: decoding reads the file's bytes
/// (Q4_1: 0.625 bytes a weight) instead of float32 (4 bytes). Query and key weights are stored in GGUF's row order;
/// `headsToUnpermute` puts the product back in Hugging Face's order.
public final class QuantizedMatrix {
    let file: GGUFFile
    let blocks: UnsafeRawPointer
    public let type: GGMLType
    public let rows: Int
    public let columns: Int
    let headsToUnpermute: Int?
    private var permuted: [Float]

    /// The types with a fused kernel.
    public static let supportedTypes: Set<GGMLType> = [.q4_0, .q4_1, .q8_0]

    /// The tensor `name` of `file` when its type has a kernel, else nil.
    public init?(file: GGUFFile, tensor name: String, headsToUnpermute: Int? = nil) throws {
        let info = try file.info(name)
        guard Self.supportedTypes.contains(info.type), info.dimensions.count == 2 else { return nil }
        self.file = file
        blocks = try file.bytes(name).baseAddress!
        type = info.type
        rows = info.shape[0]
        columns = info.shape[1]
        self.headsToUnpermute = headsToUnpermute
        permuted = headsToUnpermute == nil ? [] : [Float](repeating: 0, count: info.shape[0])
    }

    /// `y[rows] = W · x[columns]`, the rows split over the worker threads.
    public func multiply(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        let rowBytes = columns / type.blockSize * type.blockBytes
        func run(_ output: UnsafeMutablePointer<Float>) {
            parallelFor(rows, minChunk: 64) { range in
                let weights = (blocks + range.lowerBound * rowBytes).assumingMemoryBound(to: UInt8.self)
                let target = output + range.lowerBound
                switch type {
                case .q4_1: rw_q4_1_matvec(weights, x, target, range.count, columns)
                case .q4_0: rw_q4_0_matvec(weights, x, target, range.count, columns)
                default: rw_q8_0_matvec(weights, x, target, range.count, columns)
                }
            }
        }
        guard let heads = headsToUnpermute else {
            run(y)
            return
        }
        permuted.withUnsafeMutableBufferPointer { buffer in
            run(buffer.baseAddress!)
            let headDim = rows / heads
            let half = headDim / 2
            for head in 0..<heads {
                for i in 0..<half {
                    y[head * headDim + i] = buffer[head * headDim + 2 * i]
                    y[head * headDim + i + half] = buffer[head * headDim + 2 * i + 1]
                }
            }
        }
    }
}
