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
    // Saved between forward and backward: the LoRA output without w and g [n, out], each sequence's mean input [B, in] and gate [B].
    private let lowBuf = Scratch(), meanBuf = Scratch(), gBuf = Scratch(), dyBuf = Scratch()
    private var savedLayout: SequenceLayout?

    public init(path: String, inDim: Int, outDim: Int, config: LoRAConfig, a: Tensor, b: Tensor, gate: Bool, gateBiasInit: Float,
                layout: @escaping () -> SequenceLayout?) {
        self.inDim = inDim; self.outDim = outDim; self.layout = layout
        lora = LoRAAdapter(path: path, inDim: inDim, outDim: outDim, config: config, a: a, b: b)
        gateWeight = gate ? Param(name: path + ".lora_gate.weight", value: Tensor(zeros: [inDim])) : nil
        gateBias = gate ? Param(name: path + ".lora_gate.bias", value: Tensor(shape: [1], values: [gateBiasInit])) : nil
    }

    /// One gate per sequence: `(sequence index, first row, rows, real rows)` of the current layout, or the
    /// whole batch as one sequence when there is no layout (a layer run on its own).
    func sequences(_ n: Int) -> [(Int, Int, Int, [Int])] {
        guard let l = savedLayout, l.tokens == n else { return [(0, 0, n, Array(0..<n))] }
        return (0..<l.count).map { e in
            let rows = (l.starts[e]..<(l.starts[e] + l.lengths[e])).filter { l.keyMask == nil || l.keyMask![$0] > 0 }
            return (e, l.starts[e], l.lengths[e], rows)
        }
    }

    public func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, n: Int, training: Bool, seed: UInt64) {
        savedLayout = layout()
        let low = lowBuf.get(n * outDim)
        low.update(repeating: 0, count: n * outDim)
        lora.forward(x: x, y: low, n: n, training: training, seed: seed)
        let seqs = sequences(n)
        let g = gBuf.get(seqs.count), mean = meanBuf.get(seqs.count * inDim)
        for (e, _, _, rows) in seqs {
            g[e] = 1
            guard let gw = gateWeight, let gb = gateBias else { continue }
            let m = mean + e * inDim
            m.update(repeating: 0, count: inDim)
            for t in rows { for i in 0..<inDim { m[i] += x[t * inDim + i] } }
            var z = gb.value[0]
            for i in 0..<inDim { m[i] /= Float(max(1, rows.count)); z += gw.value[i] * m[i] }
            g[e] = 1 / (1 + exp(-z))
        }
        for (e, start, count, _) in seqs {
            let f = layerWeight * g[e]
            for t in start..<(start + count) { for o in 0..<outDim { y[t * outDim + o] += f * low[t * outDim + o] } }
        }
    }

    public func backward(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?, n: Int) {
        let low = lowBuf.get(n * outDim), seqs = sequences(n)
        let g = gBuf.get(seqs.count), mean = meanBuf.get(seqs.count * inDim)
        // The gate: dL/dg_e = w · Σ_t dy_t · low_t, dz = dg · g (1 − g).
        if let gw = gateWeight, let gb = gateBias {
            for (e, start, count, rows) in seqs {
                var dg: Float = 0
                for t in start..<(start + count) { for o in 0..<outDim { dg += dy[t * outDim + o] * low[t * outDim + o] } }
                let dz = layerWeight * dg * g[e] * (1 - g[e])
                if let gwg = gw.grad { for i in 0..<inDim { gwg[i] += dz * mean[e * inDim + i] } }
                if let gbg = gb.grad { gbg[0] += dz }
                if let dx { for t in rows { for i in 0..<inDim { dx[t * inDim + i] += dz * gw.value[i] / Float(max(1, rows.count)) } } }
            }
        }
        // The LoRA path sees dy · w · g_e.
        let d = dyBuf.get(n * outDim)
        for (e, start, count, _) in seqs {
            let f = layerWeight * g[e]
            for t in start..<(start + count) { for o in 0..<outDim { d[t * outDim + o] = f * dy[t * outDim + o] } }
        }
        lora.perExample = perExample
        lora.backward(dy: d, x: x, dx: dx, n: n)
    }

    /// The dense update `w · s · B A` (the gate is not part of it: a gated adapter does not merge).
    public func delta() -> Tensor {
        let d = lora.delta()
        for i in 0..<d.count { d[i] *= layerWeight }
        return d
    }
}
