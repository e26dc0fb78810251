/// Multi-head scaled dot-product attention on `[B, T, heads·headDim]` activations, without
/// permuting: each head is a strided view (leading dimension = hidden size) handed to BLAS.
public enum Attention {
    /// `probs[B, heads, T, T] = softmax(scale · Q Kᵀ + mask)`, `ctx[B, T, H] = probs · V`.
    /// `keyMask` is `[B, T]` with 1 for real tokens and 0 for padding.
    public static func forward(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
        keyMask: UnsafePointer<Float>?, probs: UnsafeMutablePointer<Float>, ctx: UnsafeMutablePointer<Float>,
        batch: Int, seq: Int, heads: Int, headDim: Int,
        dropout: (p: Float, seed: UInt64, mask: UnsafeMutablePointer<Float>, dropped: UnsafeMutablePointer<Float>)? = nil
    ) {
        let h = heads * headDim, tt = seq * seq
        let scale = 1 / Float(headDim).squareRoot()
        // Each (row, head) pair is independent: split them over the cores, one BLAS thread each.
        BLAS.singleThreaded {
            parallelFor(batch * heads, minChunk: 4) { range in
                for bh in range {
                    let b = bh / heads, hd = bh % heads
                    let off = b * seq * h + hd * headDim
                    let p = probs + bh * tt
                    BLAS.sgemm(transB: true, m: seq, n: seq, k: headDim, alpha: scale, a: q + off, lda: h,
                               b: k + off, ldb: h, c: p, ldc: seq)
                    Ops.softmaxRows(p, rows: seq, d: seq, keyMask: keyMask.map { $0 + b * seq })
                    var used = UnsafePointer(p)
                    if let dropout {
                        Ops.dropoutForward(x: p, y: dropout.dropped + bh * tt, mask: dropout.mask + bh * tt, count: tt, p: dropout.p,
                                           seed: dropout.seed &+ UInt64(bh) &* 0x9E37_79B9)
                        used = UnsafePointer(dropout.dropped + bh * tt)
                    }
                    BLAS.sgemm(m: seq, n: headDim, k: seq, a: used, lda: seq, b: v + off, ldb: h, c: ctx + off, ldc: h)
                }
            }
        }
    }

    /// Backward (with the same dropout mask and dropped probabilities as forward, if any): writes `dq`, `dk`, `dv` (`[B, T, H]`) from `dctx`; `scratch` holds `B·heads·T·T` floats.
    public static func backward(
        dctx: UnsafePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
        probs: UnsafePointer<Float>, dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>,
        dv: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>,
        batch: Int, seq: Int, heads: Int, headDim: Int,
        dropout: (mask: UnsafePointer<Float>, dropped: UnsafePointer<Float>)? = nil
    ) {
        let h = heads * headDim, tt = seq * seq
        let scale = 1 / Float(headDim).squareRoot()
        let used = dropout?.dropped ?? probs
        BLAS.singleThreaded {
            parallelFor(batch * heads, minChunk: 4) { range in
                for bh in range {
                    let b = bh / heads, hd = bh % heads
                    let off = b * seq * h + hd * headDim
                    let p = used + bh * tt, dp = scratch + bh * tt
                    // dP = dctx · Vᵀ ; dV = Pᵀ · dctx
                    BLAS.sgemm(transB: true, m: seq, n: seq, k: headDim, a: dctx + off, lda: h, b: v + off, ldb: h, c: dp, ldc: seq)
                    BLAS.sgemm(transA: true, m: seq, n: headDim, k: seq, a: p, lda: seq, b: dctx + off, ldb: h, c: dv + off, ldc: h)
                    if let dropout { Ops.dropoutBackward(dy: dp, mask: dropout.mask + bh * tt, dx: dp, count: tt) }
                    Ops.softmaxBackwardRows(p: probs + bh * tt, dp: dp, dx: dp, rows: seq, d: seq)
                    // dQ = scale · dS · K ; dK = scale · dSᵀ · Q
                    BLAS.sgemm(m: seq, n: headDim, k: seq, alpha: scale, a: dp, lda: seq, b: k + off, ldb: h, c: dq + off, ldc: h)
                    BLAS.sgemm(transA: true, m: seq, n: headDim, k: seq, alpha: scale, a: dp, lda: seq, b: q + off, ldb: h, c: dk + off, ldc: h)
                }
            }
        }
    }
}
