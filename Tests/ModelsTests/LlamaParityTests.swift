import Foundation
import SafeTensors
import Testing
import TestSupport

@testable import Models
import RankwiseCore

/// SmolLM2-135M-Instruct loaded from its GGUF file against transformers' float32 `LlamaForCausalLM` loaded from the
/// same file (Tests/Fixtures/llama/smollm2-reference.safetensors, scripts/make_llama_reference.py): logits of
/// every position to 1e-3 relative, in one packed batch of three prompts, and greedy continuations token for token.
@Suite(.serialized) struct LlamaParityTests {
    static let reference = Fixtures.packageRoot.path + "/Tests/Fixtures/llama/smollm2-reference.safetensors"
    nonisolated(unsafe) static var cachedModel: LlamaModel?

    static func model() throws -> LlamaModel? {
        guard let path = Fixtures.smollm2() else { return nil }
        if let cachedModel { return cachedModel }
        let loaded = try LlamaModel.load(gguf: path)
        cachedModel = loaded
        return loaded
    }

    @Test func logitsMatchTransformers() throws {
        guard let model = try Self.model() else { return }
        #expect(model.config.numLayers == 30 && model.config.numKeyValueHeads == 3 && model.config.tieWordEmbeddings)
        let expected = try SafeTensorsFile(path: Self.reference)
        let prompts = try (0..<3).map { try expected.ints("prompt\($0).ids").map { Int32($0) } }
        let output = try model.forward(TokenBatch(packed: prompts))
        let vocabulary = model.config.vocabSize
        for (index, prompt) in prompts.enumerated() {
            let start = output.layout.starts[index]
            let logits = model.logits(output.lastHidden + start * model.config.hiddenSize, rows: prompt.count)
            let last = try expected.floats("prompt\(index).last")
            let ours = Array(logits[((prompt.count - 1) * vocabulary)...])
            let scale = last.map(abs).max()!
            let worst = zip(ours, last).map { abs($0 - $1) }.max()!
            #expect(worst <= 1e-3 * scale, "prompt \(index), last position: worst |Δ| \(worst), logit scale \(scale)")
            #expect(ours.indices.max { ours[$0] < ours[$1] } == last.indices.max { last[$0] < last[$1] })
            let slice = try expected.floats("prompt\(index).slice")
            var worstSlice: Float = 0
            for position in 0..<prompt.count {
                for id in 0..<512 {
                    let difference = abs(logits[position * vocabulary + id] - slice[position * 512 + id])
                    worstSlice = max(worstSlice, difference)
                }
            }
            let sliceScale = slice.map(abs).max()!
            #expect(worstSlice <= 1e-3 * sliceScale, "prompt \(index), every position: worst |Δ| \(worstSlice)")
        }
    }

    /// Greedy decoding (the whole sequence re-run for each token) gives transformers' `generate` tokens.
    @Test func greedyContinuationsMatchTransformers() throws {
        guard let model = try Self.model() else { return }
        let expected = try SafeTensorsFile(path: Self.reference)
        for index in [0, 2] {
            var sequence = try expected.ints("prompt\(index).ids").map { Int32($0) }
            let greedy = try expected.ints("prompt\(index).greedy").map { Int32($0) }
            var produced: [Int32] = []
            for _ in greedy.indices {
                let output = try model.forward(TokenBatch(packed: [sequence]))
                let logits = model.logits(
                    output.lastHidden + (sequence.count - 1) * model.config.hiddenSize, rows: 1)
                let next = Int32(logits.indices.max { logits[$0] < logits[$1] }!)
                produced.append(next)
                sequence.append(next)
                if next == 2 { break }
            }
            #expect(produced == Array(greedy.prefix(produced.count)), "prompt \(index)")
            #expect(produced.count == greedy.count || produced.last == 2)
        }
    }
}
