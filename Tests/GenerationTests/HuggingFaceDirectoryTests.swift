import Foundation
import Methods
import SafeTensors
import Testing
import TestSupport
import Tokenizers

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
        model.params.setTrainable { $0.contains("lora_") }
        let ids = try reference.ints("train.ids").map { Int32($0) }
        let labels = try reference.ints("train.labels")
        let output = try model.forward(TokenBatch(packed: [ids]), training: true, seed: 0)
        // Position r predicts token r + 1; the prompt's labels (-100) and the last position carry no loss.
        let targets: [Int32] = ids.indices.map { $0 + 1 < ids.count && labels[$0 + 1] >= 0 ? Int32(labels[$0 + 1]) : -1 }
        let counted = targets.filter { $0 >= 0 }.count
        #expect(counted > 5 && counted < ids.count - 1)
        let scales = [Float](repeating: 1 / Float(counted), count: ids.count)
        let hidden = model.config.hiddenSize
        var dHidden = [Float](repeating: 0, count: ids.count * hidden)
        let losses = ChunkedCrossEntropy(chunkRows: 4).run(
            hidden: output.lastHidden, rows: ids.count, width: hidden, projection: model.outputProjection.value.data,
            vocab: model.config.vocabSize, targets: targets, scales: scales, dHidden: &dHidden)
        let loss = zip(losses, scales).reduce(0) { $0 + $1.0 * $1.1 }
        let expectedLoss = try reference.floats("train.loss")[0]
        #expect(abs(loss - expectedLoss) < 1e-4, "loss \(loss) vs PEFT \(expectedLoss)")
        try model.backward(dLastHidden: dHidden, dPooled: nil, inputGrad: nil)
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
