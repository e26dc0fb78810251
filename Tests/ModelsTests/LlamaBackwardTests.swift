import Foundation
import Testing

@testable import Models
import RankwiseCore

/// Finite-difference check of the whole decoder backward on a tiny random LLaMA (6 query heads over 2 key/value
/// heads, untied output), padded-free packed sequences of different lengths; causality checked directly.
@Suite struct LlamaBackwardTests {
    static let config = LlamaConfig(
        vocabSize: 23, hiddenSize: 12, intermediateSize: 20, numLayers: 2, numHeads: 6, numKeyValueHeads: 2,
        ropeTheta: 10_000, rmsNormEps: 1e-5, maxPositions: 16, tieWordEmbeddings: false)
    static let batch = TokenBatch(packed: [[1, 4, 7, 3], [2, 9, 9, 12, 5, 0]])

    func loss(_ model: LlamaModel, _ weights: [Float]) throws -> Double {
        let output = try model.forward(Self.batch, training: true, seed: 3)
        var sum = 0.0
        for i in weights.indices { sum += Double(weights[i]) * Double(output.lastHidden[i]) }
        return sum
    }

    @Test func everyParameterGradientMatchesFiniteDifferences() throws {
        let model = try LlamaModel(config: Self.config, weights: RandomWeights(seed: 5, std: 0.3))
        model.params.setTrainable { _ in true }
        var rng = SplitMix64(seed: 9)
        let hidden = Self.config.hiddenSize
        let tokens = Self.batch.layout.tokens
        let weights = (0..<(tokens * hidden)).map { _ in rng.nextNormal() }
        _ = try loss(model, weights)
        var inputGradient = [Float](repeating: 0, count: tokens * hidden)
        try model.backward(dLastHidden: weights, dPooled: nil, inputGrad: &inputGradient)
        let eps: Float = 2e-3
        var checked = 0
        for parameter in model.params.all where parameter.name != "lm_head.weight" {
            var analytic: [Float] = []
            var numeric: [Float] = []
            let step = max(1, parameter.count / 24)
            for i in stride(from: 0, to: parameter.count, by: step) {
                let original = parameter.value[i]
                parameter.value[i] = original + eps
                let plus = try loss(model, weights)
                parameter.value[i] = original - eps
                let minus = try loss(model, weights)
                parameter.value[i] = original
                numeric.append(Float((plus - minus) / Double(2 * eps)))
                analytic.append(parameter.grad![i])
            }
            let difference = zip(analytic, numeric).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
            let scale = max(
                analytic.map { $0 * $0 }.reduce(0, +).squareRoot(), numeric.map { $0 * $0 }.reduce(0, +).squareRoot())
            if parameter.name == "model.embed_tokens.weight" && scale == 0 { continue }  // sampled rows unused
            #expect(scale > 0.05, "\(parameter.name): gradient too small to check (\(scale))")
            #expect(difference <= 1e-2 * scale + 2e-3, "\(parameter.name): |Δ| \(difference) vs |g| \(scale); \(analytic.prefix(3)) \(numeric.prefix(3))")
            checked += 1
        }
        #expect(checked == 1 + 2 * 9 + 1)
        // Token 4 occurs once (row 0, position 1): its embedding gradient row is the input gradient there.
        let embeddingGradient = model.embedding.grad!
        for j in 0..<hidden { #expect(abs(embeddingGradient[4 * hidden + j] - inputGradient[hidden + j]) < 1e-6) }
    }

    /// With only the top block trainable and no input gradient, backward stops early and gives that block exactly
    /// the gradients it gets when everything is trainable.
    @Test func partlyTrainableModelGetsTheSameGradients() throws {
        var rng = SplitMix64(seed: 9)
        let hidden = Self.config.hiddenSize
        let weights = (0..<(Self.batch.layout.tokens * hidden)).map { _ in rng.nextNormal() }
        let everything = try LlamaModel(config: Self.config, weights: RandomWeights(seed: 5, std: 0.3))
        everything.params.setTrainable { _ in true }
        _ = try loss(everything, weights)
        try everything.backward(dLastHidden: weights, dPooled: nil, inputGrad: nil)
        let top = try LlamaModel(config: Self.config, weights: RandomWeights(seed: 5, std: 0.3))
        top.params.setTrainable { $0.hasPrefix("model.layers.1.") }
        _ = try loss(top, weights)
        try top.backward(dLastHidden: weights, dPooled: nil, inputGrad: nil)
        for parameter in top.params.trainable {
            let reference = try #require(everything.params[parameter.name]?.grad)
            let worst = (0..<parameter.count).map { abs(parameter.grad![$0] - reference[$0]) }.max()!
            #expect(worst <= 1e-6, "\(parameter.name): \(worst)")
        }
        #expect(top.params.trainable.count == 9)
    }

    /// A token's output depends on the tokens before it in its own sequence only.
    /// SmolLM2-135M's shape, one sequence of 2,048 tokens: attention keeps no probabilities, so its scratch (two
    /// 2,048² matrices per core) is a small fraction of what storing all 30 x 9 heads' would take (4.5 GB), and
    /// the step's whole workspace stays under that store.
    @Test func attentionMemoryDoesNotGrowWithHeadsAndLayers() {
        let smol = LlamaConfig(
            vocabSize: 49_152, hiddenSize: 576, intermediateSize: 1536, numLayers: 30, numHeads: 9, numKeyValueHeads: 3,
            ropeTheta: 100_000, maxPositions: 8192)
        let memory = LlamaModel.stepMemory(config: smol, layout: .packed(lengths: [2048]))
        #expect(memory.storedProbabilities == 30 * 9 * 2048 * 2048 * 4)
        let cores = SequenceLayout.packed(lengths: [2048]).headChunkCount(heads: 9)
        #expect(memory.attention == cores * 2 * 2048 * 2048 * 4)
        #expect(memory.attention * 30 <= memory.storedProbabilities)
        let whole = memory.activations + memory.gradients + memory.attention
        #expect(whole < memory.storedProbabilities / 2, "step workspace \(whole) bytes")
        // Activations grow linearly: 30 layers x 8,450 floats a token (two rstd), plus the final norm's.
        #expect(memory.activations < 2048 * (30 * 8_450 + 2 * 576 + 1) * 4 + 64 * 400)
    }

    @Test func outputsAreCausalAndPerSequence() throws {
        let model = try LlamaModel(config: Self.config, weights: RandomWeights(seed: 5, std: 0.3))
        let hidden = Self.config.hiddenSize
        let first = Array(UnsafeBufferPointer(start: try model.forward(Self.batch).lastHidden, count: 10 * hidden))
        let changed = TokenBatch(packed: [[1, 4, 7, 8], [2, 9, 9, 12, 5, 0]])
        let second = Array(UnsafeBufferPointer(start: try model.forward(changed).lastHidden, count: 10 * hidden))
        #expect(first[0..<(3 * hidden)] == second[0..<(3 * hidden)])
        #expect(first[(3 * hidden)..<(4 * hidden)] != second[(3 * hidden)..<(4 * hidden)])
        #expect(first[(4 * hidden)...] == second[(4 * hidden)...])
        let alone = try model.forward(TokenBatch(packed: [[2, 9, 9, 12, 5, 0]])).lastHidden
        for i in 0..<(6 * hidden) { #expect(abs(alone[i] - first[4 * hidden + i]) < 1e-5) }
    }
}
