import CKernels
import Foundation

/// Forward and backward kernels on contiguous Float32 memory.
///
/// Conventions: row-major; `n` rows of width `d`; a backward kernel *accumulates* into parameter
/// gradients (`+=`) and *writes* (`=`) input gradients unless its doc says otherwise. Linear weights
/// use the PyTorch layout `[out, in]`.
public enum Ops {
    // MARK: Linear

    /// `y[n, out] = x[n, in] · Wᵀ + b`.
    public static func linearForward(
        x: UnsafePointer<Float>, w: UnsafePointer<Float>, b: UnsafePointer<Float>?,
        y: UnsafeMutablePointer<Float>, n: Int, inDim: Int, outDim: Int
    ) {
        if let b {
            parallelFor(n, minChunk: 64) { r in
                for i in r { (y + i * outDim).update(from: b, count: outDim) }
            }
            BLAS.sgemm(
                transB: true, m: n, n: outDim, k: inDim, a: x, lda: inDim, b: w, ldb: inDim, beta: 1, c: y, ldc: outDim)
        } else {
            BLAS.sgemm(
                transB: true, m: n, n: outDim, k: inDim, a: x, lda: inDim, b: w, ldb: inDim, beta: 0, c: y, ldc: outDim)
        }
    }

    /// Backward of `linearForward`. `dx` is written (or accumulated when `accumulateDx`), `dw` and
    /// `db` are accumulated. Pass nil for gradients that are not needed.
    public static func linearBackward(
        dy: UnsafePointer<Float>, x: UnsafePointer<Float>, w: UnsafePointer<Float>,
        dx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>?, db: UnsafeMutablePointer<Float>?,
        n: Int, inDim: Int, outDim: Int, accumulateDx: Bool = false
    ) {
        if let dx {
            BLAS.sgemm(
                m: n, n: inDim, k: outDim, a: dy, lda: outDim, b: w, ldb: inDim,
                beta: accumulateDx ? 1 : 0, c: dx, ldc: inDim)
        }
        if let dw {
            BLAS.sgemm(
                transA: true, m: outDim, n: inDim, k: n, a: dy, lda: outDim, b: x, ldb: inDim,
                beta: 1, c: dw, ldc: inDim)
        }
        if let db { sumRows(dy, into: db, n: n, d: outDim) }
    }

    /// `out[d] += Σ_i x[i, d]`.
    public static func sumRows(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, n: Int, d: Int) {
        for i in 0..<n {
            let row = x + i * d
            for j in 0..<d { out[j] += row[j] }
        }
    }

    /// `y[i, :] += b`.
    public static func addBias(_ y: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, n: Int, d: Int) {
        parallelFor(n, minChunk: 64) { r in
            for i in r {
                let row = y + i * d
                for j in 0..<d { row[j] += b[j] }
            }
        }
    }

    /// `y = a + b` (element-wise; `y` may alias either input).
    public static func add(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int
    ) {
        parallelFor(count, minChunk: 1 << 15) { r in
            for i in r { y[i] = a[i] + b[i] }
        }
    }

    // MARK: Activations

    @usableFromInline static let invSqrt2: Float = 0.707_106_781_186_547_5
    @usableFromInline static let invSqrt2Pi: Float = 0.398_942_280_401_432_7

