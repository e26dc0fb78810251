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

    private let uBuf = Scratch(), vBuf = Scratch(), dvBuf = Scratch()
    let inputDropout: InputDropout
    public var perExample: PerExampleNorms?

    public init(
        path: String, inDim: Int, outDim: Int, rMax: Int, initialRank: Int, alpha: Float, dropout: Float,
        a: Tensor, e: Tensor, b: Tensor
    ) {
        self.path = path
        self.inDim = inDim
        self.outDim = outDim
        self.rMax = rMax
        scaling = alpha > 0 ? alpha : Float(initialRank)
        ranknum = Float(initialRank)
        self.dropout = dropout
        inputDropout = InputDropout(p: dropout, inDim: inDim)
        active = (0..<rMax).map { $0 < initialRank }
        self.a = Param(name: path + ".lora_A", value: a)
        self.e = Param(name: path + ".lora_E", value: e)
        self.b = Param(name: path + ".lora_B", value: b)
    }

    public func forward(
        x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, n: Int, training: Bool, seed: UInt64,
        rowKeys: UnsafePointer<UInt64>?
    ) {
        let r = rMax
        let u = uBuf.get(n * r)
        let v = vBuf.get(n * r)
        let src = inputDropout.forward(x, n: n, training: training, seed: seed, rowKeys: rowKeys)
        BLAS.sgemm(transB: true, m: n, n: r, k: inDim, a: src, lda: inDim, b: a.value.data, ldb: inDim, c: u, ldc: r)
        let ev = e.value.data
        for i in 0..<n { for j in 0..<r { v[i * r + j] = u[i * r + j] * ev[j] } }
        BLAS.sgemm(
            transB: true, m: n, n: outDim, k: r, alpha: scale, a: v, lda: r, b: b.value.data, ldb: r, beta: 1, c: y,
            ldc: outDim)
    }

    public func backward(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?, n: Int) {
        let r = rMax
        let u = uBuf.get(n * r)
        let v = vBuf.get(n * r)
        let dv = dvBuf.get(n * r)
        let src = inputDropout.saved(x, n: n)
        if let gb = b.grad {
            BLAS.sgemm(
                transA: true, m: outDim, n: r, k: n, alpha: scale, a: dy, lda: outDim, b: v, ldb: r, beta: 1,
                c: gb.data, ldc: r)
        }
        BLAS.sgemm(m: n, n: r, k: outDim, alpha: scale, a: dy, lda: outDim, b: b.value.data, ldb: r, c: dv, ldc: r)
        if let ge = e.grad {
            for i in 0..<n { for j in 0..<r { ge[j] += dv[i * r + j] * u[i * r + j] } }
        }
        if let pe = perExample {
            if b.grad != nil { pe.addLinear(dy: dy, x: v, outDim: outDim, inDim: r, scale: scale, param: b) }
            if e.grad != nil { pe.addVector(dv, u, d: r, param: e) }
        }
        let ev = e.value.data
        for i in 0..<n { for j in 0..<r { dv[i * r + j] *= ev[j] } }  // now du
        if let ga = a.grad {
            BLAS.sgemm(
                transA: true, m: r, n: inDim, k: n, a: dv, lda: r, b: src, ldb: inDim, beta: 1, c: ga.data, ldc: inDim)
        }
        if let pe = perExample, a.grad != nil { pe.addLinear(dy: dv, x: src, outDim: r, inDim: inDim, param: a) }
        if let dx { inputDropout.addInputGradient(du: dv, a: a.value.data, n: n, r: r, dx: dx) }
    }

    /// The dense update `s · B diag(E) A` `[out, in]`.
    public func delta() -> Tensor {
        let r = rMax
        let ae = Tensor(zeros: [r, inDim])
        for j in 0..<r { for k in 0..<inDim { ae[j * inDim + k] = a.value[j * inDim + k] * e.value[j] } }
        let d = Tensor(zeros: [outDim, inDim])
        BLAS.sgemm(
            m: outDim, n: inDim, k: r, alpha: scale, a: b.value.data, lda: r, b: ae.data, ldb: inDim, c: d.data,
            ldc: inDim)
        return d
    }

    /// `scale · B diag(E)` and A over the ranks whose E is not zero (a rank switched off has E = 0), as `delta`.
    public func lowRankFactors() -> (b: Tensor, a: Tensor)? {
        let kept = (0..<rMax).filter { e.value[$0] != 0 }
        let factorB = Tensor(zeros: [outDim, kept.count])
        let factorA = Tensor(zeros: [kept.count, inDim])
        for (slot, rank) in kept.enumerated() {
            for o in 0..<outDim { factorB[o * kept.count + slot] = b.value[o * rMax + rank] * e.value[rank] * scale }
            for i in 0..<inDim { factorA[slot * inDim + i] = a.value[rank * inDim + i] }
        }
        return (factorB, factorA)
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
    /// Only the active ranks' rows of A and columns of B (for methods whose inactive ranks do not exist).
    public let activeOnly: Bool
    private let gatherA = Scratch(), gatherB = Scratch(), gradA = Scratch(), gradB = Scratch()

    public init(adapters: [SVDAdapter], weight: Float, activeOnly: Bool = false) {
        self.adapters = adapters
        self.weight = weight
        self.activeOnly = activeOnly
    }

    /// ‖A Aᵀ − I‖ + ‖Bᵀ B − I‖ of one adapter, accumulating `scale ·` their gradients when `withGrad`.
    func terms(_ ad: SVDAdapter, withGrad: Bool, scale: Float) -> (Float, Float) {
        let ga = withGrad ? ad.a.grad?.data : nil
        let gb = withGrad ? ad.b.grad?.data : nil
        guard activeOnly, ad.rank < ad.rMax else {
            return (
                Self.rowGram(ad.a.value.data, r: ad.rMax, d: ad.inDim, grad: ga, scale: scale),
                Self.colGram(ad.b.value.data, rows: ad.outDim, r: ad.rMax, grad: gb, scale: scale)
            )
        }
        // Gather the active rows of A and columns of B, and scatter their gradients back.
        let idx = (0..<ad.rMax).filter { ad.active[$0] }
        let k = idx.count
        let R = ad.rMax
        let a = gatherA.get(k * ad.inDim)
        let b = gatherB.get(ad.outDim * k)
        let da = gradA.get(k * ad.inDim)
        let db = gradB.get(ad.outDim * k)
        for (c, j) in idx.enumerated() {
            (a + c * ad.inDim).update(from: ad.a.value.data + j * ad.inDim, count: ad.inDim)
            for o in 0..<ad.outDim { b[o * k + c] = ad.b.value[o * R + j] }
        }
        da.update(repeating: 0, count: k * ad.inDim)
        db.update(repeating: 0, count: ad.outDim * k)
        let t = (
            Self.rowGram(a, r: k, d: ad.inDim, grad: ga == nil ? nil : da, scale: scale),
            Self.colGram(b, rows: ad.outDim, r: k, grad: gb == nil ? nil : db, scale: scale)
        )
        for (c, j) in idx.enumerated() {
            if let ga { for i in 0..<ad.inDim { ga[j * ad.inDim + i] += da[c * ad.inDim + i] } }
            if let gb { for o in 0..<ad.outDim { gb[o * R + j] += db[o * k + c] } }
        }
        return t
    }

    /// ‖G − I‖_F for G = M Mᵀ (rows of M) with M `[r, d]`, and optionally accumulates
    /// `scale · 2 (G − I) M / ‖G − I‖_F` into `grad`.
    static func rowGram(
        _ m: UnsafePointer<Float>, r: Int, d: Int, grad: UnsafeMutablePointer<Float>?, scale: Float
    ) -> Float {
        guard r > 0 else { return 0 }
        let g = Tensor(zeros: [r, r])
        BLAS.sgemm(transB: true, m: r, n: r, k: d, a: m, lda: d, b: m, ldb: d, c: g.data, ldc: r)
        var s: Double = 0
        for i in 0..<r { g[i * r + i] -= 1 }
        for i in 0..<(r * r) { s += Double(g[i]) * Double(g[i]) }
        let norm = Float(s.squareRoot())
        if let grad, norm > 0 {
            BLAS.sgemm(
                m: r, n: d, k: r, alpha: 2 * scale / norm, a: g.data, lda: r, b: m, ldb: d, beta: 1, c: grad, ldc: d)
        }
        return norm
    }

    /// ‖Bᵀ B − I‖_F for B `[out, r]` (columns), with gradient `scale · 2 B (G − I) / ‖·‖`.
    static func colGram(
        _ m: UnsafePointer<Float>, rows: Int, r: Int, grad: UnsafeMutablePointer<Float>?, scale: Float
    ) -> Float {
        guard r > 0 else { return 0 }
        let g = Tensor(zeros: [r, r])
        BLAS.sgemm(transA: true, m: r, n: r, k: rows, a: m, lda: r, b: m, ldb: r, c: g.data, ldc: r)
        var s: Double = 0
        for i in 0..<r { g[i * r + i] -= 1 }
        for i in 0..<(r * r) { s += Double(g[i]) * Double(g[i]) }
        let norm = Float(s.squareRoot())
        if let grad, norm > 0 {
            BLAS.sgemm(
                m: rows, n: r, k: r, alpha: 2 * scale / norm, a: m, lda: r, b: g.data, ldb: r, beta: 1, c: grad, ldc: r)
        }
        return norm
    }

    /// Mean ‖·‖_F over all A and B matrices, without the weight (SalientLoRA records it).
    public func lossUnweighted() -> Float {
        guard !adapters.isEmpty else { return 0 }
        return total() / Float(2 * adapters.count)
    }

    func total() -> Float {
        var total: Float = 0
        for ad in adapters {
            let (a, b) = terms(ad, withGrad: false, scale: 0)
            total += a
            total += b
        }
        return total
    }

    public func loss() -> Float {
        guard weight > 0, !adapters.isEmpty else { return 0 }
        return weight * total() / Float(2 * adapters.count)
    }

    public func backward(scale: Float) {
        guard weight > 0, !adapters.isEmpty else { return }
        let s = scale * weight / Float(2 * adapters.count)
        for ad in adapters { _ = terms(ad, withGrad: true, scale: s) }
    }
}

