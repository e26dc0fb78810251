import Foundation
import Models
import RankwiseCore

/// Dynamic LoRA's adapter (our reading of Liao et al. 2025, whose equations are not public): LoRA whose
/// output is multiplied by its layer's weight `w` (set by the method from the layers' importance, not
/// trained) and, with the input gate on, by a per-sequence gate `g_e = sigmoid(v · mean_t x'_t + c)`:
///
///     y_t += w · g_e · s · B A x'_t      x' = dropout(x), for every token t of sequence e
///
/// The gate reads the adapter's own input x' (after its dropout, like A), so its logit is one more row of
/// A: `[A; v] x'` costs one rank more than LoRA. The mean runs over the sequence's real tokens (the
/// model's layout); `v` starts at 0 and `c` at `gateBias`, so g starts at sigmoid(c) ≈ 1.
///
/// On a causal backbone a token must not see the tokens after it, so the gate is per token there: token t
/// of sequence e gets `g_t = sigmoid(v · mean_{t' ≤ t} x'_t' + c)`, the mean over the real tokens so far.
public final class DynamicLoRAAdapter: LinearAdapter {
    public let lora: LoRAAdapter
    /// The layer weight (mean 1 over layers); not a parameter.
    public var layerWeight: Float = 1
    /// `lora_gate.weight` `[in]` and `lora_gate.bias` `[1]`, when the gate is on.
    public let gateWeight: Param?, gateBias: Param?
    let inDim: Int, outDim: Int
    let layout: () -> SequenceLayout?
    /// The gate reads the tokens so far (a causal backbone) instead of the whole sequence.
    public let causal: Bool
    public var params: [Param] { lora.params + [gateWeight, gateBias].compactMap { $0 } }
    public var perExample: PerExampleNorms?
    // Saved between forward and backward: [A; v] and x'[A; v]ᵀ [n, r+1], f·u [n, r], each sequence's gate [B],
    // each token's share of its sequence's mean [n] (1 / T_e for a real token, 0 for padding).
    private let avBuf = Scratch(), uvBuf = Scratch(), ufBuf = Scratch(), duBuf = Scratch(), duvBuf = Scratch(),
        gBuf = Scratch(), gradBuf = Scratch()
    private let shareBuf = Scratch()
    private var savedLayout: SequenceLayout?
    let inputDropout: InputDropout

    public init(
        path: String, inDim: Int, outDim: Int, config: LoRAConfig, a: Tensor, b: Tensor, gate: Bool,
        gateBiasInit: Float,
        causal: Bool = false, layout: @escaping () -> SequenceLayout?
    ) {
        self.inDim = inDim
        self.outDim = outDim
        self.layout = layout
        self.causal = causal
        lora = LoRAAdapter(path: path, inDim: inDim, outDim: outDim, config: config, a: a, b: b)
        inputDropout = InputDropout(p: config.dropout, inDim: inDim)
        gateWeight = gate ? Param(name: path + ".lora_gate.weight", value: Tensor(zeros: [inDim])) : nil
        gateBias =
            gate
            ? Param(
                name: path + ".lora_gate.bias", value: Tensor(shape: [1], values: [gateBiasInit]), role: .bias) : nil
    }

    /// The sequences of the current layout as `(first row, rows)`, or the whole batch as one sequence when
    /// there is no layout (a layer run on its own).
    var sequenceCount: Int { savedLayout.map { $0.count } ?? 1 }
    func sequence(_ e: Int, n: Int) -> (start: Int, count: Int) {
        guard let l = savedLayout else { return (0, n) }
        return (l.starts[e], l.lengths[e])
    }

    /// Each token's share of its sequence's mean: 1 / T_e for the T_e real tokens of sequence e, 0 for padding.
    func tokenShares(n: Int) -> UnsafeMutablePointer<Float> {
        let share = shareBuf.get(n)
        let mask = savedLayout?.keyMask
        for e in 0..<sequenceCount {
            let (start, count) = sequence(e, n: n)
            var real = count
            if let mask {
                real = 0
                for t in start..<(start + count) where mask[t] > 0 { real += 1 }
            }
            let w = 1 / Float(max(1, real))
            for t in start..<(start + count) { share[t] = mask.map { $0[t] > 0 ? w : 0 } ?? w }
        }
        return share
    }
    /// Rows of the down projection: A's r, and the gate's v when the gate is on.
    var rows: Int { lora.r + (gateWeight == nil ? 0 : 1) }

