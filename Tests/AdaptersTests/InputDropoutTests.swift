import Foundation
import Testing
@testable import Adapters
@testable import Models
import RankwiseCore

/// Every adapter with its input dropout on (p = 0.3, a fixed seed, so the mask is the same in every
/// evaluation): the gradients of Σ c ⊙ y with respect to each parameter and to the input match central
/// differences. One test for the dropout step the adapters share (`InputDropout`). DoRA's A and B are
/// left out: PEFT detaches the weight norm, so their gradient is not the loss's derivative by design
/// (the PEFT fixture checks them); its magnitude and input gradients are exact.
@Suite struct InputDropoutTests {
    static let kinds = ["lora", "svd", "sora", "dynamic", "dora"]

    @Test(arguments: Self.kinds) func gradientsWithDropoutMatchFiniteDifferences(_ kind: String) throws {
        try BLAS.load()
        var rng = SplitMix64(seed: 21)
        func rand(_ n: Int, _ scale: Float = 1) -> Tensor { Tensor(shape: [n], values: (0..<n).map { _ in scale * (rng.nextFloat() - 0.5) }) }
        let (inD, outD, r, n) = (5, 4, 3, 6)
        let cfg = LoRAConfig(r: r, alpha: 6, dropout: 0.3, targetModules: ["l"])
        func shaped(_ t: Tensor, _ s: [Int]) -> Tensor { Tensor(shape: s, values: t.array) }
        let a = shaped(rand(r * inD), [r, inD]), b = shaped(rand(outD * r), [outD, r])
        let lin = Linear(path: "l", weight: Param(name: "w", value: shaped(rand(outD * inD), [outD, inD])), bias: Param(name: "bias", value: rand(outD)))
        let ad: LinearAdapter
        switch kind {
        case "lora": ad = LoRAAdapter(path: "l", inDim: inD, outDim: outD, config: cfg, a: a, b: b)
        case "svd": ad = SVDAdapter(path: "l", inDim: inD, outDim: outD, rMax: r, initialRank: r, alpha: 6, dropout: 0.3, a: a, e: shaped(rand(r), [r, 1]), b: b)
        case "sora": ad = SoRAAdapter(path: "l", inDim: inD, outDim: outD, r: r, scaling: 2, dropout: 0.3, a: a, b: b, gate: rand(r, 2))
        case "dynamic":
            let layout = SequenceLayout.packed(lengths: [2, 4])
            let d = DynamicLoRAAdapter(path: "l", inDim: inD, outDim: outD, config: cfg, a: a, b: b, gate: true, gateBiasInit: 0.2, layout: { layout })
            d.layerWeight = 1.3
            _ = d.gateWeight!.value.buffer.update(from: rand(inD, 2).array)
            ad = d
        default: ad = DoRAAdapter(path: "l", layer: lin, config: cfg, a: a, b: b, magnitude: rand(outD, 4))
        }
        lin.adapter = ad
        let ps = ParameterSet()
        for p in ad.params { ps.add(p) }
        ps.setTrainable { _ in true }
        let x = rand(n * inD).array, c = rand(n * outD).array
        func loss(_ xs: [Float]) -> Float {
            var y = [Float](repeating: 0, count: n * outD)
            lin.forward(xs, &y, n: n, training: true, seed: 7)
            return zip(y, c).map { $0 * $1 }.reduce(0, +)
        }
        _ = loss(x)
        var dx = [Float](repeating: 0, count: n * inD)
        lin.backward(dy: c, x: x, dx: &dx, n: n)
        let h: Float = 1e-2
        var dropped = 0
        for p in ad.params where !(kind == "dora" && p.name.contains("lora_")) || p.name.contains("magnitude") {
            let g = p.grad!.array
            for k in 0..<p.count {
                let v = p.value[k]
                p.value[k] = v + h; let up = loss(x); p.value[k] = v - h; let down = loss(x); p.value[k] = v
                #expect(abs((up - down) / (2 * h) - g[k]) < 3e-3 * max(1, abs(g[k])), "\(kind) \(p.name)[\(k)]: \((up - down) / (2 * h)) vs \(g[k])")
            }
        }
        for i in 0..<(n * inD) {
            var xu = x, xd = x
            xu[i] += h; xd[i] -= h
            let fd = (loss(xu) - loss(xd)) / (2 * h)
            #expect(abs(fd - dx[i]) < 3e-3 * max(1, abs(dx[i])), "\(kind) dx[\(i)]: \(fd) vs \(dx[i])")
        }
        // The mask really dropped something: without dropout the output differs.
        var y1 = [Float](repeating: 0, count: n * outD), y2 = y1
        lin.forward(x, &y1, n: n, training: true, seed: 7)
        lin.forward(x, &y2, n: n, training: false, seed: 7)
        for k in 0..<(n * outD) where abs(y1[k] - y2[k]) > 1e-6 { dropped += 1 }
        #expect(dropped > 0, "\(kind): dropout changed nothing")
    }

