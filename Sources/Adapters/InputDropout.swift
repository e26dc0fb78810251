import CKernels
import Foundation
import Models
import RankwiseCore

/// An adapter's input dropout `x' = dropout(x)` from the forward pass to the backward pass: the step every adapter
/// with PEFT's `lora_dropout` shares (LoRA, SVD, SoRA, Dynamic LoRA, DoRA). Only the mask is kept, one bit an
/// element (a float copy of x' and a float mask for each of a decoder's 210 adapters would outweigh its
/// activations); x' is rebuilt from the layer input in backward, into a buffer each thread shares among its adapters.
/// When the pass is not training or p = 0, x' is x itself and nothing is stored.
public final class InputDropout {
    public let p: Float
    let inDim: Int
    /// Bit `i` of the last forward: element `i` was kept.
    private var keptBits: [UInt64] = []
    /// Each row's stream seed in the last forward.
    private var rowSeeds: [UInt64] = []
    /// Whether the last forward pass dropped (training with p > 0).
    public private(set) var isOn = false

    public init(p: Float, inDim: Int) {
        self.p = p
        self.inDim = inDim
    }

    private var scale: Float { p >= 1 ? 0 : 1 / (1 - p) }

    /// The calling thread's buffer for x' and input gradients, shared by every adapter that runs on the thread (an
    /// adapter uses it between two of its own calls only).
    private static func threadBuffer(_ count: Int) -> UnsafeMutablePointer<Float> {
        let key = "rankwise.input-dropout"
        let scratch: Scratch
        if let existing = Thread.current.threadDictionary[key] as? Scratch {
            scratch = existing
        } else {
            scratch = Scratch()
            Thread.current.threadDictionary[key] = scratch
        }
        return scratch.get(count)
    }

    /// x' for `n` rows of `x`: row r's mask is drawn from `rowKeys[r]` (`DropoutKeys`; nil: the row's index), the
    /// draws `Ops.dropoutRowsForward` makes. The pointer is valid until the next call of any adapter's dropout on
    /// this thread.
    public func forward(
        _ x: UnsafePointer<Float>, n: Int, training: Bool, seed: UInt64, rowKeys: UnsafePointer<UInt64>? = nil
    ) -> UnsafePointer<Float> {
        isOn = training && p > 0
        guard isOn else { return x }
        let count = n * inDim
        let words = (count + 63) / 64
        if keptBits.count < words { keptBits = [UInt64](repeating: 0, count: words) }
        if rowSeeds.count < n { rowSeeds = [UInt64](repeating: 0, count: n) }
        for row in 0..<n {
            rowSeeds[row] = DropoutKeys.rowSeed(seed, key: rowKeys?[row] ?? UInt64(row))
        }
        let dropped = Self.threadBuffer(count)
        let scale = scale
        let threshold = UInt32((Double(p) * 16_777_216).rounded(.up))
        // Chunks of rows that start on a 64-element boundary, so that no two chunks share a word of bits.
        let rowsPerWordBoundary = 64 / Self.greatestCommonDivisor(inDim, 64)
        let groups = (n + rowsPerWordBoundary - 1) / rowsPerWordBoundary
        keptBits.withUnsafeMutableBufferPointer { bits in
            rowSeeds.withUnsafeBufferPointer { seeds in
                let bitsBase = bits.baseAddress!
                let seedsBase = seeds.baseAddress!
                parallelFor(groups, minChunk: Swift.max(1, 16_384 / (inDim * rowsPerWordBoundary))) { range in
                    let firstRow = range.lowerBound * rowsPerWordBoundary
                    let endRow = Swift.min(n, range.upperBound * rowsPerWordBoundary)
                    rw_dropout_draw_rows(
                        x, dropped, bitsBase, firstRow, endRow, inDim, seedsBase, threshold, scale)
                }
            }
        }
        return UnsafePointer(dropped)
    }

    static func greatestCommonDivisor(_ a: Int, _ b: Int) -> Int { b == 0 ? a : greatestCommonDivisor(b, a % b) }

    /// The x' of the last forward pass, rebuilt from `x` (the layer's input, unchanged since): x itself when nothing
    /// was dropped. Valid until the next dropout call on this thread.
    public func saved(_ x: UnsafePointer<Float>, n: Int) -> UnsafePointer<Float> {
        guard isOn else { return x }
        let count = n * inDim
        let dropped = Self.threadBuffer(count)
        let scale = scale
        keptBits.withUnsafeBufferPointer { bits in
            let bitsBase = bits.baseAddress!
            parallelFor(count, minChunk: 32_768) { range in
                rw_dropout_apply(x, dropped, bitsBase, range.lowerBound, range.upperBound, scale)
            }
        }
        return UnsafePointer(dropped)
    }

    /// dx += (du A) ⊙ mask, the input gradient through u = x' Aᵀ, for du `[n, r]` and A `[r, in]`. Reuses the
    /// thread's x' buffer, so it comes after the last use of `saved`.
    public func addInputGradient(
        du: UnsafePointer<Float>, a: UnsafePointer<Float>, n: Int, r: Int, dx: UnsafeMutablePointer<Float>
    ) {
        guard isOn else {
            return BLAS.sgemm(m: n, n: inDim, k: r, a: du, lda: r, b: a, ldb: inDim, beta: 1, c: dx, ldc: inDim)
        }
        let product = Self.threadBuffer(n * inDim)
        BLAS.sgemm(m: n, n: inDim, k: r, a: du, lda: r, b: a, ldb: inDim, c: product, ldc: inDim)
        addMasked(product, n: n, dx: dx)
    }

    /// dx += g ⊙ mask for a gradient `g` `[n, in]` with respect to x'.
    public func addMasked(_ g: UnsafePointer<Float>, n: Int, dx: UnsafeMutablePointer<Float>) {
        let count = n * inDim
        guard isOn else {
            for i in 0..<count { dx[i] += g[i] }
            return
        }
        let scale = scale
        keptBits.withUnsafeBufferPointer { bits in
            let bitsBase = bits.baseAddress!
            parallelFor(count, minChunk: 32_768) { range in
                rw_dropout_add_masked(g, dx, bitsBase, range.lowerBound, range.upperBound, scale)
            }
        }
    }
}
