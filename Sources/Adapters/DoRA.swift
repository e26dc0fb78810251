import Foundation
import Models
import RankwiseCore

/// DoRA (Liu et al. 2024) as PEFT implements it (`LoraConfig(use_dora=True)`): the adapted weight is
/// `m ⊙ (W + s·B A) / ‖W + s·B A‖` row by row (m: a trainable magnitude per output, initialised to the
/// rows' norms of W), with the norm detached from the gradient as PEFT does. On top of the frozen layer's
/// output `x Wᵀ + b` the adapter adds
///
///     (k − 1) ⊙ (x' Wᵀ) + k ⊙ s·(x' Aᵀ) Bᵀ,   k = m / ‖W + s·B A‖,   x' = dropout(x)
///
/// (without dropout `x' Wᵀ` is the layer's own output minus its bias, as in PEFT). The low-rank path is a
/// `LoRAAdapter` run on x', so A and B keep LoRA's initialisation, names and export.
public final class DoRAAdapter: LinearAdapter {
    public let lora: LoRAAdapter
    /// `lora_magnitude_vector` `[out]`.
    public let magnitude: Param
    let weight: Param, bias: Param?
    let inDim: Int, outDim: Int
    public var params: [Param] { lora.params + [magnitude] }
    public var perExample: PerExampleNorms?
    // Saved between forward and backward: k and the norms [out], x' Wᵀ and the low-rank output [n, out], x' and its
    // mask [n, in].
    private let kBuf = Scratch(), normBuf = Scratch(), wBuf = Scratch(), baseBuf = Scratch(), lowBuf = Scratch()
    private let dxdBuf = Scratch(), dyBuf = Scratch()
    /// x' = dropout(x), its own: the inner LoRA runs without dropout on x'.
    let inputDropout: InputDropout

    public init(path: String, layer: Linear, config: LoRAConfig, a: Tensor, b: Tensor, magnitude m: Tensor) {
        inDim = layer.inDim
        outDim = layer.outDim
        weight = layer.weight
        bias = layer.bias
        lora = LoRAAdapter(path: path, inDim: inDim, outDim: outDim, config: config, a: a, b: b)
        inputDropout = InputDropout(p: config.dropout, inDim: inDim)
        magnitude = Param(name: path + ".lora_magnitude_vector", value: m)
    }

    /// The rows' norms of `W + s·B A` (into `norms`) and, when `merged` is given, that matrix itself.
    func weightNorms(_ norms: UnsafeMutablePointer<Float>, merged: UnsafeMutablePointer<Float>? = nil) {
        let w = merged ?? wBuf.get(outDim * inDim)
        w.update(from: weight.value.data, count: outDim * inDim)
        BLAS.sgemm(
            m: outDim, n: inDim, k: lora.r, alpha: lora.scaling, a: lora.b.value.data, lda: lora.r,
            b: lora.a.value.data, ldb: inDim,
            beta: 1, c: w, ldc: inDim)
        for o in 0..<outDim {
            var s: Float = 0
            for i in 0..<inDim { s += w[o * inDim + i] * w[o * inDim + i] }
            norms[o] = s.squareRoot()
        }
    }

    public func forward(
        x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, n: Int, training: Bool, seed: UInt64,
        rowKeys: UnsafePointer<UInt64>?
    ) {
        let k = kBuf.get(outDim)
        let norm = normBuf.get(outDim)
        weightNorms(norm)
        for o in 0..<outDim { k[o] = magnitude.value[o] / norm[o] }
        let base = baseBuf.get(n * outDim)
        let src = inputDropout.forward(x, n: n, training: training, seed: seed, rowKeys: rowKeys)
        if inputDropout.isOn {  // x' = dropout(x): x' Wᵀ computed here
            BLAS.sgemm(
                transB: true, m: n, n: outDim, k: inDim, a: src, lda: inDim, b: weight.value.data, ldb: inDim, c: base,
                ldc: outDim)
        } else {  // the layer's output without its bias
            base.update(from: y, count: n * outDim)
            if let b = bias { for t in 0..<n { for o in 0..<outDim { base[t * outDim + o] -= b.value[o] } } }
        }
        let low = lowBuf.get(n * outDim)
        low.update(repeating: 0, count: n * outDim)
        lora.forward(x: src, y: low, n: n, training: false, seed: seed)
        for t in 0..<n {
            for o in 0..<outDim { y[t * outDim + o] += (k[o] - 1) * base[t * outDim + o] + k[o] * low[t * outDim + o] }
        }
    }

    public func backward(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?, n: Int) {
        let k = kBuf.get(outDim)
        let norm = normBuf.get(outDim)
        let base = baseBuf.get(n * outDim)
        let low = lowBuf.get(n * outDim)
        let src = inputDropout.saved(x, n: n)
        // dm = Σ_t dy ⊙ (x' Wᵀ + low) / ‖·‖ (the norm is a constant to the gradient, as in PEFT)
        let v = dyBuf.get(n * outDim)
        for t in 0..<n {
            for o in 0..<outDim { v[t * outDim + o] = (base[t * outDim + o] + low[t * outDim + o]) / norm[o] }
        }
        if let gm = magnitude.grad {
            for t in 0..<n { for o in 0..<outDim { gm[o] += dy[t * outDim + o] * v[t * outDim + o] } }
        }
        if let pe = perExample, magnitude.grad != nil { pe.addVector(dy, v, d: outDim, param: magnitude) }
        // x' gets (dy ⊙ (k − 1)) W from the base term; the low-rank path, which sees dy ⊙ k, adds its part.
        let dxd = dx == nil ? nil : dxdBuf.get(n * inDim)
        if let dxd {
            for t in 0..<n { for o in 0..<outDim { v[t * outDim + o] = dy[t * outDim + o] * (k[o] - 1) } }
            BLAS.sgemm(
                m: n, n: inDim, k: outDim, a: v, lda: outDim, b: weight.value.data, ldb: inDim, c: dxd, ldc: inDim)
        }
        for t in 0..<n { for o in 0..<outDim { v[t * outDim + o] = dy[t * outDim + o] * k[o] } }
        lora.perExample = perExample
        lora.backward(dy: v, x: src, dx: dxd, n: n)
        if let dx, let dxd { inputDropout.addMasked(dxd, n: n, dx: dx) }
    }

    /// The dense update that merging adds to W: `k ⊙ (W + s·B A) − W` with k = m / ‖W + s·B A‖.
    public func delta() -> Tensor {
        let d = Tensor(zeros: [outDim, inDim])
        let norm = normBuf.get(outDim)
        weightNorms(norm, merged: d.data)
        for o in 0..<outDim {
            let k = magnitude.value[o] / norm[o]
            for i in 0..<inDim { d[o * inDim + i] = k * d[o * inDim + i] - weight.value[o * inDim + i] }
        }
        return d
    }
}