    /// The kernel draws what `Ops.dropoutRowsForward` draws for the same row keys (row by row, over many chunks
    /// and rows that straddle words of bits); `saved` rebuilds it and `addMasked` uses it; a row's mask follows its
    /// key, not its place in the batch.
    @Test(arguments: [0.05, 0.5] as [Float]) func rowKeyedDrawsAreTheReferenceDraws(_ p: Float) {
        let (n, inDim) = (301, 577)
        let count = n * inDim
        var random = SplitMix64(seed: 5)
        let x = (0..<count).map { _ in random.nextFloat() - 0.5 }
        let keys = (0..<n).map { DropoutKeys.token(example: UInt64($0 % 7), position: $0) }
        var expected = [Float](repeating: 0, count: count)
        var mask = [Float](repeating: 0, count: count)
        Ops.dropoutRowsForward(x: x, y: &expected, mask: &mask, rows: n, width: inDim, p: p, seed: 99) { keys[$0] }
        let dropout = InputDropout(p: p, inDim: inDim)
        x.withUnsafeBufferPointer { input in
            let dropped = keys.withUnsafeBufferPointer {
                Array(UnsafeBufferPointer(
                    start: dropout.forward(input.baseAddress!, n: n, training: true, seed: 99, rowKeys: $0.baseAddress),
                    count: count))
            }
            #expect((0..<count).allSatisfy { dropped[$0] == expected[$0] }, "forward differs from the reference draws")
            let rebuilt = dropout.saved(input.baseAddress!, n: n)
            #expect((0..<count).allSatisfy { rebuilt[$0] == expected[$0] }, "saved differs from forward")
            var gradient = [Float](repeating: 1, count: count)
            dropout.addMasked(input.baseAddress!, n: n, dx: &gradient)
            #expect((0..<count).allSatisfy { gradient[$0] == 1 + x[$0] * mask[$0] }, "addMasked used another mask")
            // Rows 10 and 200 alone, in the other order: each keeps its mask.
            let pair = Array(x[(200 * inDim)..<(201 * inDim)] + x[(10 * inDim)..<(11 * inDim)])
            let pairKeys = [keys[200], keys[10]]
            pair.withUnsafeBufferPointer { pairInput in
                pairKeys.withUnsafeBufferPointer { keyPointer in
                    let out = dropout.forward(pairInput.baseAddress!, n: 2, training: true, seed: 99, rowKeys: keyPointer.baseAddress)
                    #expect((0..<inDim).allSatisfy { out[$0] == expected[200 * inDim + $0] })
                    #expect((0..<inDim).allSatisfy { out[inDim + $0] == expected[10 * inDim + $0] })
                }
            }
        }
        let kept = mask.filter { $0 != 0 }.count
        #expect(abs(Double(kept) / Double(count) - Double(1 - p)) < 0.01)
    }
}
