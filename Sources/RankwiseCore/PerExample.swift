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
    public static func addGradNormSquared(
        dy: UnsafePointer<Float>, x: UnsafePointer<Float>, outDim: Int, inDim: Int,
        layout: SequenceLayout, scratch: UnsafeMutablePointer<Float>, into normSquared: inout [Float]
    ) {
        for b in 0..<layout.count {
            let L = layout.lengths[b]
            if L == 0 { continue }
            let xs = x + layout.starts[b] * inDim
            let ds = dy + layout.starts[b] * outDim
            var sum: Float = 0
            if L * (inDim + outDim) <= inDim * outDim {
                let gx = scratch
                let gd = scratch + L * L
                BLAS.sgemm(transB: true, m: L, n: L, k: inDim, a: xs, lda: inDim, b: xs, ldb: inDim, c: gx, ldc: L)
                BLAS.sgemm(transB: true, m: L, n: L, k: outDim, a: ds, lda: outDim, b: ds, ldb: outDim, c: gd, ldc: L)
                for i in 0..<(L * L) { sum += gx[i] * gd[i] }
            } else {
                BLAS.sgemm(
                    transA: true, m: outDim, n: inDim, k: L, a: ds, lda: outDim, b: xs, ldb: inDim, c: scratch,
                    ldc: inDim)
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
/// pass: layers with an attached collector add their part (`addLinear`, `addVector`, `addRows`). The
/// values are norms of the gradient of the *batch's* loss restricted to one example; for a mean loss
/// over B examples, `norms(meanOver:)` rescales them to each example's own loss.
///
/// With a `reference` direction (a tensor per parameter, e.g. the mean gradient of a pool of examples)
/// it also collects each example's dot product with that direction (`dots`): for a linear map,
/// `g_b · G = Σ_t dy_tᵀ G x_t`, one matrix product over the batch's rows.
public final class PerExampleNorms: @unchecked Sendable {
    public private(set) var layout = SequenceLayout.packed(lengths: [])
    public private(set) var squared: [Float] = []
    /// Each example's dot product with `reference` (zero where no parameter has a reference).
    public private(set) var dots: [Float] = []
    /// Direction per parameter (`ObjectIdentifier(param)` → tensor of the parameter's shape).
    public var reference: [ObjectIdentifier: Tensor] = [:]
    /// False skips the norms (when only `dots` are wanted).
    public var collectNorms = true
    private let scratch = Scratch(), zBuf = Scratch()
    private var part: [Float] = []
    public init() {}

    /// Starts a batch (the backbone calls this at each forward).
    public func reset(layout: SequenceLayout) {
        self.layout = layout
        squared = [Float](repeating: 0, count: layout.count)
        dots = [Float](repeating: 0, count: layout.count)
    }

    /// Adds `scale² · ‖Σ_t dy_t x_tᵀ‖²` per sequence for a weight `param` whose gradient is `scale · dYᵀ X`
    /// (and `scale · Σ_t dy_tᵀ G x_t` to `dots` when `param` has a reference G).
    public func addLinear(
        dy: UnsafePointer<Float>, x: UnsafePointer<Float>, outDim: Int, inDim: Int, scale: Float = 1,
        param: AnyObject? = nil
    ) {
        addLinear(dy: dy, x: x, outDim: outDim, inDim: inDim, scale: scale, param: param, layout: layout)
    }

    func addLinear(
        dy: UnsafePointer<Float>, x: UnsafePointer<Float>, outDim: Int, inDim: Int, scale: Float, param: AnyObject?,
        layout: SequenceLayout
    ) {
        if collectNorms {
            part.removeAll(keepingCapacity: true)
            part.append(contentsOf: repeatElement(0, count: layout.count))
            let s = scratch.get(PerExample.scratchCount(layout: layout, outDim: outDim, inDim: inDim))
            PerExample.addGradNormSquared(
                dy: dy, x: x, outDim: outDim, inDim: inDim, layout: layout, scratch: s, into: &part)
            for b in part.indices { squared[b] += scale * scale * part[b] }
        }
        guard let param, let g = reference[ObjectIdentifier(param)] else { return }
        let rows = layout.tokens
        let z = zBuf.get(rows * outDim)  // z = X Gᵀ
        BLAS.sgemm(
            transB: true, m: rows, n: outDim, k: inDim, a: x, lda: inDim, b: g.data, ldb: inDim, c: z, ldc: outDim)
        for b in 0..<layout.count {
            var sum: Float = 0
            for t in layout.starts[b]..<(layout.starts[b] + layout.lengths[b]) {
                for o in 0..<outDim { sum += dy[t * outDim + o] * z[t * outDim + o] }
            }
            dots[b] += scale * sum
        }
    }

    /// Adds `‖Σ_t a_t ⊙ c_t‖²` per sequence for a vector parameter whose gradient is `Σ_t a_t ⊙ c_t` (`[tokens, d]`
    /// each).
    public func addVector(_ a: UnsafePointer<Float>, _ c: UnsafePointer<Float>, d: Int, param: AnyObject? = nil) {
        let acc = scratch.get(d)
        let ref = param.flatMap { reference[ObjectIdentifier($0)] }
        for b in 0..<layout.count {
            acc.update(repeating: 0, count: d)
            for t in layout.starts[b]..<(layout.starts[b] + layout.lengths[b]) {
                for j in 0..<d { acc[j] += a[t * d + j] * c[t * d + j] }
            }
            var sum: Float = 0
            var dot: Float = 0
            for j in 0..<d { sum += acc[j] * acc[j] }
            if let ref { for j in 0..<d { dot += acc[j] * ref[j] } }
            if collectNorms { squared[b] += sum }
            dots[b] += dot
        }
    }

    /// A layer applied to one row per example (a classification head): `dy` `[batch, outDim]`,
    /// `x` `[batch, inDim]`, weight gradient `dyᵀ x` and, with a trainable bias, bias gradient `Σ dy`.
    public func addRows(
        dy: UnsafePointer<Float>, x: UnsafePointer<Float>, outDim: Int, inDim: Int, weight: AnyObject, bias: AnyObject?
    ) {
        let rows = SequenceLayout.packed(lengths: [Int](repeating: 1, count: layout.count))
        addLinear(dy: dy, x: x, outDim: outDim, inDim: inDim, scale: 1, param: weight, layout: rows)
        guard let bias else { return }
        let ref = reference[ObjectIdentifier(bias)]
        for b in 0..<layout.count {
            var sum: Float = 0
            var dot: Float = 0
            for o in 0..<outDim {
                sum += dy[b * outDim + o] * dy[b * outDim + o]
                dot += dy[b * outDim + o] * (ref?[o] ?? 0)
            }
            if collectNorms { squared[b] += sum }
            dots[b] += dot
        }
    }

    /// Each example's gradient norm of its own loss, when the batch loss was the mean over the batch.
    public func norms(meanOver batch: Int) -> [Float] { squared.map { $0.squareRoot() * Float(batch) } }
}