    // The layer weight and the gate scale each row of u = x' Aᵀ ([n, r], small) rather than the output
    // ([n, out]): w · g_e · s · (u Bᵀ) = s · ((w g_e u) Bᵀ). The gate's logit z_e = c + (1 / T_e) Σ_t (x' v)_t
    // over the sequence's T_e real tokens comes from the same product as u.
    public func forward(
        x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, n: Int, training: Bool, seed: UInt64,
        rowKeys: UnsafePointer<UInt64>?
    ) {
        savedLayout = layout()
        if let l = savedLayout, l.tokens != n { savedLayout = nil }
        let r = lora.r
        let k = rows
        let src = inputDropout.forward(x, n: n, training: training, seed: seed, rowKeys: rowKeys)
        let av = avBuf.get(k * inDim)
        let uv = uvBuf.get(n * k)
        let uf = ufBuf.get(n * r)
        av.update(from: lora.a.value.data, count: r * inDim)
        if let gw = gateWeight { (av + r * inDim).update(from: gw.value.data, count: inDim) }
        BLAS.sgemm(transB: true, m: n, n: k, k: inDim, a: src, lda: inDim, b: av, ldb: inDim, c: uv, ldc: k)
        if causal, gateBias != nil {
            causalGateForward(uv: uv, uf: uf, n: n)
            BLAS.sgemm(
                transB: true, m: n, n: outDim, k: r, alpha: lora.scaling, a: uf, lda: r, b: lora.b.value.data, ldb: r,
                beta: 1, c: y, ldc: outDim)
            return
        }
        let g = gBuf.get(sequenceCount)
        let share = gateBias == nil ? nil : tokenShares(n: n)
        for e in 0..<sequenceCount {
            let (start, count) = sequence(e, n: n)
            g[e] = 1
            if let gb = gateBias, let share {
                var z = gb.value[0]
                for t in start..<(start + count) { z += share[t] * uv[t * k + r] }
                g[e] = 1 / (1 + exp(-z))
            }
            let f = layerWeight * g[e]
            for t in start..<(start + count) { for j in 0..<r { uf[t * r + j] = f * uv[t * k + j] } }
        }
        BLAS.sgemm(
            transB: true, m: n, n: outDim, k: r, alpha: lora.scaling, a: uf, lda: r, b: lora.b.value.data, ldb: r,
            beta: 1, c: y, ldc: outDim)
    }

    public func backward(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?, n: Int) {
        let r = lora.r
        let k = rows
        let av = avBuf.get(k * inDim)
        let uv = uvBuf.get(n * k)
        let uf = ufBuf.get(n * r)
        let du = duBuf.get(n * r)
        let duv = duvBuf.get(n * k)
        let g = gBuf.get(causal && gateBias != nil ? n : sequenceCount)
        let share = shareBuf.get(n)
        let src = inputDropout.saved(x, n: n)
        if let gB = lora.b.grad {  // dB += s · dyᵀ (f u)
            BLAS.sgemm(
                transA: true, m: outDim, n: r, k: n, alpha: lora.scaling, a: dy, lda: outDim, b: uf, ldb: r, beta: 1,
                c: gB.data, ldc: r)
        }
        if let pe = perExample, lora.b.grad != nil {
            pe.addLinear(dy: dy, x: uf, outDim: outDim, inDim: r, scale: lora.scaling, param: lora.b)
        }
        BLAS.sgemm(
            // d(f u) = s · dy B
            m: n, n: r, k: outDim, alpha: lora.scaling, a: dy, lda: outDim, b: lora.b.value.data, ldb: r, c: du, ldc: r)
        if causal, gateBias != nil {
            causalGateBackward(uv: uv, du: du, duv: duv, n: n)
        } else {
            sequenceGateBackward(uv: uv, du: du, duv: duv, g: g, share: share, n: n)
        }
        // [dA; dv] += [du, w]ᵀ x', one product; then dx += mask ⊙ ([du, w] [A; v]).
        if lora.a.grad != nil || gateWeight?.grad != nil {
            let grad = gradBuf.get(k * inDim)
            BLAS.sgemm(transA: true, m: k, n: inDim, k: n, a: duv, lda: k, b: src, ldb: inDim, c: grad, ldc: inDim)
            if let gA = lora.a.grad { for i in 0..<(r * inDim) { gA[i] += grad[i] } }
            if let gv = gateWeight?.grad { for i in 0..<inDim { gv[i] += grad[r * inDim + i] } }
        }
        if let pe = perExample, lora.a.grad != nil {
            pe.addLinear(dy: du, x: src, outDim: r, inDim: inDim, param: lora.a)
        }
        if let dx { inputDropout.addInputGradient(du: duv, a: av, n: n, r: k, dx: dx) }
    }

