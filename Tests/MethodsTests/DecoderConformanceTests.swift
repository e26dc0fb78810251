import Adapters
import Foundation
import Methods
import Models
import RankwiseCore
import SafeTensors
import Testing
import TestSupport

@testable import Training

/// Every registered method on a decoder: the tiny LlamaForCausalLM of Tests/Fixtures/hf-llama with adapters on all
/// seven projections (q/k/v/o/gate/up/down), trained as a causal language model on a copying task (the reply repeats
/// the prompt; loss on the reply only). The same matrix as the encoder's `ConformanceTests`: the loss goes down, save
/// and load give the same losses, a merged model gives them too (or the method refuses and says why), a run stopped
/// between checkpoints and resumed is bit-identical, and packed batches equal padded ones.
@Suite(.serialized) struct DecoderConformanceTests {
    static let directory = Fixtures.packageRoot.path + "/Tests/Fixtures/hf-llama/model"
    static let cases = MethodRegistry.names + ["dynamic mode=ranks update-every=2 gate=false"]

    /// 64 examples: 3 to 8 prompt tokens, then the same tokens again as the reply.
    static let data: TokenizedSet = {
        var random = SplitMix64(seed: 11)
        var ids: [[Int32]] = []
        var isTarget: [[Bool]] = []
        for _ in 0..<64 {
            let prompt = (0..<(3 + Int(random.next() % 6))).map { _ in Int32(3 + random.next() % 400) }
            ids.append([1] + prompt + prompt)
            isTarget.append([false] + prompt.map { _ in false } + prompt.map { _ in true })
        }
        return TokenizedSet(languageModel: ids, isTarget: isTarget)
    }()

    static var config: TrainConfig {
        var config = TrainConfig()
        config.epochs = 4
        config.batchSize = 8
        config.lr = 1e-2
        config.checkpointEvery = 7
        config.evalEvery = 0
        config.seed = 5
        config.warmupRatio = 0
        return config  // 32 steps
    }

    static let metadata = AdapterMetadata(
        labelNames: [], problem: "causal_lm", maxLength: 64, baseModel: directory, method: "")

    func parse(_ name: String) throws -> (MethodEntry, [String: String]) {
        let words = name.split(separator: " ").map(String.init)
        let options = Dictionary(
            uniqueKeysWithValues: words.dropFirst().map { word in
                let parts = word.split(separator: "=", maxSplits: 1)
                return (String(parts[0]), String(parts[1]))
            })
        return (try MethodRegistry.entry(words[0]), options)
    }

    func build(_ name: String) throws -> (TaskModel, TuningMethod) {
        let backbone = try LlamaModel.load(directory: Self.directory)
        let (entry, options) = try parse(name)
        let (method, _) = try entry.make(options: options, backbone: backbone, seed: 5)
        #expect(method.adapters.count == 14, "\(name): adapters on all seven projections of both blocks")
        return (try TaskModel(backbone: backbone, numLabels: 0, problem: .causalLanguageModel), method)
    }

