import Adapters
import Foundation
import Models
import RankwiseCore
import SafeTensors
import Training

/// AdaLoRA's smoothed sensitivity of adapter parameters, shared by the methods that score ranks with
/// it (AdaLoRA, ElaLoRA): per element, `I = EMA_β1 |p·g|` and `U = EMA_β2 |(|p·g|) − I|` (U uses the
/// freshly updated I), and a rank's score is `I·U` of its E plus the mean of `I·U` over its A row and
/// over its B column.
public final class Sensitivity {
    public let beta1: Float, beta2: Float
    var ipt: [ObjectIdentifier: Tensor] = [:]
    var unc: [ObjectIdentifier: Tensor] = [:]

    public init(beta1: Float, beta2: Float) {
        self.beta1 = beta1
        self.beta2 = beta2
    }

    /// Folds the current gradients of `params` into the averages.
    public func update(_ params: [Param]) {
        let b1 = beta1
        let b2 = beta2
        for p in params {
            guard let g = p.grad else { continue }
            let id = ObjectIdentifier(p)
            let pi =
                (ipt[id]
                ?? {
                    let t = Tensor(zeros: p.shape)
                    ipt[id] = t
                    return t
                }()).data
            let pu =
                (unc[id]
                ?? {
                    let t = Tensor(zeros: p.shape)
                    unc[id] = t
                    return t
                }()).data
            let w = p.value.data
            let gd = g.data
            for i in 0..<p.count {
                let s = abs(w[i] * gd[i])
                pi[i] = b1 * pi[i] + (1 - b1) * s
                pu[i] = b2 * pu[i] + (1 - b2) * abs(s - pi[i])
            }
        }
    }

    public func reset() {
        ipt = [:]
        unc = [:]
    }

    /// Forgets rank `j` of `ad` (its A row, E entry and B column start from zero again).
    public func resetRank(_ ad: SVDAdapter, _ j: Int) { resetRank(a: ad.a, b: ad.b, e: ad.e, j) }

    /// Forgets rank `j` of A `[R, in]`, B `[out, R]` and, when given, E `[R]`.
    public func resetRank(a: Param, b: Param, e: Param? = nil, _ j: Int) {
        let (inD, outD, R) = (a.shape[1], b.shape[0], a.shape[0])
        for d in [ipt, unc] {
            if let t = d[ObjectIdentifier(a)] { for k in 0..<inD { t[j * inD + k] = 0 } }
            if let e, let t = d[ObjectIdentifier(e)] { t[j] = 0 }
            if let t = d[ObjectIdentifier(b)] { for o in 0..<outD { t[o * R + j] = 0 } }
        }
    }

    /// I·U of every element of `p` (zeros before its first update).
    func scores(_ p: Param) -> [Float] {
        let id = ObjectIdentifier(p)
        guard let i = ipt[id], let u = unc[id] else { return [Float](repeating: 0, count: p.count) }
        return (0..<p.count).map { i[$0] * u[$0] }
    }

    /// Score of every rank of A `[R, in]` and B `[out, R]`: the mean of I·U over its A row plus over its B column.
    public func rankScores(a: Param, b: Param) -> [Float] {
        let sa = scores(a)
        let sb = scores(b)
        let (inD, outD, R) = (a.shape[1], b.shape[0], a.shape[0])
        return (0..<R).map { j in
            var ma: Float = 0
            for k in 0..<inD { ma += sa[j * inD + k] }
            var mb: Float = 0
            for k in 0..<outD { mb += sb[k * R + j] }
            return ma / Float(inD) + mb / Float(outD)
        }
    }

    /// Score of every rank of `ad`: E's score + mean of A's row + mean of B's column.
    public func tripletScores(_ ad: SVDAdapter) -> [Float] {
        let se = scores(ad.e)
        return zip(se, rankScores(a: ad.a, b: ad.b)).map { $0 + $1 }
    }

    /// Checkpoint tensors `<prefix>ipt.<param>` and `<prefix>unc.<param>` for the params that have averages.
    public func checkpointTensors(_ params: [Param], prefix: String) -> [TensorToWrite] {
        params.flatMap { p -> [TensorToWrite] in
            guard let i = ipt[ObjectIdentifier(p)], let u = unc[ObjectIdentifier(p)] else { return [] }
            return [
                TensorToWrite(name: prefix + "ipt." + p.name, shape: p.shape, floats: i.array),
                TensorToWrite(name: prefix + "unc." + p.name, shape: p.shape, floats: u.array),
            ]
        }
    }

    public func restore(_ params: [Param], prefix: String, from f: CheckpointSection) throws {
        reset()
        for p in params where f.contains(prefix + "ipt." + p.name) {
            ipt[ObjectIdentifier(p)] = Tensor(
                shape: p.shape, values: try f.floats(prefix + "ipt." + p.name, count: p.count))
            unc[ObjectIdentifier(p)] = Tensor(
                shape: p.shape, values: try f.floats(prefix + "unc." + p.name, count: p.count))
        }
    }
}
