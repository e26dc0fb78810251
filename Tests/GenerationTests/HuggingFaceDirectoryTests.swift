import Foundation
import Methods
import RankwiseCore
import SafeTensors
import Testing
import TestSupport
import Tokenizers
import Training

@testable import Generation
@testable import Models

/// A Hugging Face LLaMA directory (config.json in transformers 5's layout, model.safetensors, tokenizer.json,
/// tokenizer_config.json, chat_template.jinja) loads as transformers loads it: logits of every position and greedy
/// continuations against Tests/Fixtures/hf-llama (scripts/make_hf_llama_fixture.py).
@Suite struct HuggingFaceDirectoryTests {
    struct Reference: Decodable {
        struct Generation: Decodable {
            var prompt: String
            var adapter: String?
            var ids: [Int32]
            var continuation: [Int32]
        }
        var generations: [Generation]
    }

    static let root = Fixtures.packageRoot.path + "/Tests/Fixtures/hf-llama"

    @Test func logitsAndGreedyContinuationsMatchTransformers() throws {
        let directory = Self.root + "/model"
        let reference = try JSONDecoder().decode(
            Reference.self, from: try Data(contentsOf: URL(fileURLWithPath: Self.root + "/reference.json")))
        let logits = try SafeTensorsFile(path: Self.root + "/reference.safetensors")
        let generator = try Generator.load(model: directory, capacity: 64)
        let model = generator.model
        #expect(model.config.numKeyValueHeads == 2 && !model.config.tieWordEmbeddings && model.config.ropeTheta == 10_000)
        #expect(try BackboneFamilies.load(directory: directory) is LlamaModel)
        let plain = reference.generations.filter { $0.adapter == nil }
        #expect(plain.count == 3)
        for (index, generation) in plain.enumerated() {
            #expect(generator.rawPrompt(generation.prompt) == generation.ids)
            let output = try model.forward(TokenBatch(packed: [generation.ids]), training: false, seed: 0)
            let ours = model.logits(output.lastHidden, rows: generation.ids.count)
            let expected = try logits.floats("prompt\(index)")
            #expect(ours.count == expected.count)
            let worst = zip(ours, expected).map { abs($0 - $1) }.max()!
            #expect(worst <= 1e-4, "prompt \(index): worst |Δ| \(worst)")
            let result = try generator.generate(
                prompt: generation.ids, maxTokens: generation.continuation.count, sampling: SamplingOptions())
            #expect(result.ids == Array(generation.continuation.prefix { $0 != 2 }), "prompt \(index)")
        }
    }

    /// PEFT LoRA and DoRA adapters (CAUSAL_LM, all seven block linears, random non-zero weights) applied through the
    /// method registry: logits and greedy continuations equal PEFT's, with float32 weights.
    @Test(arguments: ["lora", "dora"]) func peftAdaptersMatchPEFT(adapter: String) throws {
        let reference = try JSONDecoder().decode(
            Reference.self, from: try Data(contentsOf: URL(fileURLWithPath: Self.root + "/reference.json")))
        let logits = try SafeTensorsFile(path: Self.root + "/reference.safetensors")
        let generator = try Generator.load(model: Self.root + "/model", capacity: 64)
        let entry = try MethodRegistry.entry(forAdapter: Self.root + "/" + adapter)
        #expect(entry.name == adapter)
        let (method, head) = try entry.load(directory: Self.root + "/" + adapter, backbone: generator.model)
        #expect(head == nil && method.adapters.count == 2 * 7)
        let runs = reference.generations.filter { $0.adapter == adapter }
        #expect(runs.count == 3)
        for (index, generation) in runs.enumerated() {
            let output = try generator.model.forward(TokenBatch(packed: [generation.ids]), training: false, seed: 0)
            let ours = generator.model.logits(output.lastHidden, rows: generation.ids.count)
            let expected = try logits.floats("\(adapter).prompt\(index)")
            let worst = zip(ours, expected).map { abs($0 - $1) }.max()!
            #expect(worst <= 1e-4, "\(adapter) prompt \(index): worst |Δ| \(worst)")
            let result = try generator.generate(
                prompt: generation.ids, maxTokens: generation.continuation.count, sampling: SamplingOptions())
            #expect(result.ids == Array(generation.continuation.prefix { $0 != 2 }), "\(adapter) prompt \(index)")
        }
    }

