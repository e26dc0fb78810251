import Foundation
import GGUF
import SafeTensors
import Testing
import TestSupport
import Tokenizers

@testable import Generation
@testable import Models

/// Sampling rules on hand-made logits, and SmolLM2 generation through the key/value cache against transformers.
@Suite(.serialized) struct GenerationTests {
    @Test func samplingRules() throws {
        let logits: [Float] = [1, 3, 2, -1, 2.9]
        var greedy = TokenSampler(options: SamplingOptions())
        #expect(greedy.next(logits: logits, history: []) == 1)
        // Repetition penalty 2: token 1's logit 3 becomes 1.5, so token 4 (2.9) wins; a negative logit doubles.
        var penalised = TokenSampler(options: SamplingOptions(repetitionPenalty: 2))
        #expect(penalised.next(logits: logits, history: [1, 1, 3]) == 4)
        // top-k 1 and a tiny top-p are greedy whatever the temperature and seed.
        for seed in UInt64(0)..<20 {
            var topK = TokenSampler(options: SamplingOptions(temperature: 5, topK: 1, seed: seed))
            #expect(topK.next(logits: logits, history: []) == 1)
            var topP = TokenSampler(options: SamplingOptions(temperature: 5, topP: 0.01, seed: seed))
            #expect(topP.next(logits: logits, history: []) == 1)
        }
        // top-k 2 draws only the two best, both of them, and a seed repeats its stream.
        var drawn: [Int32] = []
        var sampler = TokenSampler(options: SamplingOptions(temperature: 1, topK: 2, seed: 7))
        for _ in 0..<200 { drawn.append(sampler.next(logits: logits, history: [])) }
        #expect(Set(drawn) == [1, 4])
        var again = TokenSampler(options: SamplingOptions(temperature: 1, topK: 2, seed: 7))
        #expect((0..<200).map { _ in again.next(logits: logits, history: []) } == drawn)
        // Temperature 1 over all tokens: frequencies follow the softmax (token 1: e^3 / Σ ≈ 0.41).
        var full = TokenSampler(options: SamplingOptions(temperature: 1, seed: 3))
        let share = Double((0..<4000).filter { _ in full.next(logits: logits, history: []) == 1 }.count) / 4000
        let expected = exp(3.0) / logits.map { exp(Double($0)) }.reduce(0, +)
        #expect(abs(share - expected) < 0.03, "share \(share), softmax \(expected)")
        #expect { try SamplingOptions(topP: 0).validate() } throws: { "\($0)".contains("--top-p") }
    }

    /// What may be streamed: not a trailing U+FFFD (a character being spelled out), not an ending that could
    /// start a stop string, never half a character.
    @Test func streamableBytesHoldBackWhatMayChange() {
        #expect(Generator.streamableBytes("I ❤", stopStrings: []) == "I ❤".utf8.count)
        #expect(Generator.streamableBytes("ab\u{FFFD}", stopStrings: []) == 2)
        #expect(Generator.streamableBytes("The capital of France", stopStrings: ["France is"]) == 15)
        #expect(Generator.streamableBytes("The capital of Fr", stopStrings: ["France is", "Fr!"]) == 15)
        #expect(Generator.streamableBytes("x é", stopStrings: ["\u{E9}t\u{E9}"]) == 2)
        #expect(Generator.streamableBytes("plain", stopStrings: ["zzz"]) == 5)
    }

    /// SmolLM2 from its GGUF file (float32 weights), its tokenizer, a generator over it and transformers' reference
    /// outputs; nil when the model is not installed.
    static func smollm2() throws -> (
        GGUFFile, LlamaModel, Tokenizer, TokenizerSpecials, Generator, SafeTensorsFile
    )? {
        guard let path = Fixtures.smollm2() else { return nil }
        let file = try GGUFFile(path: path)
        let config = try LlamaConfig(gguf: file)
        let model = try LlamaModel(config: config, weights: GGUFWeights(file: file, config: config))
        let (tokenizer, specials) = try Tokenizer.gguf(file)
        let generator = Generator(model: model, tokenizer: tokenizer, specials: specials, capacity: 256)
        let reference = try SafeTensorsFile(
            path: Fixtures.packageRoot.path + "/Tests/Fixtures/llama/smollm2-reference.safetensors")
        return (file, model, tokenizer, specials, generator, reference)
    }

