import Foundation
import Models
import RankwiseCore

/// An SVD-form adapter `y += s · B diag(E) A dropout(x)` with A `[rMax, in]`, E `[rMax]` (stored as
/// `[rMax, 1]` like PEFT's `lora_E`), B `[out, rMax]`, and `s = scaling / (ranknum + 1e-5)` as in
/// PEFT's AdaLoRA. Every method that prunes or grows ranks works on this one shape: ranks are
/// preallocated up to `rMax`, and `active` says which are in use. A rank that is switched off has E = 0;
/// `deactivate`/`activate` also reset its optimizer moments, so pruning, growing and optimizer-state
/// slicing are one mechanism.
public final class SVDAdapter: LinearAdapter {
    public let path: String
    public let a: Param, e: Param, b: Param
    public let rMax: Int
    public let inDim: Int, outDim: Int
    public let scaling: Float
    /// PEFT's `ranknum`: fixed at the initial rank, so the output scale does not jump when ranks are pruned.
    public let ranknum: Float
    public let dropout: Float
    public var active: [Bool]
    public var params: [Param] { [a, e, b] }
    public var rank: Int { active.filter { $0 }.count }
    public var scale: Float { scaling / (ranknum + 1e-5) }

    private let uBuf = Scratch(), vBuf = Scratch(), xdBuf = Scratch(), maskBuf = Scratch(), dvBuf = Scratch()
    private var usedDropout = false

    public init(path: String, inDim: Int, outDim: Int, rMax: Int, initialRank: Int, alpha: Float, dropout: Float,
                a: Tensor, e: Tensor, b: Tensor) {
        self.path = path; self.inDim = inDim; self.outDim = outDim; self.rMax = rMax
        scaling = alpha > 0 ? alpha : Float(initialRank)
        ranknum = Float(initialRank)
        self.dropout = dropout
        active = (0..<rMax).map { $0 < initialRank }
        self.a = Param(name: path + ".lora_A", value: a)
        self.e = Param(name: path + ".lora_E", value: e)
        self.b = Param(name: path + ".lora_B", value: b)
    }

    public func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, n: Int, training: Bool, seed: UInt64) {
        let r = rMax
        let u = uBuf.get(n * r), v = vBuf.get(n * r)
        var src = x
        usedDropout = training && dropout > 0
        if usedDropout {
            let xd = xdBuf.get(n * inDim), mask = maskBuf.get(n * inDim)
            Ops.dropoutForward(x: x, y: xd, mask: mask, count: n * inDim, p: dropout, seed: seed)
            src = UnsafePointer(xd)
        }
        BLAS.sgemm(transB: true, m: n, n: r, k: inDim, a: src, lda: inDim, b: a.value.data, ldb: inDim, c: u, ldc: r)
        let ev = e.value.data
        for i in 0..<n { for j in 0..<r { v[i * r + j] = u[i * r + j] * ev[j] } }
        BLAS.sgemm(transB: true, m: n, n: outDim, k: r, alpha: scale, a: v, lda: r, b: b.value.data, ldb: r, beta: 1, c: y, ldc: outDim)
    }

    public func backward(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?, n: Int) {
        let r = rMax
        let u = uBuf.get(n * r), v = vBuf.get(n * r), dv = dvBuf.get(n * r)
        let src = usedDropout ? UnsafePointer(xdBuf.get(n * inDim)) : x
        if let gb = b.grad { BLAS.sgemm(transA: true, m: outDim, n: r, k: n, alpha: scale, a: dy, lda: outDim, b: v, ldb: r, beta: 1, c: gb.data, ldc: r) }
        BLAS.sgemm(m: n, n: r, k: outDim, alpha: scale, a: dy, lda: outDim, b: b.value.data, ldb: r, c: dv, ldc: r)
        if let ge = e.grad {
            for i in 0..<n { for j in 0..<r { ge[j] += dv[i * r + j] * u[i * r + j] } }
        }
        let ev = e.value.data
        for i in 0..<n { for j in 0..<r { dv[i * r + j] *= ev[j] } }  // now du
        if let ga = a.grad { BLAS.sgemm(transA: true, m: r, n: inDim, k: n, a: dv, lda: r, b: src, ldb: inDim, beta: 1, c: ga.data, ldc: inDim) }
        guard let dx else { return }
        if usedDropout {
            let tmp = xdBuf.get(n * inDim)
            BLAS.sgemm(m: n, n: inDim, k: r, a: dv, lda: r, b: a.value.data, ldb: inDim, c: tmp, ldc: inDim)
            let mask = maskBuf.get(n * inDim)
            for i in 0..<(n * inDim) { dx[i] += tmp[i] * mask[i] }
        } else {
            BLAS.sgemm(m: n, n: inDim, k: r, a: dv, lda: r, b: a.value.data, ldb: inDim, beta: 1, c: dx, ldc: inDim)
        }
    }

    /// The dense update `s · B diag(E) A` `[out, in]`.
    public func delta() -> Tensor {
        let r = rMax
        let ae = Tensor(zeros: [r, inDim])
        for j in 0..<r { for k in 0..<inDim { ae[j * inDim + k] = a.value[j * inDim + k] * e.value[j] } }
        let d = Tensor(zeros: [outDim, inDim])
        BLAS.sgemm(m: outDim, n: inDim, k: r, alpha: scale, a: b.value.data, lda: r, b: ae.data, ldb: inDim, c: d.data, ldc: inDim)
        return d
    }

    /// Switches a rank off: E = 0 and, when given, its optimizer moments reset (the rank starts fresh if regrown).
    public func deactivate(_ j: Int, moments: ((Param, Int) -> Void)? = nil) {
        active[j] = false
        e.value[j] = 0
        moments?(e, j)
    }

    /// Switches a rank on (its E starts at 0 and grows from its gradient).
    public func activate(_ j: Int) { active[j] = true }
}

