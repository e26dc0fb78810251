import Foundation
import Models
import RankwiseCore

/// An adapter's input dropout `x' = dropout(x)`, kept with its mask from the forward pass to the
/// backward pass: the step every adapter with PEFT's `lora_dropout` shares (LoRA, SVD, SoRA, Dynamic
/// LoRA, DoRA). When the pass is not training or p = 0, x' is x itself and nothing is stored.
public final class InputDropout {
    public let p: Float
    let inDim: Int
    private let xdBuf = Scratch(), maskBuf = Scratch()
    /// Whether the last forward pass dropped (training with p > 0).
    public private(set) var isOn = false

    public init(p: Float, inDim: Int) {
        self.p = p
        self.inDim = inDim
    }

    /// x' for `n` rows of `x`.
    public func forward(_ x: UnsafePointer<Float>, n: Int, training: Bool, seed: UInt64) -> UnsafePointer<Float> {
        isOn = training && p > 0
        guard isOn else { return x }
        let xd = xdBuf.get(n * inDim)
        let mask = maskBuf.get(n * inDim)
        Ops.dropoutForward(x: x, y: xd, mask: mask, count: n * inDim, p: p, seed: seed)
        return UnsafePointer(xd)
    }

    /// The x' of the last forward pass (`x` is the layer's input, x' itself when nothing was dropped).
    public func saved(_ x: UnsafePointer<Float>, n: Int) -> UnsafePointer<Float> {
        isOn ? UnsafePointer(xdBuf.get(n * inDim)) : x
    }

    /// dx += (du A) ⊙ mask, the input gradient through u = x' Aᵀ, for du `[n, r]` and A `[r, in]`. Reuses
    /// x''s buffer, so it comes after the last use of `saved`.
    public func addInputGradient(
        du: UnsafePointer<Float>, a: UnsafePointer<Float>, n: Int, r: Int, dx: UnsafeMutablePointer<Float>
    ) {
        guard isOn else {
            return BLAS.sgemm(m: n, n: inDim, k: r, a: du, lda: r, b: a, ldb: inDim, beta: 1, c: dx, ldc: inDim)
        }
        let tmp = xdBuf.get(n * inDim)
        let mask = maskBuf.get(n * inDim)
        BLAS.sgemm(m: n, n: inDim, k: r, a: du, lda: r, b: a, ldb: inDim, c: tmp, ldc: inDim)
        for i in 0..<(n * inDim) { dx[i] += tmp[i] * mask[i] }
    }

    /// dx += g ⊙ mask for a gradient `g` `[n, in]` with respect to x'.
    public func addMasked(_ g: UnsafePointer<Float>, n: Int, dx: UnsafeMutablePointer<Float>) {
        if isOn {
            let mask = maskBuf.get(n * inDim)
            for i in 0..<(n * inDim) { dx[i] += g[i] * mask[i] }
        } else {
            for i in 0..<(n * inDim) { dx[i] += g[i] }
        }
    }
}
