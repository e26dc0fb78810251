import Foundation
import Models
import RankwiseCore

/// The float32 floor of a training step on frozen weights: the products every method must run whatever its
/// adapters, each frozen linear's forward `X·Wᵀ` and input gradient `dY·W` (and the output projection's), timed
/// with this BLAS at the step's shapes. A step runs (almost) all of them: the lowest layer's query/key/value input
/// gradient and the output projection's rows without a target are skipped, about 0.5% of the bench's FLOPs. So their
/// time bounds the tokens/s a float32 implementation reaches here (attention, norms, adapters and the optimiser come
/// on top).
struct GemmFloor {
    /// Multiply-add FLOPs of the products per step.
    var flops: Double
    /// Seconds the products take back to back (median of 3 each, after a warm-up).
    var seconds: Double

    var gflopsPerSecond: Double { flops / seconds / 1e9 }

    /// Times `backbone`'s frozen products for `tokens` rows.
    static func measure(_ backbone: any Backbone, tokens: Int) -> GemmFloor {
        var shapes: [[Int]: Int] = [:]
        for linear in backbone.adaptableLinears { shapes[linear.weight.shape, default: 0] += 1 }
        if let decoder = backbone as? LanguageModelBackbone { shapes[decoder.outputProjection.shape, default: 0] += 1 }
        var flops = 0.0
        var seconds = 0.0
        for (shape, count) in shapes.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
            let (outputs, inputs) = (shape[0], shape[1])
            let weight = Tensor(zeros: [outputs, inputs])
            let activations = Tensor(zeros: [tokens, max(inputs, outputs)])
            let result = Tensor(zeros: [tokens, max(inputs, outputs)])
            var random = SplitMix64(seed: 3)
            for i in 0..<weight.count { weight.data[i] = random.nextFloat() - 0.5 }
            for i in 0..<activations.count { activations.data[i] = random.nextFloat() - 0.5 }
            func forward() {
                BLAS.sgemm(
                    transB: true, m: tokens, n: outputs, k: inputs, a: activations.data, lda: inputs, b: weight.data,
                    ldb: inputs, c: result.data, ldc: outputs)
            }
            func inputGradient() {
                BLAS.sgemm(
                    m: tokens, n: inputs, k: outputs, a: activations.data, lda: outputs, b: weight.data, ldb: inputs,
                    c: result.data, ldc: inputs)
            }
            for product in [forward, inputGradient] {
                product()
                let times = (0..<3).map { _ in
                    let start = DispatchTime.now().uptimeNanoseconds
                    product()
                    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                }
                seconds += Double(count) * times.sorted()[1]
                flops += Double(count) * 2 * Double(tokens) * Double(inputs) * Double(outputs)
            }
            withExtendedLifetime((weight, activations, result)) {}
        }
        return GemmFloor(flops: flops, seconds: seconds)
    }
}