/// PEFT AdaLoRA's orthogonal regulariser: `weight · mean over A and B matrices of ‖P Pᵀ − I‖_F`
/// (A: `A Aᵀ`, B: `Bᵀ B`), added to the loss; its gradient is added to A and B.
public final class OrthogonalRegularizer: LossRegularizer {
    public let adapters: [SVDAdapter]
    public let weight: Float
    public init(adapters: [SVDAdapter], weight: Float) { self.adapters = adapters; self.weight = weight }

    /// ‖G − I‖_F for G = M Mᵀ (rows of M) with M `[r, d]`, and optionally accumulates
    /// `scale · 2 (G − I) M / ‖G − I‖_F` into `grad`.
    static func rowGram(_ m: UnsafePointer<Float>, r: Int, d: Int, grad: UnsafeMutablePointer<Float>?, scale: Float) -> Float {
        guard r > 0 else { return 0 }
        let g = Tensor(zeros: [r, r])
        BLAS.sgemm(transB: true, m: r, n: r, k: d, a: m, lda: d, b: m, ldb: d, c: g.data, ldc: r)
        var s: Double = 0
        for i in 0..<r { g[i * r + i] -= 1 }
        for i in 0..<(r * r) { s += Double(g[i]) * Double(g[i]) }
        let norm = Float(s.squareRoot())
        if let grad, norm > 0 {
            BLAS.sgemm(m: r, n: d, k: r, alpha: 2 * scale / norm, a: g.data, lda: r, b: m, ldb: d, beta: 1, c: grad, ldc: d)
        }
        return norm
    }

    /// ‖Bᵀ B − I‖_F for B `[out, r]` (columns), with gradient `scale · 2 B (G − I) / ‖·‖`.
    static func colGram(_ m: UnsafePointer<Float>, rows: Int, r: Int, grad: UnsafeMutablePointer<Float>?, scale: Float) -> Float {
        guard r > 0 else { return 0 }
        let g = Tensor(zeros: [r, r])
        BLAS.sgemm(transA: true, m: r, n: r, k: rows, a: m, lda: r, b: m, ldb: r, c: g.data, ldc: r)
        var s: Double = 0
        for i in 0..<r { g[i * r + i] -= 1 }
        for i in 0..<(r * r) { s += Double(g[i]) * Double(g[i]) }
        let norm = Float(s.squareRoot())
        if let grad, norm > 0 {
            BLAS.sgemm(m: rows, n: r, k: r, alpha: 2 * scale / norm, a: m, lda: r, b: g.data, ldb: r, beta: 1, c: grad, ldc: r)
        }
        return norm
    }

    /// Mean ‖·‖_F over all A and B matrices, without the weight (SalientLoRA records it).
    public func lossUnweighted() -> Float {
        guard !adapters.isEmpty else { return 0 }
        var total: Float = 0
        for ad in adapters {
            total += Self.rowGram(ad.a.value.data, r: ad.rMax, d: ad.inDim, grad: nil, scale: 0)
            total += Self.colGram(ad.b.value.data, rows: ad.outDim, r: ad.rMax, grad: nil, scale: 0)
        }
        return total / Float(2 * adapters.count)
    }

    public func loss() -> Float {
        guard weight > 0, !adapters.isEmpty else { return 0 }
        var total: Float = 0
        for ad in adapters {
            total += Self.rowGram(ad.a.value.data, r: ad.rMax, d: ad.inDim, grad: nil, scale: 0)
            total += Self.colGram(ad.b.value.data, rows: ad.outDim, r: ad.rMax, grad: nil, scale: 0)
        }
        return weight * total / Float(2 * adapters.count)
    }

    public func backward(scale: Float) {
        guard weight > 0, !adapters.isEmpty else { return }
        let s = scale * weight / Float(2 * adapters.count)
        for ad in adapters {
            _ = Self.rowGram(ad.a.value.data, r: ad.rMax, d: ad.inDim, grad: ad.a.grad?.data, scale: s)
            _ = Self.colGram(ad.b.value.data, rows: ad.outDim, r: ad.rMax, grad: ad.b.grad?.data, scale: s)
        }
    }
}
