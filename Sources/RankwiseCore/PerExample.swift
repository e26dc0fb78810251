/// Per-example gradient norms without materialising per-example gradients (for TsqLoRA's quality
/// scores). A linear map's weight gradient over a batch is Σ_t dy_t x_tᵀ; the part that comes from one
/// sequence (its rows in a `SequenceLayout`) has squared Frobenius norm
///
///     ‖Σ_t dy_t x_tᵀ‖² = Σ_t Σ_s (dy_t · dy_s)(x_t · x_s)
///
/// which two Gram matrices of the sequence's rows give in O(L²·(in + out)). When the sequence is long
/// next to the layer (L·(in + out) > in·out), forming its gradient `dYᵀ X` (out × in) is cheaper; both
/// are exact and the cheaper one is used.
public enum PerExample {
    /// Adds each sequence's squared gradient norm of the map `x → y` (`x: [tokens, inDim]`,
    /// `dy: [tokens, outDim]`, rows as `layout` places them; padding rows must hold zero `dy`) to
    /// `normSquared[b]`. `scratch` holds `max(2·L², outDim·inDim)` floats for the longest L.
    public static func addGradNormSquared(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, outDim: Int, inDim: Int,
                                          layout: SequenceLayout, scratch: UnsafeMutablePointer<Float>, into normSquared: inout [Float]) {
        for b in 0..<layout.count {
            let L = layout.lengths[b]
            if L == 0 { continue }
            let xs = x + layout.starts[b] * inDim, ds = dy + layout.starts[b] * outDim
            var sum: Float = 0
            if L * (inDim + outDim) <= inDim * outDim {
                let gx = scratch, gd = scratch + L * L
                BLAS.sgemm(transB: true, m: L, n: L, k: inDim, a: xs, lda: inDim, b: xs, ldb: inDim, c: gx, ldc: L)
                BLAS.sgemm(transB: true, m: L, n: L, k: outDim, a: ds, lda: outDim, b: ds, ldb: outDim, c: gd, ldc: L)
                for i in 0..<(L * L) { sum += gx[i] * gd[i] }
            } else {
                BLAS.sgemm(transA: true, m: outDim, n: inDim, k: L, a: ds, lda: outDim, b: xs, ldb: inDim, c: scratch, ldc: inDim)
                for i in 0..<(outDim * inDim) { sum += scratch[i] * scratch[i] }
            }
            normSquared[b] += sum
        }
    }

    /// Floats of scratch `addGradNormSquared` needs for this layout and layer.
    public static func scratchCount(layout: SequenceLayout, outDim: Int, inDim: Int) -> Int {
        max(2 * layout.maxLength * layout.maxLength, outDim * inDim)
    }
}

/// Collects each sequence's squared gradient norm over the trainable parameters during one backward
/// pass: layers with an attached collector add their part (`addLinear`, `addVector`). The values are
/// norms of the gradient of the *batch's* loss restricted to one example; for a mean loss over B
/// examples, `norms(meanOver:)` rescales them to each example's own loss.
public final class PerExampleNorms: @unchecked Sendable {
    public private(set) var layout = SequenceLayout.packed(lengths: [])
    public private(set) var squared: [Float] = []
    private let scratch = Scratch()
    public init() {}

    /// Starts a batch (the encoder calls this at each forward).
    public func reset(layout: SequenceLayout) { self.layout = layout; squared = [Float](repeating: 0, count: layout.count) }

    /// Adds `scale² · ‖Σ_t dy_t x_tᵀ‖²` per sequence for a weight whose gradient is `scale · dYᵀ X`.
    public func addLinear(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, outDim: Int, inDim: Int, scale: Float = 1) {
        part.removeAll(keepingCapacity: true)
        part.append(contentsOf: repeatElement(0, count: layout.count))
        let s = scratch.get(PerExample.scratchCount(layout: layout, outDim: outDim, inDim: inDim))
        PerExample.addGradNormSquared(dy: dy, x: x, outDim: outDim, inDim: inDim, layout: layout, scratch: s, into: &part)
        for b in part.indices { squared[b] += scale * scale * part[b] }
    }
    private var part: [Float] = []

    /// Adds `‖Σ_t a_t ⊙ c_t‖²` per sequence for a vector parameter whose gradient is `Σ_t a_t ⊙ c_t` (`[tokens, d]` each).
    public func addVector(_ a: UnsafePointer<Float>, _ c: UnsafePointer<Float>, d: Int) {
        let acc = scratch.get(d)
        for b in 0..<layout.count {
            acc.update(repeating: 0, count: d)
            for t in layout.starts[b]..<(layout.starts[b] + layout.lengths[b]) { for j in 0..<d { acc[j] += a[t * d + j] * c[t * d + j] } }
            var sum: Float = 0
            for j in 0..<d { sum += acc[j] * acc[j] }
            squared[b] += sum
        }
    }

    /// Adds per-example squared norms given directly (one value per sequence).
    public func add(_ values: [Float]) { for b in values.indices { squared[b] += values[b] } }

    /// Each example's gradient norm of its own loss, when the batch loss was the mean over the batch.
    public func norms(meanOver batch: Int) -> [Float] { squared.map { $0.squareRoot() * Float(batch) } }
}