    /// One training step of a PEFT LoRA adapter on the decoder, loss on the continuation only: the next-token loss
    /// through `ChunkedCrossEntropy` and the decoder's backward give PEFT's loss and every LoRA gradient.
    @Test func trainingStepGradientsMatchPEFT() throws {
        let reference = try SafeTensorsFile(path: Self.root + "/reference.safetensors")
        let model = try LlamaModel.load(directory: Self.root + "/model")
        let (method, _) = try MethodRegistry.entry(forAdapter: Self.root + "/lora").load(
            directory: Self.root + "/lora", backbone: model)
        #expect(method.adapters.count == 14)
        let task = try TaskModel(backbone: model, numLabels: 0, problem: .causalLanguageModel)
        task.setTrainable { $0.contains("lora_") }
        let ids = try reference.ints("train.ids").map { Int32($0) }
        // PEFT's labels: -100 on the prompt; the loss is on the continuation only, through the causal-LM head.
        let isTarget = try reference.ints("train.labels").map { $0 >= 0 }
        let set = TokenizedSet(languageModel: [ids], isTarget: [isTarget])
        let counted = set.targetTokenCount
        #expect(counted > 5 && counted < ids.count - 1)
        let output = try task.forward(set.batch([0], packed: true), training: true)
        let expectedLoss = try reference.floats("train.loss")[0]
        #expect(abs(output.loss! - expectedLoss) < 1e-4, "loss \(output.loss!) vs PEFT \(expectedLoss)")
        #expect(output.logits.count == 2 && output.logits[1] == Float(counted))
        try task.backward()
        var checked = 0
        for name in reference.names where name.hasPrefix("grad.") {
            let ours = name.dropFirst("grad.base_model.model.".count).replacingOccurrences(of: ".default.", with: ".")
            guard let gradient = model.params[ours]?.grad else {
                Issue.record("no trainable parameter \(ours)")
                continue
            }
            let expected = try reference.floats(name)
            let difference = zip(gradient.array, expected).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
            let norm = expected.map { $0 * $0 }.reduce(0, +).squareRoot()
            #expect(norm > 0 && difference <= 1e-3 * norm, "\(ours): relative gradient error \(difference / norm)")
            checked += 1
        }
        #expect(checked == 28 && model.params.trainable.count == 28)
    }

    /// The causal-LM head: padded and packed batches give the same loss; the batch loss is the token mean, an example's
    /// weight scales its tokens, and a set's perplexity is exp of its mean token loss.
    @Test func causalLanguageModelHeadLossesAndPerplexity() throws {
        let model = try LlamaModel.load(directory: Self.root + "/model")
        let task = try TaskModel(backbone: model, numLabels: 0, problem: .causalLanguageModel)
        var random = SplitMix64(seed: 7)
        let ids = [9, 5].map { length in (0..<length).map { _ in Int32(random.next() % UInt64(model.config.vocabSize)) } }
        let isTarget = ids.map { example in example.indices.map { $0 >= 2 } }
        let set = TokenizedSet(languageModel: ids, isTarget: isTarget)
        #expect(set.targetTokenCount == 7 + 3)
        let packed = try task.forward(set.batch([0, 1], packed: true))
        let padded = try task.forward(set.batch([0, 1], packed: false))
        #expect(abs(packed.loss! - padded.loss!) < 1e-5)
        #expect(zip(packed.exampleLosses, padded.exampleLosses).allSatisfy { abs($0 - $1) < 1e-5 })
        let tokenMean = (packed.logits[0] + packed.logits[2]) / (packed.logits[1] + packed.logits[3])
        #expect(packed.logits[1] == 7 && packed.logits[3] == 3 && abs(packed.loss! - tokenMean) < 1e-5)
        var targets = set.batch([0, 1], packed: true).headTargets
        targets.exampleWeights = [0, 1]
        let second = try task.forward(set.batch([0, 1], packed: true).tokens, targets: targets)
        #expect(abs(second.loss! - packed.exampleLosses[1]) < 1e-5)
        let evaluation = try Evaluator.evaluate(task, set, batchSize: 1)
        #expect(abs(evaluation.loss - Double(tokenMean)) < 1e-5)
        #expect(abs(evaluation.summary["perplexity"]! - exp(Double(tokenMean))) < 1e-3 * exp(Double(tokenMean)))
    }

    @Test func brokenDirectoriesNameTheFile() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hf-llama-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let config = try String(contentsOfFile: Self.root + "/model/config.json", encoding: .utf8)
        func failure() -> String {
            do {
                _ = try Generator.load(model: directory, capacity: 16)
                return "no error"
            } catch { return "\(error)" }
        }
        try config.write(toFile: directory + "/config.json", atomically: true, encoding: .utf8)
        #expect(failure().contains("no model.safetensors or model.safetensors.index.json"))
        try "{\"weight_map\": {\"model.embed_tokens.weight\": \"../x.safetensors\"}}".write(
            toFile: directory + "/model.safetensors.index.json", atomically: true, encoding: .utf8)
        #expect(failure().contains("is not a file name in the directory"))
        let scaled = config.replacingOccurrences(of: "\"rope_type\": \"default\"", with: "\"rope_type\": \"llama3\"")
        try scaled.write(toFile: directory + "/config.json", atomically: true, encoding: .utf8)
        #expect(failure().contains("rope_type \"llama3\""))
        // Found by rankwise-fuzz: a head_dim whose product with the heads overflows.
        let overflowing = config.replacingOccurrences(of: "\"head_dim\": 8", with: "\"head_dim\": 4611686018427387904")
        try overflowing.write(toFile: directory + "/config.json", atomically: true, encoding: .utf8)
        #expect(failure().contains("head_dim 4611686018427387904 x 4 heads differs"))
        // Shards: the one file split in two by an index, read through it alike.
        try config.write(toFile: directory + "/config.json", atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(
            atPath: Self.root + "/model/model.safetensors", toPath: directory + "/shard-1.safetensors")
        let names = try SafeTensorsFile(path: directory + "/shard-1.safetensors").names
        let map = Dictionary(uniqueKeysWithValues: names.map { ($0, "shard-1.safetensors") })
        let index = try JSONSerialization.data(withJSONObject: ["weight_map": map])
        try index.write(to: URL(fileURLWithPath: directory + "/model.safetensors.index.json"))
        let sharded = try LlamaModel.load(directory: directory)
        let single = try LlamaModel.load(directory: Self.root + "/model")
        #expect(sharded.params.all.map(\.value.array) == single.params.all.map(\.value.array))
    }
}
