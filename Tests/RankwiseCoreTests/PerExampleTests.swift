import Testing
@testable import RankwiseCore

/// The batched per-example gradient norm against per-example gradients formed one by one.
@Suite struct PerExampleTests {
    @Test(arguments: [(3, 2), (4, 40), (40, 3)]) func gramTrickEqualsMaterialisedGradients(_ dims: (Int, Int)) throws {
        try BLAS.load()
        let (outDim, inDim) = dims
        let layout = SequenceLayout.packed(lengths: [1, 5, 2, 7])
        var rng = SplitMix64(seed: 4)
        let x = (0..<(layout.tokens * inDim)).map { _ in rng.nextNormal() }
        let dy = (0..<(layout.tokens * outDim)).map { _ in rng.nextNormal() }
        var fast = [Float](repeating: 0, count: layout.count)
        var scratch = [Float](repeating: 0, count: PerExample.scratchCount(layout: layout, outDim: outDim, inDim: inDim))
        PerExample.addGradNormSquared(dy: dy, x: x, outDim: outDim, inDim: inDim, layout: layout, scratch: &scratch, into: &fast)
        for b in 0..<layout.count {
            var g = [Double](repeating: 0, count: outDim * inDim)  // Σ_t dy_t x_tᵀ of this sequence, in Double
            for t in layout.starts[b]..<(layout.starts[b] + layout.lengths[b]) {
                for o in 0..<outDim { for i in 0..<inDim { g[o * inDim + i] += Double(dy[t * outDim + o]) * Double(x[t * inDim + i]) } }
            }
            let exact = g.reduce(0) { $0 + $1 * $1 }
            #expect(abs(Double(fast[b]) - exact) <= 1e-4 * max(1, exact), "sequence \(b): \(fast[b]) vs \(exact)")
        }
        // By hand: one token, dy = (1, 2), x = (3): gradient (3, 6), squared norm 45.
        var one: [Float] = [0]
        var s = [Float](repeating: 0, count: 4)
        PerExample.addGradNormSquared(dy: [1, 2], x: [3], outDim: 2, inDim: 1, layout: .packed(lengths: [1]), scratch: &s, into: &one)
        #expect(one == [45])
    }
}
