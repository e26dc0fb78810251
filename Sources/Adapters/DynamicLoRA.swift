import Foundation
import Models
import RankwiseCore

/// Dynamic LoRA's adapter (our reading of Liao et al. 2025, whose equations are not public): LoRA whose
/// output is multiplied by its layer's weight `w` (set by the method from the layers' importance, not
/// trained) and, with the input gate on, by a per-sequence gate `g = sigmoid(v · mean_t x_t + c)`:
///
///     y_t += w · g_e · s · B A dropout(x_t)      for every token t of sequence e
///
/// The gate's mean runs over the sequence's real tokens (the model's layout), before dropout; `v` starts
/// at 0 and `c` at `gateBias`, so g starts at sigmoid(c) ≈ 1.
public final class DynamicLoRAAdapter: LinearAdapter {
    public let lora: LoRAAdapter
    /// The layer weight (mean 1 over layers); not a parameter.
    public var layerWeight: Float = 1
    /// `lora_gate.weight` `[in]` and `lora_gate.bias` `[1]`, when the gate is on.
    public let gateWeight: Param?, gateBias: Param?
    let inDim: Int, outDim: Int
    let layout: () -> SequenceLayout?
    public var params: [Param] { lora.params + [gateWeight, gateBias].compactMap { $0 } }
    public var perExample: PerExampleNorms?
    // Saved between forward and backward: u = x' Aᵀ and f·u [n, r], x·v [n] and each sequence's gate [B], x' and its mask.
    private let uBuf = Scratch(), ufBuf = Scratch(), duBuf = Scratch(), xvBuf = Scratch(), gBuf = Scratch(), wBuf = Scratch()
    private var savedLayout: SequenceLayout?
    let inputDropout: InputDropout

    public init(path: String, inDim: Int, outDim: Int, config: LoRAConfig, a: Tensor, b: Tensor, gate: Bool, gateBiasInit: Float,
                layout: @escaping () -> SequenceLayout?) {
        self.inDim = inDim; self.outDim = outDim; self.layout = layout
        lora = LoRAAdapter(path: path, inDim: inDim, outDim: outDim, config: config, a: a, b: b)
        inputDropout = InputDropout(p: config.dropout, inDim: inDim)
        gateWeight = gate ? Param(name: path + ".lora_gate.weight", value: Tensor(zeros: [inDim])) : nil
        gateBias = gate ? Param(name: path + ".lora_gate.bias", value: Tensor(shape: [1], values: [gateBiasInit])) : nil
    }

    /// The sequences of the current layout as `(first row, rows)`, or the whole batch as one sequence when
    /// there is no layout (a layer run on its own); `isReal(t)` says whether row t is a real token.
    var sequenceCount: Int { savedLayout.map { $0.count } ?? 1 }
    func sequence(_ e: Int, n: Int) -> (start: Int, count: Int) {
        guard let l = savedLayout, l.tokens == n else { return (0, n) }
        return (l.starts[e], l.lengths[e])
    }
    func isReal(_ t: Int) -> Bool { savedLayout?.keyMask.map { $0[t] > 0 } ?? true }