    func temporary(_ name: String) -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rankwise-decoder-\(name.replacingOccurrences(of: " ", with: "_"))-\(getpid())"
        ).path
        try? FileManager.default.removeItem(atPath: path)
        return path
    }

    /// Each example's summed reply loss on the first 16 examples.
    func losses(_ model: TaskModel) throws -> [Float] {
        let output = try model.forward(Self.data.batch(Array(0..<16), packed: true))
        return stride(from: 0, to: output.logits.count, by: 2).map { output.logits[$0] }
    }

    func largestDifference(_ a: [Float], _ b: [Float]) -> Float {
        zip(a, b).map { abs($0 - $1) }.max() ?? .infinity
    }

    /// `name`'s model, trainable as the method says, its regularisers on and its trainable weights moved off their
    /// start by a seeded ±2e-4 (so adapters' outputs and gradients are not zero).
    func perturbed(_ name: String, seed: UInt64) throws -> TaskModel {
        let (model, method) = try build(name)
        model.setTrainable(adapted: method.isTrainable)
        model.regularizers = method.regularizers
        var random = SplitMix64(seed: seed)
        for parameter in model.params.trainable {
            for i in 0..<parameter.count { parameter.value[i] += Float(Int(random.next() % 2001) - 1000) * 2e-4 }
        }
        return model
    }

    /// Every trainable parameter's gradient by name.
    static func gradients(_ model: TaskModel) -> [String: [Float]] {
        Dictionary(uniqueKeysWithValues: model.params.trainable.map { ($0.name, $0.grad!.array) })
    }

    @Test(arguments: Self.cases) func trainsSavesLoadsMergesAndResumes(_ name: String) throws {
        try BLAS.load()
        let (entry, _) = try parse(name)
        var metadata = Self.metadata
        metadata.method = entry.name
        let (model, method) = try build(name)
        let trainer = try Trainer(
            model: model, method: method, config: Self.config, train: Self.data, dev: nil, labelNames: [],
            outputDir: temporary("\(name)-a"))
        trainer.adapterMetadata = metadata
        let before = try Evaluator.evaluate(model, Self.data).loss
        try trainer.run()
        let after = try Evaluator.evaluate(model, Self.data).loss
        #expect(after < before - 0.05, "\(name): reply loss \(before) -> \(after)")
        let trained = try losses(model)

        let saved = temporary("\(name)-saved")
        try method.save(directory: saved, model: model, metadata: metadata)
        let config = try String(contentsOfFile: saved + "/adapter_config.json", encoding: .utf8)
        #expect(config.contains("\"CAUSAL_LM\""), "\(name): PEFT task type")
        let fresh = try LlamaModel.load(directory: Self.directory)
        let (loaded, _) = try MethodRegistry.entry(forAdapter: saved).load(directory: saved, backbone: fresh)
        #expect(loaded.ranks == method.ranks, "\(name): ranks after loading")
        let reloaded = try TaskModel(backbone: fresh, numLabels: 0, problem: .causalLanguageModel)
        #expect(largestDifference(trained, try losses(reloaded)) < 1e-4, "\(name): losses after save + load")

        let merged = temporary("\(name)-merged")
        var refused = false
        do {
            try MergedModel.write(model: reloaded, labelNames: [], baseDirectory: Self.directory, to: merged)
        } catch let error where "\(error)".contains("cannot be folded into a weight") {
            #expect(entry.hasOption("gate"), "\(name): refused to merge: \(error)")
            refused = true
        }
        if !refused {
            let plain = try TaskModel(
                backbone: try LlamaModel.load(directory: merged), numLabels: 0, problem: .causalLanguageModel)
            #expect(largestDifference(trained, try losses(plain)) < 1e-3, "\(name): losses of the merged model")
            let mergedConfig = try String(contentsOfFile: merged + "/config.json", encoding: .utf8)
            #expect(mergedConfig.contains("LlamaForCausalLM") && !mergedConfig.contains("id2label"))
        }

        let resumeDirectory = temporary("\(name)-resume")
        try expectResumeIsExact(name, uninterrupted: trainer, build: { try build(name) }) { model, method in
            try Trainer(
                model: model, method: method, config: Self.config, train: Self.data, dev: nil, labelNames: [],
                outputDir: resumeDirectory)
        }
    }

    /// Packed batches (no padding) give the padded batches' loss and gradients on the decoder.
    @Test(arguments: Self.cases) func packedEqualsPadded(_ name: String) throws {
        try BLAS.load()
        let model = try perturbed(name, seed: 17)
        // Also in training mode: the adapters' input dropout is keyed by example and position, so padding does not
        // change it.
        for training in [false, true] {
            func run(packed: Bool) throws -> (Float, [String: [Float]]) {
                model.params.zeroGrad()
                let output = try model.forward(
                    Self.data.batch(Array(0..<12), packed: packed), training: training, seed: 3)
                try model.backward()
                return (output.loss!, Self.gradients(model))
            }
            let (paddedLoss, paddedGradients) = try run(packed: false)
            let (packedLoss, packedGradients) = try run(packed: true)
            #expect(abs(paddedLoss - packedLoss) < 1e-5, "\(name), training \(training): loss \(paddedLoss) vs \(packedLoss)")
            var worst: Float = 0
            for (name, a) in paddedGradients {
                let b = packedGradients[name]!
                let difference = zip(a, b).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
                worst = max(worst, difference / max(a.map { $0 * $0 }.reduce(0, +).squareRoot(), 1e-12))
            }
            #expect(worst < 1e-4, "\(name), training \(training): worst relative gradient difference \(worst)")
        }
        // In training mode an example's loss does not depend on the batch it is in (what data-parallel ranks need).
        let alone = try model.forward(Self.data.batch([5], packed: true), training: true, seed: 3).exampleLosses
        let among = try model.forward(Self.data.batch([9, 5, 2], packed: true), training: true, seed: 3).exampleLosses
        #expect(abs(alone[0] - among[1]) < 1e-5 * max(1, abs(alone[0])), "\(name): example 5 alone \(alone) vs among \(among)")
    }

    /// A batch cut into shards, each shard's backward scaled by its share of the loss denominator, gives the whole
    /// batch's loss and gradients (training mode, dropout on): what data-parallel ranks sum.
    @Test(arguments: Self.cases) func shardsSumToTheWholeBatch(_ name: String) throws {
        try BLAS.load()
        let model = try perturbed(name, seed: 19)
        func gradients() -> [String: [Float]] { Self.gradients(model) }
        model.params.zeroGrad()
        let whole = Self.data.batch(Array(0..<12), packed: true)
        let wholeLoss = try model.forward(whole, training: true, seed: 3).loss!
        try model.backward()
        let wholeGradients = gradients()
        model.params.zeroGrad()
        let shards = [Array(0..<5), Array(5..<12)].map { Self.data.batch($0, packed: true) }
        let total = shards.map(model.lossDenominator).reduce(0, +)
        #expect(abs(total - model.lossDenominator(whole)) < 1e-9)
        var shardedLoss: Double = 0
        for shard in shards {
            let share = model.lossDenominator(shard) / total
            shardedLoss += Double(try model.forward(shard, training: true, seed: 3).loss!) * share
            try model.backward(lossScale: Float(share))
        }
        #expect(abs(Double(wholeLoss) - shardedLoss) < 1e-5 * max(1, Double(abs(wholeLoss))), "\(name): loss")
        var worst: Float = 0
        for (parameter, a) in wholeGradients {
            let b = gradients()[parameter]!
            let difference = zip(a, b).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
            worst = max(worst, difference / max(a.map { $0 * $0 }.reduce(0, +).squareRoot(), 1e-12))
        }
        #expect(worst < 1e-5, "\(name): worst relative gradient difference \(worst)")
    }
}