    /// The whole-sequence gate's backward: fills `duv` (`[du, dz_e / T_e]` per token) and the gate bias's gradient.
    private func sequenceGateBackward(
        uv: UnsafePointer<Float>, du: UnsafeMutablePointer<Float>, duv: UnsafeMutablePointer<Float>,
        g: UnsafePointer<Float>, share: UnsafePointer<Float>, n: Int
    ) {
        let r = lora.r
        let k = rows
        // [du, dz_e / T_e]: du = f · d(f u) for A, and for v every real token t of sequence e gets
        // dz_e / T_e, with dL/dg_e = w · Σ_t d(f u)_t · u_t and dz_e = dg_e · g_e (1 − g_e).
        for e in 0..<sequenceCount {
            let (start, count) = sequence(e, n: n)
            let f = layerWeight * g[e]
            if let gb = gateBias {
                var dg: Float = 0
                for t in start..<(start + count) { for j in 0..<r { dg += du[t * r + j] * uv[t * k + j] } }
                let dz = layerWeight * dg * g[e] * (1 - g[e])
                for t in start..<(start + count) { duv[t * k + r] = dz * share[t] }
                if let gbg = gb.grad { gbg[0] += dz }
            }
            for t in start..<(start + count) {
                for j in 0..<r {
                    du[t * r + j] *= f
                    duv[t * k + j] = du[t * r + j]
                }
            }
        }
    }

    /// Whether row `t` is a real token (not padding) of the saved layout.
    private func isReal(_ t: Int) -> Bool { (savedLayout?.keyMask?[t] ?? 1) > 0 }

    /// The per-token causal gate: `g_t = sigmoid(c + S_t / C_t)` with `S_t` the sum of `(x' v)` and `C_t` the
    /// count over the real tokens up to t of its sequence; writes `uf = w g_t u` and keeps `g_t` in `gBuf`.
    private func causalGateForward(uv: UnsafePointer<Float>, uf: UnsafeMutablePointer<Float>, n: Int) {
        let r = lora.r
        let k = rows
        let gate = gBuf.get(n)
        let bias = gateBias!.value[0]
        for e in 0..<sequenceCount {
            let (start, count) = sequence(e, n: n)
            var sum: Float = 0
            var real: Float = 0
            for t in start..<(start + count) {
                if isReal(t) {
                    sum += uv[t * k + r]
                    real += 1
                }
                let z = bias + sum / max(real, 1)
                gate[t] = 1 / (1 + exp(-z))
                let scale = layerWeight * gate[t]
                for j in 0..<r { uf[t * r + j] = scale * uv[t * k + j] }
            }
        }
    }

    /// The causal gate's backward: `dz_t = w g_t (1 − g_t) Σ_j d(f u)_tj u_tj`, and a real token t' gets
    /// `Σ_{t ≥ t'} dz_t / C_t` in the gate's column of `duv` (a reverse running sum); `du` becomes `w g_t d(f u)`.
    private func causalGateBackward(
        uv: UnsafePointer<Float>, du: UnsafeMutablePointer<Float>, duv: UnsafeMutablePointer<Float>,
        n: Int
    ) {
        let r = lora.r
        let k = rows
        let gate = gBuf.get(n)
        var biasGradient: Float = 0
        for e in 0..<sequenceCount {
            let (start, count) = sequence(e, n: n)
            var realSoFar = [Float](repeating: 0, count: count)
            var real: Float = 0
            for t in start..<(start + count) {
                if isReal(t) { real += 1 }
                realSoFar[t - start] = max(real, 1)
            }
            var carried: Float = 0
            for t in stride(from: start + count - 1, through: start, by: -1) {
                var dg: Float = 0
                for j in 0..<r { dg += du[t * r + j] * uv[t * k + j] }
                let dz = layerWeight * dg * gate[t] * (1 - gate[t])
                biasGradient += dz
                carried += dz / realSoFar[t - start]
                duv[t * k + r] = isReal(t) ? carried : 0
                let scale = layerWeight * gate[t]
                for j in 0..<r {
                    du[t * r + j] *= scale
                    duv[t * k + j] = du[t * r + j]
                }
            }
        }
        if let biasGrad = gateBias!.grad { biasGrad[0] += biasGradient }
    }

    /// The dense update `w · s · B A` (the gate is not part of it: a gated adapter does not merge).
    public func delta() -> Tensor {
        let d = lora.delta()
        for i in 0..<d.count { d[i] *= layerWeight }
        return d
    }

    /// LoRA's factors with the layer weight folded into B; nil with an input gate (its output depends on the input).
    public func lowRankFactors() -> (b: Tensor, a: Tensor)? {
        guard gateWeight == nil, let (factorB, factorA) = lora.lowRankFactors() else { return nil }
        for index in 0..<factorB.count { factorB[index] *= layerWeight }
        return (factorB, factorA)
    }
}