    // The layer weight and the gate scale each row of u = x' Aᵀ ([n, r], small) rather than the output
    // ([n, out]): w · g_e · s · (u Bᵀ) = s · ((w g_e u) Bᵀ). The gate's logit needs only x v ([n], one
    // matrix-vector product): z_e = c + (1 / T_e) Σ_t (x v)_t over the sequence's T_e real tokens.
    public func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, n: Int, training: Bool, seed: UInt64) {
        savedLayout = layout()
        if let l = savedLayout, l.tokens != n { savedLayout = nil }
        let r = lora.r
        let src = inputDropout.forward(x, n: n, training: training, seed: seed)
        let u = uBuf.get(n * r), uf = ufBuf.get(n * r)
        BLAS.sgemm(transB: true, m: n, n: r, k: inDim, a: src, lda: inDim, b: lora.a.value.data, ldb: inDim, c: u, ldc: r)
        let g = gBuf.get(sequenceCount)
        let xv = xvBuf.get(n)
        if let gw = gateWeight { BLAS.sgemm(m: n, n: 1, k: inDim, a: x, lda: inDim, b: gw.value.data, ldb: 1, c: xv, ldc: 1) }
        for e in 0..<sequenceCount {
            let (start, count) = sequence(e, n: n)
            g[e] = 1
            if let gb = gateBias {
                var sum: Float = 0, real = 0
                for t in start..<(start + count) where isReal(t) { sum += xv[t]; real += 1 }
                g[e] = 1 / (1 + exp(-(gb.value[0] + sum / Float(max(1, real)))))
            }
            let f = layerWeight * g[e]
            for k in (start * r)..<((start + count) * r) { uf[k] = f * u[k] }
        }
        BLAS.sgemm(transB: true, m: n, n: outDim, k: r, alpha: lora.scaling, a: uf, lda: r, b: lora.b.value.data, ldb: r, beta: 1, c: y, ldc: outDim)
    }

    public func backward(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?, n: Int) {
        let r = lora.r
        let u = uBuf.get(n * r), uf = ufBuf.get(n * r), du = duBuf.get(n * r), g = gBuf.get(sequenceCount)
        let src = inputDropout.saved(x, n: n)
        if let gB = lora.b.grad {  // dB += s · dyᵀ (f u)
            BLAS.sgemm(transA: true, m: outDim, n: r, k: n, alpha: lora.scaling, a: dy, lda: outDim, b: uf, ldb: r, beta: 1, c: gB.data, ldc: r)
        }
        if let pe = perExample, lora.b.grad != nil { pe.addLinear(dy: dy, x: uf, outDim: outDim, inDim: r, scale: lora.scaling, param: lora.b) }
        BLAS.sgemm(m: n, n: r, k: outDim, alpha: lora.scaling, a: dy, lda: outDim, b: lora.b.value.data, ldb: r, c: du, ldc: r)  // d(f u) = s · dy B
        // The gate: dL/dg_e = w · Σ_t d(f u)_t · u_t, dz_e = dg_e · g_e (1 − g_e); every real token t of the
        // sequence gets w_t = dz_e / T_e, so dv += xᵀ w, dc += Σ dz_e and dx += w vᵀ.
        let wt = wBuf.get(n)
        if gateWeight != nil { wt.update(repeating: 0, count: n) }
        for e in 0..<sequenceCount {
            let (start, count) = sequence(e, n: n)
            if let gb = gateBias {
                var dg: Float = 0
                for k in (start * r)..<((start + count) * r) { dg += du[k] * u[k] }
                let dz = layerWeight * dg * g[e] * (1 - g[e])
                var real = 0
                for t in start..<(start + count) where isReal(t) { real += 1 }
                for t in start..<(start + count) where isReal(t) { wt[t] = dz / Float(max(1, real)) }
                if let gbg = gb.grad { gbg[0] += dz }
            }
            let f = layerWeight * g[e]
            for k in (start * r)..<((start + count) * r) { du[k] *= f }  // du = f · d(f u)
        }
        if let gw = gateWeight {
            if let gwg = gw.grad { BLAS.sgemm(transA: true, m: inDim, n: 1, k: n, a: x, lda: inDim, b: wt, ldb: 1, beta: 1, c: gwg.data, ldc: 1) }
            if let dx { BLAS.sgemm(m: n, n: inDim, k: 1, a: wt, lda: 1, b: gw.value.data, ldb: inDim, beta: 1, c: dx, ldc: inDim) }
        }
        if let gA = lora.a.grad { BLAS.sgemm(transA: true, m: r, n: inDim, k: n, a: du, lda: r, b: src, ldb: inDim, beta: 1, c: gA.data, ldc: inDim) }
        if let pe = perExample, lora.a.grad != nil { pe.addLinear(dy: du, x: src, outDim: r, inDim: inDim, param: lora.a) }
        if let dx { inputDropout.addInputGradient(du: du, a: lora.a.value.data, n: n, r: r, dx: dx) }
    }

    /// The dense update `w · s · B A` (the gate is not part of it: a gated adapter does not merge).
    public func delta() -> Tensor {
        let d = lora.delta()
        for i in 0..<d.count { d[i] *= layerWeight }
        return d
    }
}
