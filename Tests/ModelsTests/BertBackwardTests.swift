import Foundation
import Testing
@testable import Models
import RankwiseCore

/// Finite-difference check of the whole encoder backward on a tiny random BERT.
@Suite struct BertBackwardTests {
    static let cfg = BertConfig(hiddenSize: 8, numHeads: 2, numLayers: 2, intermediateSize: 16, hiddenAct: "gelu",
                                layerNormEps: 1e-12, vocabSize: 20, maxPositions: 10, typeVocabSize: 2,
                                hiddenDropout: 0.2, attentionDropout: 0.2)
    var input = TokenBatch(batch: 2, seq: 5, ids: [1, 4, 7, 3, 0, 1, 9, 9, 12, 2], typeIds: [0, 0, 1, 1, 0, 0, 0, 1, 1, 1],
                          mask: [1, 1, 1, 1, 0, 1, 1, 1, 1, 1])
    /// The same two sequences unpadded.
    static let packed = TokenBatch(packed: [[1, 4, 7, 3], [1, 9, 9, 12, 2]], typeIds: [[0, 0, 1, 1], [0, 0, 1, 1, 1]])

    /// L = Σ wL ⊙ lastHidden + Σ wP ⊙ pooled (fixed random weights), in Double.
    func loss(_ m: BertModel, training: Bool, wL: [Float], wP: [Float]) throws -> Double {
        let out = try m.forward(input, training: training, seed: 11)
        var s = 0.0
        for i in wL.indices { s += Double(wL[i]) * Double(out.lastHidden[i]) }
        for i in wP.indices { s += Double(wP[i]) * Double(out.pooled![i]) }
        return s
    }

    @Test(arguments: [false, true], [false, true])
    func everyParameterGradientMatchesFiniteDifferences(training: Bool, packed: Bool) throws {
        var t = self
        if packed { t.input = Self.packed }
        try t.checkGradients(training: training)
    }

    func checkGradients(training: Bool) throws {
        let m = try BertModel(config: Self.cfg, weights: RandomWeights(seed: 5, std: 0.3), withPooler: true)
        m.params.setTrainable { _ in true }
        var rng = SplitMix64(seed: 9)
        let H = Self.cfg.hiddenSize
        let wL = (0..<(input.layout.tokens * H)).map { _ in rng.nextNormal() }
        let wP = (0..<(input.batch * H)).map { _ in rng.nextNormal() }
        _ = try loss(m, training: training, wL: wL, wP: wP)
        let N = input.layout.tokens
        var dInput = [Float](repeating: 0, count: N * H)
        try m.backward(dLastHidden: wL, dPooled: wP, inputGrad: &dInput)
        let eps: Float = 2e-3
        for p in m.params.all {
            var a: [Float] = [], n: [Float] = []
            let step = max(1, p.count / 24)
            for i in stride(from: 0, to: p.count, by: step) {
                let orig = p.value[i]
                p.value[i] = orig + eps; let lp = try loss(m, training: training, wL: wL, wP: wP)
                p.value[i] = orig - eps; let lm = try loss(m, training: training, wL: wL, wP: wP)
                p.value[i] = orig
                n.append(Float((lp - lm) / Double(2 * eps)))
                a.append(p.grad![i])
            }
            let diff = zip(a, n).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
            let scale = max(a.map { $0 * $0 }.reduce(0, +).squareRoot(), n.map { $0 * $0 }.reduce(0, +).squareRoot())
            if p.name == "embeddings.word_embeddings.weight" && scale == 0 { continue }  // sampled rows unused
            if p.name.hasSuffix("attention.self.key.bias") {
                // Softmax is invariant to a per-row constant, so the key bias has exactly zero gradient.
                #expect(a.map { abs($0) }.max()! < 1e-4, "\(p.name): \(a)")
                continue
            }
            #expect(scale > 0.05, "\(p.name): gradient too small to check (\(scale))")
            // float32 central differences have a noise floor of ~1e-3 at this loss size
            #expect(diff <= 1e-2 * scale + 2e-3, "\(p.name) (training \(training), packed \(input.layout.isPacked)): |Δ| \(diff) vs |g| \(scale)")
        }
        // Input gradient: token 4 occurs once (row 0, position 1), so its word-embedding gradient row
        // equals the input gradient at that position.
        let g = m.wordEmb.grad!
        for j in 0..<H { #expect(abs(g[4 * H + j] - dInput[1 * H + j]) < 1e-6) }
        // and it matches finite differences of that embedding row
        for j in 0..<H {
            let orig = m.wordEmb.value[4 * H + j]
            m.wordEmb.value[4 * H + j] = orig + eps; let lp = try loss(m, training: training, wL: wL, wP: wP)
            m.wordEmb.value[4 * H + j] = orig - eps; let lm = try loss(m, training: training, wL: wL, wP: wP)
            m.wordEmb.value[4 * H + j] = orig
            let num = Float((lp - lm) / Double(2 * eps))
            #expect(abs(num - dInput[H + j]) <= 1e-2 * max(1, abs(num)), "input grad \(j): \(dInput[H + j]) vs \(num)")
        }
    }

    @Test func frozenParametersGetNoGradientAndTrainableOnesAgree() throws {
        let m = try BertModel(config: Self.cfg, weights: RandomWeights(seed: 5, std: 0.3), withPooler: true)
        var rng = SplitMix64(seed: 9)
        let N = input.batch * input.seq, H = Self.cfg.hiddenSize
        let wL = (0..<(N * H)).map { _ in rng.nextNormal() }
        m.params.setTrainable { _ in true }
        try m.forward(input)
        try m.backward(dLastHidden: wL, dPooled: nil)
        let full = m.params["encoder.layer.1.attention.self.query.weight"]!.grad!.array
        m.params.setTrainable { $0 == "encoder.layer.1.attention.self.query.weight" }
        #expect(m.params.trainableCount == H * H)
        try m.forward(input)
        try m.backward(dLastHidden: wL, dPooled: nil)
        let only = m.params["encoder.layer.1.attention.self.query.weight"]!.grad!.array
        #expect(zip(full, only).map { abs($0 - $1) }.max()! < 1e-6)
        #expect(m.params["encoder.layer.0.attention.self.query.weight"]!.grad == nil)
    }
}