    /// Exact GELU, `0.5 x (1 + erf(x / √2))`, as PyTorch's default `gelu`.
    public static func geluForward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        parallelFor(count, minChunk: 1 << 14) { r in rw_gelu_forward(x + r.lowerBound, y + r.lowerBound, r.count) }
    }

    /// `dx = dy · gelu'(x)` (written).
    public static func geluBackward(
        x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, count: Int
    ) {
        parallelFor(count, minChunk: 1 << 14) { r in
            rw_gelu_backward(x + r.lowerBound, dy + r.lowerBound, dx + r.lowerBound, r.count)
        }
    }

    public static func tanhForward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { y[i] = tanhf(x[i]) }
    }

    /// `dx = dy (1 - y²)` from the forward *output* `y` (written).
    public static func tanhBackward(
        y: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, count: Int
    ) {
        for i in 0..<count { dx[i] = dy[i] * (1 - y[i] * y[i]) }
    }

    // MARK: Softmax

    /// Row softmax in place over rows of width `d`. `keyMask` (1 keep, 0 drop), when given, has one
    /// entry per column for each group of `rowsPerMask` consecutive rows; dropped columns get exactly 0,
    /// as adding float32's most negative value does in Hugging Face's BERT.
    public static func softmaxForward(
        _ x: UnsafeMutablePointer<Float>, rows: Int, d: Int,
        keyMask: UnsafePointer<Float>? = nil, rowsPerMask: Int = 1
    ) {
        parallelFor(rows, minChunk: 32) { r in
            for i in r {
                softmaxRows(x + i * d, rows: 1, d: d, keyMask: keyMask.map { $0 + (i / rowsPerMask) * d })
            }
        }
    }

    /// Serial softmax over `rows` rows sharing one key mask (or none).
    @inline(__always)
    public static func softmaxRows(
        _ x: UnsafeMutablePointer<Float>, rows: Int, d: Int, keyMask m: UnsafePointer<Float>?
    ) {
        rw_softmax_rows(x, rows, d, m)
    }

    /// `dx = p ⊙ (dp - Σ dp ⊙ p)` per row; `dx` may alias `dp`.
    public static func softmaxBackward(
        p: UnsafePointer<Float>, dp: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, rows: Int, d: Int
    ) {
        parallelFor(rows, minChunk: 32) { r in
            softmaxBackwardRows(
                p: p + r.lowerBound * d, dp: dp + r.lowerBound * d, dx: dx + r.lowerBound * d, rows: r.count, d: d)
        }
    }

    @inline(__always)
    public static func softmaxBackwardRows(
        p: UnsafePointer<Float>, dp: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, rows: Int, d: Int
    ) {
        rw_softmax_backward_rows(p, dp, dx, rows, d)
    }

    // MARK: Layer norm

    /// `y = (x - mean) / sqrt(var + eps) * gamma + beta` per row; saves `mean` and `rstd` for backward.
    public static func layerNormForward(
        x: UnsafePointer<Float>, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
        y: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>,
        n: Int, d: Int, eps: Float
    ) {
        parallelFor(n, minChunk: 32) { r in
            let o = r.lowerBound
            rw_layernorm_forward(x + o * d, gamma, beta, y + o * d, mean + o, rstd + o, r.count, d, eps)
        }
    }

    /// Backward of layer norm. `dx` is written (or accumulated when `accumulateDx`); `dgamma`, `dbeta`
    /// are accumulated when given.
    public static func layerNormBackward(
        dy: UnsafePointer<Float>, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
        mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
        dx: UnsafeMutablePointer<Float>, dgamma: UnsafeMutablePointer<Float>?, dbeta: UnsafeMutablePointer<Float>?,
        n: Int, d: Int, accumulateDx: Bool = false
    ) {
        parallelFor(n, minChunk: 32) { r in
            let o = r.lowerBound
            rw_layernorm_backward(
                dy + o * d, x + o * d, gamma, mean + o, rstd + o, dx + o * d, r.count, d, accumulateDx ? 1 : 0)
        }
        if dgamma != nil || dbeta != nil {
            rw_layernorm_param_grads(dy, x, mean, rstd, dgamma, dbeta, n, d)
        }
    }

    // MARK: Embedding

    /// `y[t, :] = table[ids[t], :]`. Ids must be in range (checked by the caller).
    public static func embeddingForward(
        ids: UnsafePointer<Int32>, table: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, n: Int, d: Int
    ) {
        for t in 0..<n { (y + t * d).update(from: table + Int(ids[t]) * d, count: d) }
    }

    /// `dtable[ids[t], :] += dy[t, :]`.
    public static func embeddingBackward(
        ids: UnsafePointer<Int32>, dy: UnsafePointer<Float>, dtable: UnsafeMutablePointer<Float>, n: Int, d: Int
    ) {
        for t in 0..<n {
            let row = dtable + Int(ids[t]) * d
            let g = dy + t * d
            for j in 0..<d { row[j] += g[j] }
        }
    }

    // MARK: Dropout

    /// `dx = dy ⊙ mask` (written; may alias `dy`).
    public static func dropoutBackward(
        dy: UnsafePointer<Float>, mask: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, count: Int
    ) {
        for i in 0..<count { dx[i] = dy[i] * mask[i] }
    }

    // MARK: Losses

    /// Mean cross-entropy over rows whose label is not `ignoreIndex` (-100, as PyTorch).
    /// Writes `dlogits` (gradient of the mean loss) and `rowLoss` (each row's loss, 0 for ignored rows)
    /// when given. Returns the loss (0 when no row counts).
    @discardableResult
    public static func crossEntropy(
        logits: UnsafePointer<Float>, labels: UnsafePointer<Int32>, n: Int, classes c: Int,
        dlogits: UnsafeMutablePointer<Float>?, rowLoss: UnsafeMutablePointer<Float>? = nil, ignoreIndex: Int32 = -100
    ) -> Float {
        var valid = 0
        for i in 0..<n where labels[i] != ignoreIndex { valid += 1 }
        var total: Double = 0
        for i in 0..<n {
            let row = logits + i * c
            let label = labels[i]
            if label == ignoreIndex {
                if let dlogits { (dlogits + i * c).update(repeating: 0, count: c) }
                rowLoss?[i] = 0
                continue
            }
            var mx = -Float.infinity
            for j in 0..<c { mx = max(mx, row[j]) }
            var s: Double = 0
            for j in 0..<c { s += Double(expf(row[j] - mx)) }
            let lse = Double(mx) + log(s)
            total += lse - Double(row[Int(label)])
            rowLoss?[i] = Float(lse - Double(row[Int(label)]))
            if let dlogits {
                let g = dlogits + i * c
                for j in 0..<c {
                    let p = Float(exp(Double(row[j]) - lse))
                    g[j] = (p - (j == Int(label) ? 1 : 0)) / Float(valid)
                }
            }
        }
        return valid == 0 ? 0 : Float(total / Double(valid))
    }

    /// Mean squared error `mean((x - y)²)`; writes `dx` and each element's `(x - y)²` to `rowLoss` when given.
    @discardableResult
    public static func mse(
        x: UnsafePointer<Float>, target: UnsafePointer<Float>, count: Int, dx: UnsafeMutablePointer<Float>?,
        rowLoss: UnsafeMutablePointer<Float>? = nil
    ) -> Float {
        var total: Double = 0
        for i in 0..<count {
            let d = x[i] - target[i]
            total += Double(d * d)
            rowLoss?[i] = d * d
            dx?[i] = 2 * d / Float(count)
        }
        return Float(total / Double(count))
    }
}