/// How an SVD adapter starts. Both give an output of exactly zero at step 0.
/// - `peft`: PEFT AdaLoRA's start: A, B ~ N(0, 0.02), E = 0. No gradient reaches A or B until E has
///   moved, and E's own gradient is a product of two small random factors.
/// - `zeroB`: LoRA's start: A with orthonormal rows (what the orthogonal regulariser asks for), E = `e`
///   on the active ranks, B = 0. B gets a full gradient from the first step, as LoRA's B does; with
///   e = 1/√3 the update s·B diag(E) A per unit of B is the size of LoRA's s·B A (PEFT's A has rows of
///   norm about 1/√3).
public enum SVDStart: String, Sendable, SettingChoice {
    case peft
    case zeroB = "zero-b"
}

/// How an SVD method's adapters start, one group (`start`) in every SVD method's config; the options keep
/// their flat names (`--adapter-init`, `--init-e`).
public struct SVDStartSettings: Settings, Sendable, Equatable {
    public var adapterInit = SVDStart.zeroB
    public var initE: Float = 1 / Float(3).squareRoot()
    public init() {}

    /// PEFT AdaLoRA's start (what the parity tests and the AdaLoRA loader build).
    public static var peft: SVDStartSettings {
        var settings = SVDStartSettings()
        settings.adapterInit = .peft
        return settings
    }

