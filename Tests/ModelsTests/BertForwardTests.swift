import Foundation
import Testing
import TestSupport
@testable import Models
import RankwiseCore
import SafeTensors

@Suite struct BertForwardParityTests {
    @Test func matchesTransformersOnMiniLM() throws {
        guard let dir = Fixtures.modelDir() else { return }
        let model = try BertModel.load(directory: dir, withPooler: true)
        let f = try SafeTensorsFile(path: Fixtures.minilm + "/encoder_forward.safetensors")
        let ids = try f.ints("input_ids").map(Int32.init)
        let types = try f.ints("token_type_ids").map(Int32.init)
        let mask = try f.ints("attention_mask").map(Float.init)
        let shape = f.info("input_ids")!.shape
        let out = try model.forward(TokenBatch(batch: shape[0], seq: shape[1], ids: ids, typeIds: types, mask: mask))
        let H = model.config.hiddenSize
        let n = shape[0] * shape[1] * H
        let lastRef = try f.floats("last_hidden_state")
        var maxErr: Float = 0
        for i in 0..<n { maxErr = max(maxErr, abs(out.lastHidden[i] - lastRef[i])) }
        #expect(maxErr < 1e-4, "last_hidden_state max abs error \(maxErr)")
        let poolRef = try f.floats("pooler_output")
        var pErr: Float = 0
        for i in 0..<(shape[0] * H) { pErr = max(pErr, abs(out.pooled![i] - poolRef[i])) }
        #expect(pErr < 1e-4, "pooler_output max abs error \(pErr)")
        let emb = Pooling.mean.apply(out.lastHidden, mask: mask, batch: shape[0], seq: shape[1], dim: H, normalize: true)
        let embRef = try f.floats("mean_pooled_normalized")
        let eErr = zip(emb, embRef).map { abs($0 - $1) }.max()!
        #expect(eErr < 1e-4, "mean_pooled_normalized max abs error \(eErr)")

        // The unpadded path: real tokens only, each sentence attending over its own.
        let rows = (0..<shape[0]).map { b in (0..<shape[1]).filter { mask[b * shape[1] + $0] != 0 }.map { b * shape[1] + $0 } }
        let packed = try model.forward(TokenBatch(packed: rows.map { $0.map { ids[$0] } }, typeIds: rows.map { $0.map { types[$0] } }))
        var uErr: Float = 0
        for (r, i) in rows.joined().enumerated() { for j in 0..<H { uErr = max(uErr, abs(packed.lastHidden[r * H + j] - lastRef[i * H + j])) } }
        #expect(uErr < 1e-4, "unpadded last_hidden_state max abs error \(uErr)")
        let upErr = (0..<(shape[0] * H)).map { abs(packed.pooled![$0] - poolRef[$0]) }.max()!
        #expect(upErr < 1e-4, "unpadded pooler_output max abs error \(upErr)")
        let uemb = Pooling.mean.apply(packed.lastHidden, layout: packed.layout, dim: H, normalize: true)
        #expect(zip(uemb, embRef).map { abs($0 - $1) }.max()! < 1e-4, "unpadded mean pooling")
    }

    @Test func embedderMatchesReferenceFromRawText() throws {
        // The fixture's sentences are not stored as text, but the embedder must agree with the
        // encoder on the same ids: tokenize -> forward -> pool gives unit vectors.
        guard let dir = Fixtures.modelDir() else { return }
        let e = try SentenceEmbedder(directory: dir)
        let v = try e.embed(["A man is eating food.", "A man is eating a piece of bread.", "The new movie is awesome."])
        let H = e.model.hiddenSize
        func cos(_ a: Int, _ b: Int) -> Float { (0..<H).reduce(0) { $0 + v[a * H + $1] * v[b * H + $1] } }
        #expect(abs(cos(0, 0) - 1) < 1e-5)
        #expect(cos(0, 1) > cos(0, 2) + 0.3, "related sentences must be closer: \(cos(0, 1)) vs \(cos(0, 2))")
        // Batching and padding must not change an embedding.
        let single = try e.embed(["The new movie is awesome."])
        let d = (0..<H).map { abs(single[$0] - v[2 * H + $0]) }.max()!
        #expect(d < 1e-5, "padding changed the embedding by \(d)")
    }

    @Test func badInputsAreClearErrors() throws {
        let cfg = BertConfig(hiddenSize: 8, numHeads: 2, numLayers: 1, intermediateSize: 16, vocabSize: 10, maxPositions: 6)
        let m = try BertModel(config: cfg, weights: RandomWeights(seed: 1))
        #expect(throws: ModelError.self) { try m.forward(TokenBatch(batch: 1, seq: 2, ids: [1, 10])) }
        #expect(throws: ModelError.self) { try m.forward(TokenBatch(batch: 1, seq: 7, ids: [Int32](repeating: 1, count: 7))) }
        #expect(throws: ModelError.self) { try m.forward(TokenBatch(batch: 2, seq: 2, ids: [1, 2, 3])) }
        do {
            _ = try BertConfig(json: ["hidden_size": 8, "num_attention_heads": 3, "num_hidden_layers": 1, "intermediate_size": 4, "vocab_size": 5])
            Issue.record("hidden not divisible by heads was accepted")
        } catch { #expect("\(error)".contains("num_attention_heads")) }
        do {
            _ = try BertConfig(json: ["hidden_size": 8, "num_hidden_layers": 1, "intermediate_size": 4, "vocab_size": 5])
            Issue.record("missing field accepted")
        } catch { #expect("\(error)".contains("num_attention_heads")) }
    }
}
