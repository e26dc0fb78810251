import CKernels
import Foundation

/// The kernels a LLaMA-family decoder adds to `Ops`: RMS norm, rotary position embeddings and the SwiGLU gate,
/// each a forward and its backward (same conventions as `Ops`).
extension Ops {
    // MARK: RMS norm

    /// `y = x / sqrt(mean(x²) + eps) * weight` per row of width `d`; saves `rstd` (1 / the root) for backward.
    public static func rmsNormForward(
        x: UnsafePointer<Float>, weight: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
        rstd: UnsafeMutablePointer<Float>, n: Int, d: Int, eps: Float
    ) {
        parallelFor(n, minChunk: 32) { rows in
            for row in rows {
                let input = x + row * d
                let output = y + row * d
                var sumOfSquares: Float = 0
                for j in 0..<d { sumOfSquares += input[j] * input[j] }
                let inverseRoot = 1 / (sumOfSquares / Float(d) + eps).squareRoot()
                rstd[row] = inverseRoot
                for j in 0..<d { output[j] = input[j] * inverseRoot * weight[j] }
            }
        }
    }

    /// Backward of RMS norm: with x̂ = x·rstd and g = dy·weight, `dx = rstd · (g - x̂ · mean(g · x̂))` is written (or
    /// accumulated when `accumulateDx`); `dweight += Σ_rows dy · x̂` when given.
    public static func rmsNormBackward(
        dy: UnsafePointer<Float>, x: UnsafePointer<Float>, weight: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
        dx: UnsafeMutablePointer<Float>, dweight: UnsafeMutablePointer<Float>?, n: Int, d: Int,
        accumulateDx: Bool = false
    ) {
        parallelFor(n, minChunk: 32) { rows in
            for row in rows {
                let input = x + row * d
                let gradient = dy + row * d
                let output = dx + row * d
                let inverseRoot = rstd[row]
                var projection: Float = 0
                for j in 0..<d { projection += gradient[j] * weight[j] * input[j] * inverseRoot }
                projection /= Float(d)
                for j in 0..<d {
                    let normalised = input[j] * inverseRoot
                    let value = inverseRoot * (gradient[j] * weight[j] - normalised * projection)
                    output[j] = accumulateDx ? output[j] + value : value
                }
            }
        }
        if let dweight {
            for row in 0..<n {
                let input = x + row * d
                let gradient = dy + row * d
                for j in 0..<d { dweight[j] += gradient[j] * input[j] * rstd[row] }
            }
        }
    }

    // MARK: SwiGLU

    /// `y = silu(gate) · up` element-wise (LLaMA's MLP before its down projection; `y` may be `gate`), vectorised in C
    /// with its polynomial exp (2 ulp): 0.23 s of the SmolLM2 bench step with libm's expf, element by element.
    public static func swigluForward(
        gate: UnsafePointer<Float>, up: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, count: Int
    ) {
        parallelFor(count, minChunk: 16_384) { range in
            rw_swiglu_forward(gate + range.lowerBound, up + range.lowerBound, y + range.lowerBound, range.count)
        }
    }

    /// Backward of SwiGLU: `dgate = dy · up · σ(g)(1 + g(1 - σ(g)))` and `dup = dy · silu(g)`, both written;
    /// `dgate` may be `dy` itself.
    public static func swigluBackward(
        dy: UnsafePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>,
        dgate: UnsafeMutablePointer<Float>, dup: UnsafeMutablePointer<Float>, count: Int
    ) {
        parallelFor(count, minChunk: 16_384) { range in
            let start = range.lowerBound
            rw_swiglu_backward(dy + start, gate + start, up + start, dgate + start, dup + start, range.count)
        }
    }
}

/// Rotary position embeddings in Hugging Face's layout (`rotate_half`: dimension i of a head turns with
/// dimension i + headDim/2 by the angle position · base^(-2i/headDim)). A GGUF file stores the query and key
/// weights with each head's rows interleaved for llama.cpp's pairwise rotation; the model that loads one undoes
/// that (`unpermuteRows`) so that this single layout serves both.
public struct RotaryEmbedding: Sendable {
    public let headDim: Int
    public let base: Double
    /// `[positions, headDim/2]` cosines and sines.
    let cosines: [Float]
    let sines: [Float]
    public let maxPositions: Int

    public init(headDim: Int, base: Double, maxPositions: Int) {
        precondition(headDim % 2 == 0, "rotary embeddings need an even head width, got \(headDim)")
        self.headDim = headDim
        self.base = base
        self.maxPositions = maxPositions
        let half = headDim / 2
        // As transformers: inverse frequencies and angles in float32.
        let inverseFrequencies = (0..<half).map { Float(1 / pow(base, Double(2 * $0) / Double(headDim))) }
        var cosines = [Float](repeating: 0, count: maxPositions * half)
        var sines = [Float](repeating: 0, count: maxPositions * half)
        for position in 0..<maxPositions {
            for i in 0..<half {
                let angle = Float(position) * inverseFrequencies[i]
                cosines[position * half + i] = Float(cos(Double(angle)))
                sines[position * half + i] = Float(sin(Double(angle)))
            }
        }
        self.cosines = cosines
        self.sines = sines
    }

    /// Rotates, in place, every head of every row of `x` (`[rows, heads · headDim]`) by its row's position;
    /// `inverse` rotates back (the backward of the rotation, which is orthogonal).
    public func apply(
        _ x: UnsafeMutablePointer<Float>, positions: UnsafePointer<Int32>, rows: Int, heads: Int,
        inverse: Bool = false
    ) {
        let half = headDim / 2
        let sign: Float = inverse ? -1 : 1
        cosines.withUnsafeBufferPointer { cosineTable in
            sines.withUnsafeBufferPointer { sineTable in
                parallelFor(rows, minChunk: 16) { range in
                    for row in range {
                        let position = Int(positions[row])
                        let cosine = cosineTable.baseAddress! + position * half
                        let sine = sineTable.baseAddress! + position * half
                        for head in 0..<heads {
                            let vector = x + row * heads * headDim + head * headDim
                            for i in 0..<half {
                                let first = vector[i]
                                let second = vector[i + half]
                                vector[i] = first * cosine[i] - sign * second * sine[i]
                                vector[i + half] = second * cosine[i] + sign * first * sine[i]
                            }
                        }
                    }
                }
            }
        }
    }

    /// Hugging Face's row order of a query or key weight `[heads · headDim, columns]` from GGUF's (llama.cpp's
    /// converter writes, per head, row 2i from HF row i and row 2i+1 from HF row i + headDim/2).
    public static func unpermuteRows(_ weight: [Float], heads: Int, columns: Int) -> [Float] {
        permuteRows(weight, heads: heads, columns: columns, toGGUF: false)
    }

    /// GGUF's row order from Hugging Face's (the inverse of `unpermuteRows`), for writing GGUF files.
    public static func permuteRows(_ weight: [Float], heads: Int, columns: Int, toGGUF: Bool = true) -> [Float] {
        let rows = weight.count / columns
        let headDim = rows / heads
        let half = headDim / 2
        var output = [Float](repeating: 0, count: weight.count)
        for head in 0..<heads {
            for i in 0..<half {
                for (huggingFaceRow, ggufRow) in [(i, 2 * i), (i + half, 2 * i + 1)] {
                    let from = head * headDim + (toGGUF ? huggingFaceRow : ggufRow)
                    let to = head * headDim + (toGGUF ? ggufRow : huggingFaceRow)
                    for column in 0..<columns { output[to * columns + column] = weight[from * columns + column] }
                }
            }
        }
        return output
    }
}