    /// Greedy generation through the key/value cache gives transformers' `generate` tokens, and the cache's
    /// prompt pass gives the same last logits as the full forward.
    @Test func cachedGreedyGenerationMatchesTransformers() throws {
        guard let (file, model, tokenizer, specials, generator, reference) = try Self.smollm2() else { return }
        let config = model.config
        for (index, quantized) in [(0, false), (1, false), (2, false), (0, true), (1, true), (2, true)] {
            // Then again with single tokens multiplied from the file's quantised blocks.
            if quantized && model.quantizedWeights.isEmpty {
                try model.keepQuantizedWeights(of: file)
                #expect(model.quantizedWeights.count == 30 * 7 + 1)
                // Each fused product equals the float32 weights' (query rows back in Hugging Face's order).
                for linear in model.layers[0].linears + [model.layers[29].down] {
                    let x = (0..<linear.inDim).map { Float(sin(Double($0))) }
                    var fused = [Float](repeating: 0, count: linear.outDim)
                    var float = [Float](repeating: 0, count: linear.outDim)
                    try #require(model.quantizedWeights[linear.path]).multiply(x, into: &fused)
                    linear.forward(x, &float, n: 1)
                    let worst = zip(fused, float).map { abs($0 - $1) }.max()!
                    #expect(worst <= 1e-4 * max(1, float.map(abs).max()!), "\(linear.path): \(worst)")
                }
            }
            let prompt = try reference.ints("prompt\(index).ids").map { Int32($0) }
            let greedy = try reference.ints("prompt\(index).greedy").map { Int32($0) }
            let cache = model.makeCache(capacity: 128)
            let cachedLogits = try model.decode(prompt, cache: cache)
            let last = try reference.floats("prompt\(index).last")
            let worst = zip(cachedLogits, last).map { abs($0 - $1) }.max()!
            #expect(worst <= 1e-3 * last.map(abs).max()!, "prompt \(index): cached prompt pass, worst |Δ| \(worst)")
            var streamed = ""
            let result = try generator.generate(
                prompt: prompt, maxTokens: greedy.count, sampling: SamplingOptions()) { streamed += $0 }
            let expected = greedy.prefix { $0 != 2 }
            #expect(result.ids == Array(expected), "prompt \(index), quantized \(quantized)")
            #expect(result.stopReason == (expected.count < greedy.count ? .stopToken : .maxTokens))
            #expect(streamed == result.text)
            #expect(result.text == tokenizer.decode(result.ids.map(Int.init), skipSpecial: false))
        }
        // The chat prompt the generator builds is the one transformers' template gave.
        let chat = try generator.chatPrompt([ChatMessage(role: "user", content: "What is the capital of France?")])
        #expect(chat == (try reference.ints("prompt0.ids").map { Int32($0) }))
        // A stop string cuts the text before it and stops.
        var streamedBeforeStop = ""
        let stopped = try generator.generate(
            prompt: chat, maxTokens: 20, sampling: SamplingOptions(), stopStrings: ["France is"]
        ) { streamedBeforeStop += $0 }
        #expect(stopped.text == "The capital of " && stopped.stopReason == .stopString)
        #expect(streamedBeforeStop == stopped.text)
    }

    /// Prompts generated together (`generateBatch`, rows of `decodeStep`) give what each gives alone: the
    /// transformers greedy continuations, the same stop reasons (a stop string, a full context), and per-row logits
    /// equal to `decode`'s.
    @Test func batchedGenerationEqualsOneAtATime() throws {
        guard let (file, model, tokenizer, specials, generator, reference) = try Self.smollm2() else { return }
        let config = model.config
        let prompts = try (0..<3).map { index in try reference.ints("prompt\(index).ids").map { Int32($0) } }
        let greedy = try (0..<3).map { index in try reference.ints("prompt\(index).greedy").map { Int32($0) } }
        let maxTokens = greedy.map(\.count).min()!
        // The second prompt twice: equal rows in one batch stay independent.
        let order = [0, 1, 2, 1]
        let batch = try generator.generateBatch(
            prompts: order.map { prompts[$0] }, maxTokens: maxTokens, sampling: SamplingOptions())
        for (index, output) in zip(order, batch) {
            let expected = Array(greedy[index].prefix(maxTokens).prefix { $0 != 2 })
            #expect(output.ids == expected, "prompt \(index) in a batch")
            #expect(output.stopReason == (expected.count < maxTokens ? .stopToken : .maxTokens))
            #expect(output.text == tokenizer.decode(output.ids.map(Int.init), skipSpecial: false))
        }
        // A stop string in one row and a context that fills in another end those rows as they end alone.
        let chat = try generator.chatPrompt([ChatMessage(role: "user", content: "What is the capital of France?")])
        let longer = prompts[2] + chat
        let small = Generator(model: model, tokenizer: tokenizer, specials: specials, capacity: longer.count + 3)
        let alone = try [chat, longer].map {
            try small.generate(prompt: $0, maxTokens: 20, sampling: SamplingOptions(), stopStrings: ["France is"])
        }
        let together = try small.generateBatch(
            prompts: [chat, longer], maxTokens: 20, sampling: SamplingOptions(), stopStrings: ["France is"])
        #expect(together.map(\.ids) == alone.map(\.ids))
        #expect(together.map(\.text) == alone.map(\.text))
        #expect(together.map(\.stopReason) == [.stopString, .contextFull])
        #expect(alone.map(\.stopReason) == [.stopString, .contextFull])
        // decodeStep's rows are decode's logits.
        let stepped = prompts.map { _ in model.makeCache(capacity: 128) }
        let single = prompts.map { _ in model.makeCache(capacity: 128) }
        for (prompt, (first, second)) in zip(prompts, zip(stepped, single)) {
            _ = try model.decode(prompt, cache: first)
            _ = try model.decode(prompt, cache: second)
        }
        let next: [Int32] = [greedy[0][0], greedy[1][0], greedy[2][0]]
        let rows = try model.decodeStep(next, caches: stepped)
        let vocabulary = config.vocabSize
        for index in 0..<3 {
            let alone = try model.decode([next[index]], cache: single[index])
            let row = Array(rows[(index * vocabulary)..<((index + 1) * vocabulary)])
            let worst = zip(row, alone).map { abs($0 - $1) }.max()!
            #expect(worst <= 1e-4 * alone.map(abs).max()!, "row \(index): worst |Δ| \(worst)")
            #expect(stepped[index].length == single[index].length)
        }
        #expect(throws: ModelError.self) { try model.decodeStep(next, caches: [stepped[0], stepped[0], stepped[1]]) }
        #expect(throws: ModelError.self) { try model.decodeStep(next, caches: Array(stepped.prefix(2))) }
    }
}
