import Foundation
import Models
import RankwiseCore

/// SoRA's adapter (Ding et al. 2023, TsinghuaC3I/SoRA `LowRankLinear`): LoRA with a gate vector between
/// the down and the up projection, `y += s · ((dropout(x) Aᵀ) ⊙ g) Bᵀ`, A `[r, in]`, B `[out, r]`, g `[r]`.
/// A rank whose gate is exactly zero contributes nothing; the method drives gates to zero with a proximal
/// L1 step, and the export keeps only the ranks with a non-zero gate, folded into B.
public final class SoRAAdapter: LinearAdapter {
    public let a: Param, b: Param, gate: Param
    public let r: Int
    public let scaling: Float
    public let dropout: Float
    let inDim: Int, outDim: Int
    public var params: [Param] { [a, b, gate] }
    public var perExample: PerExampleNorms?
    // Saved between forward and backward: u = x' Aᵀ [n, r], u ⊙ g [n, r], x' and its mask [n, in].
    private let uBuf = Scratch(), ugBuf = Scratch(), dugBuf = Scratch()
    let inputDropout: InputDropout

    public init(
        path: String, inDim: Int, outDim: Int, r: Int, scaling: Float, dropout: Float, a: Tensor, b: Tensor,
        gate: Tensor
    ) {
        self.inDim = inDim
        self.outDim = outDim
        self.r = r
        self.scaling = scaling
        self.dropout = dropout
        inputDropout = InputDropout(p: dropout, inDim: inDim)
        self.a = Param(name: path + ".lora_A.weight", value: a)
        self.b = Param(name: path + ".lora_B.weight", value: b)
        self.gate = Param(name: path + ".lora_gate", value: gate)
    }

    /// The ranks whose gate is not zero.
    public var activeRank: Int { (0..<r).filter { gate.value[$0] != 0 }.count }

    public func forward(
        x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, n: Int, training: Bool, seed: UInt64,
        rowKeys: UnsafePointer<UInt64>?
    ) {
        let src = inputDropout.forward(x, n: n, training: training, seed: seed, rowKeys: rowKeys)
        let u = uBuf.get(n * r)
        let ug = ugBuf.get(n * r)
        BLAS.sgemm(transB: true, m: n, n: r, k: inDim, a: src, lda: inDim, b: a.value.data, ldb: inDim, c: u, ldc: r)
        for t in 0..<n { for k in 0..<r { ug[t * r + k] = u[t * r + k] * gate.value[k] } }
        BLAS.sgemm(
            transB: true, m: n, n: outDim, k: r, alpha: scaling, a: ug, lda: r, b: b.value.data, ldb: r, beta: 1, c: y,
            ldc: outDim)
    }

    public func backward(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?, n: Int) {
        let u = uBuf.get(n * r)
        let ug = ugBuf.get(n * r)
        let dug = dugBuf.get(n * r)
        let src = inputDropout.saved(x, n: n)
        if let gb = b.grad {  // dB += s · dyᵀ (u ⊙ g)
            BLAS.sgemm(
                transA: true, m: outDim, n: r, k: n, alpha: scaling, a: dy, lda: outDim, b: ug, ldb: r, beta: 1,
                c: gb.data, ldc: r)
        }
        // d(u ⊙ g) = s · dy B
        BLAS.sgemm(m: n, n: r, k: outDim, alpha: scaling, a: dy, lda: outDim, b: b.value.data, ldb: r, c: dug, ldc: r)
        if let gg = gate.grad { for t in 0..<n { for k in 0..<r { gg[k] += dug[t * r + k] * u[t * r + k] } } }
        if let pe = perExample {
            if b.grad != nil { pe.addLinear(dy: dy, x: ug, outDim: outDim, inDim: r, scale: scaling, param: b) }
            if gate.grad != nil { pe.addVector(dug, u, d: r, param: gate) }
        }
        for t in 0..<n { for k in 0..<r { dug[t * r + k] *= gate.value[k] } }  // du = d(u ⊙ g) ⊙ g
        if let ga = a.grad {
            BLAS.sgemm(
                transA: true, m: r, n: inDim, k: n, a: dug, lda: r, b: src, ldb: inDim, beta: 1, c: ga.data, ldc: inDim)
        }
        if let pe = perExample, a.grad != nil { pe.addLinear(dy: dug, x: src, outDim: r, inDim: inDim, param: a) }
        if let dx { inputDropout.addInputGradient(du: dug, a: a.value.data, n: n, r: r, dx: dx) }
    }

    /// `s · B diag(g) A` `[out, in]`, for merging.
    public func delta() -> Tensor {
        let (bg, _) = folded()
        let d = Tensor(zeros: [outDim, inDim])
        BLAS.sgemm(
            m: outDim, n: inDim, k: r, alpha: scaling, a: bg.data, lda: r, b: a.value.data, ldb: inDim, c: d.data,
            ldc: inDim)
        return d
    }

    /// B with the gate folded in (`B diag(g)`, `[out, r]`) and the ranks whose gate is not zero.
    public func folded() -> (Tensor, [Int]) {
        let bg = Tensor(zeros: [outDim, r])
        for o in 0..<outDim { for k in 0..<r { bg[o * r + k] = b.value[o * r + k] * gate.value[k] } }
        return (bg, (0..<r).filter { gate.value[$0] != 0 })
    }

    /// `scaling · B diag(g)` and A over the ranks whose gate is not zero.
    public func lowRankFactors() -> (b: Tensor, a: Tensor)? {
        let (gated, kept) = folded()
        let factorB = Tensor(zeros: [outDim, kept.count])
        let factorA = Tensor(zeros: [kept.count, inDim])
        for (slot, rank) in kept.enumerated() {
            for o in 0..<outDim { factorB[o * kept.count + slot] = gated[o * r + rank] * scaling }
            for i in 0..<inDim { factorA[slot * inDim + i] = a.value[rank * inDim + i] }
        }
        return (factorB, factorA)
    }
}
