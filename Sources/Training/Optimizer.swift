import Foundation
import Models
import RankwiseCore

/// AdamW exactly as PyTorch defines it: decoupled weight decay `p -= lr·wd·p`, then
/// `p -= lr · m̂ / (√v̂ + eps)` with bias-corrected moments.
public final class AdamW {
    public var beta1: Float, beta2: Float, eps: Float, weightDecay: Float
    /// Number of steps taken (PyTorch's `state["step"]`).
    public private(set) var t: Int = 0
    /// Moments, one flat buffer each, laid out like the parameter set's gradient buffer.
    public let m: Tensor, v: Tensor
    let params: [Param]

    public init(
        params: ParameterSet, beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8, weightDecay: Float = 0
    ) {
        self.params = params.trainable
        let n = self.params.reduce(0) { $0 + $1.count }
        m = Tensor(zeros: [n])
        v = Tensor(zeros: [n])
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weightDecay = weightDecay
    }

    /// Parameters with no weight decay (biases and layer norms, as is customary).
    public var noDecay: (Param) -> Bool = { $0.role != .weight }

    public func step(lr: Float) {
        t += 1
        let bc1 = 1 - pow(beta1, Float(t))
        let bc2 = 1 - pow(beta2, Float(t))
        let stepSize = lr / bc1
        let bc2Sqrt = bc2.squareRoot()
        var off = 0
        for p in params {
            let g = p.grad!.data
            let w = p.value.data
            let mm = m.data + off
            let vv = v.data + off
            let decay = noDecay(p) ? 1 : 1 - lr * weightDecay
            let (b1, b2, e) = (beta1, beta2, eps)
            for i in 0..<p.count {
                w[i] *= decay
                mm[i] = b1 * mm[i] + (1 - b1) * g[i]
                vv[i] = b2 * vv[i] + (1 - b2) * g[i] * g[i]
                w[i] -= stepSize * mm[i] / (vv[i].squareRoot() / bc2Sqrt + e)
            }
            off += p.count
        }
    }

    /// Zeroes the moments of element `index` of `param` (a pruned or regrown rank starts fresh).
    public func resetMoments(_ param: Param, _ index: Int) { resetMoments(param, [index]) }

    /// Zeroes the moments of the given elements of `param` (one lookup of its slice).
    public func resetMoments(_ param: Param, _ indices: some Sequence<Int>) {
        var off = 0
        for p in params {
            if p === param {
                for i in indices {
                    m[off + i] = 0
                    v[off + i] = 0
                }
                return
            }
            off += p.count
        }
    }

    /// Restores the step count (moments are restored through `m` and `v`).
    public func restore(t: Int) { self.t = t }

    /// Moment slices by parameter name, for checkpoints.
    public var slices: [(Param, Int)] {
        var off = 0
        return params.map { p in
            defer { off += p.count }
            return (p, off)
        }
    }
}

/// Learning-rate schedules with linear warmup, as Hugging Face's `get_*_schedule_with_warmup`.
public enum Schedule: String, Sendable, SettingChoice {
    case linear, cosine, constant

    /// Multiplier of the base learning rate at optimizer step `step` (0-based) of `total`.
    public func factor(step: Int, warmup: Int, total: Int) -> Float {
        if step < warmup { return Float(step) / Float(max(1, warmup)) }
        let progress = Float(step - warmup) / Float(max(1, total - warmup))
        switch self {
        case .linear: return max(0, 1 - progress)
        case .cosine: return max(0, 0.5 * (1 + cos(Float.pi * progress)))
        case .constant: return 1
        }
    }
}

/// Scales all gradients so their global L2 norm is at most `maxNorm`; returns the norm before clipping.
@discardableResult
public func clipGradNorm(_ params: ParameterSet, maxNorm: Float) -> Float {
    guard let g = params.gradBuffer else { return 0 }
    var s: Double = 0
    for i in 0..<g.count { s += Double(g[i]) * Double(g[i]) }
    let norm = Float(s.squareRoot())
    if maxNorm > 0 && norm > maxNorm {
        let c = maxNorm / (norm + 1e-6)
        for i in 0..<g.count { g[i] *= c }
    }
    return norm
}