    public static let help = [
        "adapterInit": "how the SVD adapters start: zero-b (A orthonormal rows, E = init-e, B = 0: B learns from "
            + "the first step, as in LoRA) or peft (PEFT AdaLoRA's A, B ~ N(0, 0.02), E = 0)",
        "initE": "E of every active (and, in prune-and-grow methods, every grown) rank at the start with "
            + "--adapter-init zero-b (1/sqrt(3): LoRA's output scale)",
    ]

    /// The start `adapterInit` names.
    public func kind(method: String) throws -> SVDStart { adapterInit }
}

extension SVDAdapter {
    /// Attaches SVD adapters to the linear layers `targeting` picks, with `maxRank` ranks preallocated of
    /// which the first `initialRank` are active, started as `start` says (E = `start.initE` on active ranks
    /// for zero-b). Registers their parameters; returns them by module path.
    public static func attach(
        to model: any Backbone, targeting: LoRATargeting, initialRank: Int, maxRank: Int? = nil,
        seed: UInt64, method: String, start: SVDStartSettings = .peft
    ) throws -> [String: SVDAdapter] {
        let rMax = maxRank ?? initialRank
        guard initialRank > 0, rMax >= initialRank else {
            throw ModelError("\(method): need 0 < initial rank (\(initialRank)) <= maximum rank (\(rMax))")
        }
        guard targeting.loraDropout >= 0 && targeting.loraDropout < 1 else {
            throw ModelError("\(method): lora_dropout must be in [0, 1)")
        }
        let kind = try start.kind(method: method)
        let startE = start.initE
        guard startE.isFinite, startE > 0 else {
            throw ModelError("\(method): --init-e must be a positive number (got \(startE))")
        }
        var rng = SplitMix64(seed: seed)
        var out: [String: SVDAdapter] = [:]
        for lin in try targeting.targets(in: model, method: method, rank: rMax) {
            let a = Tensor(zeros: [rMax, lin.inDim])
            let b = Tensor(zeros: [lin.outDim, rMax])
            let e = Tensor(zeros: [rMax, 1])
            switch kind {
            case .peft:
                for i in 0..<a.count { a[i] = 0.02 * rng.nextNormal() }
                for i in 0..<b.count { b[i] = 0.02 * rng.nextNormal() }
            case .zeroB:
                for i in 0..<a.count { a[i] = rng.nextNormal() }
                orthonormaliseRows(a.data, rows: rMax, columns: lin.inDim)
                for j in 0..<initialRank { e[j] = startE }
            }
            let ad = SVDAdapter(
                path: lin.path, inDim: lin.inDim, outDim: lin.outDim, rMax: rMax, initialRank: initialRank,
                alpha: targeting.alpha, dropout: targeting.loraDropout, a: a, e: e, b: b)
            lin.adapter = ad
            for p in ad.params { model.params.add(p) }
            out[lin.path] = ad
        }
        return out
    }

    /// Modified Gram-Schmidt (twice, in double precision) over the rows of `m` `[rows, columns]`, rows <= columns.
    static func orthonormaliseRows(_ m: UnsafeMutablePointer<Float>, rows: Int, columns: Int) {
        var basis: [[Double]] = []
        for i in 0..<rows {
            var u = (0..<columns).map { Double(m[i * columns + $0]) }
            let norm = project(&u, off: basis)
            u = u.map { $0 / max(norm, 1e-12) }
            basis.append(u)
            for k in 0..<columns { m[i * columns + k] = Float(u[k]) }
        }
    }

    /// Projects `u` off the orthonormal vectors of `basis`, twice (modified Gram-Schmidt with one
    /// re-orthogonalisation, in double precision); returns the norm of what is left.
    public static func project(_ u: inout [Double], off basis: [[Double]]) -> Double {
        for _ in 0..<2 {
            for q in basis {
                let d = zip(q, u).reduce(0) { $0 + $1.0 * $1.1 }
                for k in u.indices { u[k] -= d * q[k] }
            }
        }
        return u.reduce(0) { $0 + $1 * $1 }.squareRoot()
    }
}