// MARK: Matmul

extension Ops {
    /// One operand of a (batched, strided) matrix product: `batch` matrices of `rows x cols` stored
    /// row-major with leading dimension `ld`, each `stride` floats after the previous one.
    public struct MatrixView {
        public var rows: Int, cols: Int, ld: Int, stride: Int
        public init(rows: Int, cols: Int, ld: Int? = nil, stride: Int = 0) {
            self.rows = rows
            self.cols = cols
            self.ld = ld ?? cols
            self.stride = stride
        }
    }

    /// `C[i] = A[i] · B[i]` for `i < batch` (BLAS sgemm per matrix). Strides and leading dimensions
    /// let attention heads be addressed inside `[B, T, H]` activations without copies.
    public static func batchedMatmul(
        _ a: UnsafePointer<Float>, _ av: MatrixView, _ b: UnsafePointer<Float>, _ bv: MatrixView,
        _ c: UnsafeMutablePointer<Float>, _ cv: MatrixView, batch: Int, alpha: Float = 1, beta: Float = 0
    ) {
        precondition(
            av.cols == bv.rows && cv.rows == av.rows && cv.cols == bv.cols, "batchedMatmul: shapes do not chain")
        for i in 0..<batch {
            BLAS.sgemm(
                m: av.rows, n: bv.cols, k: av.cols, alpha: alpha, a: a + i * av.stride, lda: av.ld,
                b: b + i * bv.stride, ldb: bv.ld, beta: beta, c: c + i * cv.stride, ldc: cv.ld)
        }
    }

    /// Backward of `batchedMatmul`: `dA[i] += dC[i] · B[i]ᵀ`, `dB[i] += A[i]ᵀ · dC[i]` (either may be nil).
    public static func batchedMatmulBackward(
        dc: UnsafePointer<Float>, _ cv: MatrixView, a: UnsafePointer<Float>, _ av: MatrixView, b: UnsafePointer<Float>,
        _ bv: MatrixView,
        da: UnsafeMutablePointer<Float>?, db: UnsafeMutablePointer<Float>?, batch: Int, alpha: Float = 1
    ) {
        for i in 0..<batch {
            if let da {
                BLAS.sgemm(
                    transB: true, m: av.rows, n: av.cols, k: cv.cols, alpha: alpha, a: dc + i * cv.stride, lda: cv.ld,
                    b: b + i * bv.stride, ldb: bv.ld, beta: 1, c: da + i * av.stride, ldc: av.ld)
            }
            if let db {
                BLAS.sgemm(
                    transA: true, m: bv.rows, n: bv.cols, k: av.rows, alpha: alpha, a: a + i * av.stride, lda: av.ld,
                    b: dc + i * cv.stride, ldb: cv.ld, beta: 1, c: db + i * bv.stride, ldc: bv.ld)
            }
        }
    }
}
