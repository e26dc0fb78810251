import Foundation
import Testing
import TestSupport
import Adapters
import Data
import Methods
import Models
import RankwiseCore
import SafeTensors
import Tokenizers
@testable import Training

/// Every registered method passes these, with its default options, on the real all-MiniLM-L6-v2 and a
/// small seeded slice of the real tweets: a method added to `MethodRegistry.all` is tested here with
/// no new test code. (PEFT loading every method's export is checked by scripts/e2e.sh, also per
/// registered method.) `cases` adds the modes a method's defaults do not reach, as "name key=value ...".
@Suite(.serialized) struct ConformanceTests {
    struct Slice { let train: TokenizedSet; let probe: TokenizedSet; let model: String }

    static let slice: Slice? = {
        guard let model = Fixtures.modelDir(), let file = Fixtures.tweets(),
              let tok = try? Tokenizer(path: model) else { return nil }
        var spec = DataSpec(); spec.labelColumn = "sentiment"
        guard let (ds, _) = try? Dataset.load(path: file, spec: spec) else { return nil }
        let s = ds.split(dev: 0.01, test: 0.01, seed: 3)
        var train = s.train; train.examples = Array(train.examples.prefix(128))
        return Slice(train: TokenizedSet(train, tokenizer: tok, maxLength: 32), probe: TokenizedSet(s.dev, tokenizer: tok, maxLength: 32), model: model)
    }()

    static var config: TrainConfig {
        var c = TrainConfig()
        c.epochs = 4; c.batchSize = 16; c.lr = 3e-3; c.checkpointEvery = 7; c.evalEvery = 0; c.seed = 5; c.warmupRatio = 0
        return c  // 32 steps: the adaptive methods' default schedules (10% warm-up, 20% final) allocate in them
    }

    static let cases = MethodRegistry.names + ["dynamic mode=ranks update-every=2 gate=false"]

    /// The method entry and options of a case.
    func parse(_ c: String) throws -> (MethodEntry, [String: String]) {
        let words = c.split(separator: " ").map(String.init)
        let options = Dictionary(uniqueKeysWithValues: words.dropFirst().map { w in let kv = w.split(separator: "=", maxSplits: 1); return (String(kv[0]), String(kv[1])) })
        return (try MethodRegistry.entry(words[0]), options)
    }

    func build(_ c: String, _ s: Slice, seed: UInt64 = 5) throws -> (TaskModel, TuningMethod) {
        let enc = try BertModel.load(directory: s.model, withPooler: true)
        let (e, options) = try parse(c)
        let (m, _) = try e.make(options: options, backbone: enc, seed: seed)
        return (try TaskModel(backbone: enc, numLabels: 3, problem: .singleLabel, seed: seed &+ 1), m)
    }

    func dir(_ name: String) -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("rankwise-conformance-\(name.replacingOccurrences(of: " ", with: "_"))-\(getpid())").path
        try? FileManager.default.removeItem(atPath: d)
        return d
    }

    static let metadata = AdapterMetadata(labelNames: ["negative", "neutral", "positive"], problem: "single_label_classification",
                                          maxLength: 32, baseModel: "", method: "")

    func maxDiff(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.max() ?? .infinity }

    /// `name`'s model, trainable as the method says, its regularisers on and its trainable weights moved off their
    /// start by a seeded ±2e-5 (so adapters' outputs and gradients are not zero).
    func perturbed(_ name: String, _ s: Slice, seed: UInt64) throws -> TaskModel {
        let (model, method) = try build(name, s)
        model.setTrainable(adapted: method.isTrainable)
        model.regularizers = method.regularizers
        var rng = SplitMix64(seed: seed)
        for p in model.params.trainable { for i in 0..<p.count { p.value[i] += Float(Int(rng.next() % 2001) - 1000) * 2e-5 } }
        return model
    }

    /// Every trainable parameter's gradient by name.
    static func gradients(_ model: TaskModel) -> [String: [Float]] {
        Dictionary(uniqueKeysWithValues: model.params.trainable.map { ($0.name, $0.grad!.array) })
    }

    @Test(arguments: Self.cases) func trainsSavesLoadsResumesAndMerges(_ name: String) throws {
        guard let s = Self.slice else { return }
        try BLAS.load()
        let (e, _) = try parse(name)
        var meta = Self.metadata; meta.method = e.name; meta.baseModel = s.model

        // 1. A few steps lower the loss on the training slice.
        let (model, method) = try build(name, s)
        let out = dir("\(name)-a")
        let t = try Trainer(model: model, method: method, config: Self.config, train: s.train, dev: nil, labelNames: meta.labelNames, outputDir: out)
        t.adapterMetadata = meta
        let before = try Evaluator.evaluate(model, s.train).loss
        try t.run()
        let after = try Evaluator.evaluate(model, s.train).loss
        #expect(after < before, "\(name): training loss \(before) -> \(after)")

        // 2. Save, then load into a fresh model: the same logits.
        let probe = s.probe.batch(Array(0..<min(24, s.probe.count))).tokens
        let logits = try model.forward(probe).logits
        let saved = dir("\(name)-saved")
        try method.save(directory: saved, model: model, metadata: meta)
        let enc2 = try BertModel.load(directory: s.model, withPooler: true)
        let (loaded, head) = try MethodRegistry.entry(forAdapter: saved).load(directory: saved, backbone: enc2)
        #expect(loaded.ranks == method.ranks, "\(name): ranks after loading")
        let m2 = try TaskModel(backbone: enc2, numLabels: 3, problem: .singleLabel, head: head)
        #expect(maxDiff(logits, try m2.forward(probe).logits) < 1e-5, "\(name): logits after save + load")

        // 3. Merge into the base weights: the same logits from a plain model. Only an adapter whose output
        // depends on its input beyond a linear map (Dynamic LoRA's gate) may refuse, and must say why.
        let merged = dir("\(name)-merged")
        var refused = false
        do { try MergedModel.write(model: m2, labelNames: meta.labelNames, baseDirectory: s.model, to: merged) } catch let err where "\(err)".contains("cannot be folded into a weight") {
            #expect(e.hasOption("gate"), "\(name): refused to merge: \(err)")
            refused = true
        }
        if !refused {
            let plain = try BertModel.load(directory: merged, withPooler: true)
            let mf = try SafeTensorsFile(path: merged + "/model.safetensors")
            let m3 = try TaskModel(backbone: plain, numLabels: 3, problem: .singleLabel, head: FileHead(file: mf))
            #expect(maxDiff(logits, try m3.forward(probe).logits) < 1e-4, "\(name): logits of the merged model")
        }

        // 4. Stopped between checkpoints (as kill -9 would) and resumed: identical to the uninterrupted run.
        let rdir = dir("\(name)-resume")
        try expectResumeIsExact(name, uninterrupted: t, build: { try build(name, s) }) { model, method in
            try Trainer(model: model, method: method, config: Self.config, train: s.train, dev: nil, labelNames: meta.labelNames, outputDir: rdir)
        }
    }

    /// The unpadded path (packed tokens, per-sequence attention) gives the padded path's logits, loss and
    /// gradients, for every method, on real tweets of mixed lengths (adapter weights made non-zero).
    @Test(arguments: Self.cases) func unpaddedEqualsPadded(_ name: String) throws {
        guard let s = Self.slice else { return }
        try BLAS.load()
        let model = try perturbed(name, s, seed: 17)
        let idx = Array(0..<16)
        #expect(Set(idx.map { s.train.ids[$0].count }).count > 5, "the batch mixes lengths")
        // Also in training mode: every dropout mask (hidden, attention, head, adapter input) is keyed by example and
        // position, so padding does not change it.
        for training in [false, true] {
            func run(packed: Bool) throws -> (Float, [Float], [String: [Float]]) {
                model.params.zeroGrad()
                let out = try model.forward(s.train.batch(idx, packed: packed), training: training, seed: 3)
                try model.backward()
                return (out.loss!, out.logits, Self.gradients(model))
            }
            let (lp, zp, gp) = try run(packed: false), (lu, zu, gu) = try run(packed: true)
            #expect(abs(lp - lu) < 1e-5 && maxDiff(zp, zu) < 1e-5, "\(name), training \(training): loss \(lp) vs \(lu), logits differ by \(maxDiff(zp, zu))")
            var worst: Float = 0
            for (k, a) in gp {
                let b = gu[k]!
                let num = zip(a, b).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot(), den = max(a.map { $0 * $0 }.reduce(0, +).squareRoot(), 1e-12)
                worst = max(worst, num / den)
            }
            #expect(worst < 1e-4, "\(name), training \(training): worst relative gradient difference \(worst)")
        }
        // In training mode an example's output does not depend on the batch it is in (what data-parallel ranks need).
        let alone = try model.forward(s.train.batch([idx[5]], packed: true), training: true, seed: 3)
        let among = try model.forward(s.train.batch([idx[9], idx[5], idx[2]], packed: true), training: true, seed: 3)
        let width = alone.logits.count
        #expect(maxDiff(alone.logits, Array(among.logits[width..<(2 * width)])) < 1e-5, "\(name): example 5 alone vs in a batch")
        let unkeyed = try model.forward(TokenBatch(packed: [s.train.ids[idx[5]]], typeIds: [s.train.types[idx[5]]]), labels: [s.train.labels[idx[5]]], training: true, seed: 3)
        #expect(maxDiff(alone.logits, unkeyed.logits) > 1e-6, "\(name): another key, other masks")
    }

    /// A batch cut into shards, each shard's backward scaled by its share of the loss denominator, gives the whole
    /// batch's loss and gradients (training mode: hidden, attention, classifier and adapter dropout on): what
    /// data-parallel ranks sum.
    @Test(arguments: Self.cases) func shardsSumToTheWholeBatch(_ name: String) throws {
        guard let s = Self.slice else { return }
        try BLAS.load()
        let model = try perturbed(name, s, seed: 19)
        func gradients() -> [String: [Float]] { Self.gradients(model) }
        model.params.zeroGrad()
        let whole = s.train.batch(Array(0..<16), packed: true)
        let wholeLoss = try model.forward(whole, training: true, seed: 3).loss!
        try model.backward()
        let wholeGradients = gradients()
        model.params.zeroGrad()
        let shards = [Array(0..<7), Array(7..<16)].map { s.train.batch($0, packed: true) }
        let total = shards.map(model.lossDenominator).reduce(0, +)
        var shardedLoss: Double = 0
        for shard in shards {
            let share = model.lossDenominator(shard) / total
            shardedLoss += Double(try model.forward(shard, training: true, seed: 3).loss!) * share
            try model.backward(lossScale: Float(share))
        }
        #expect(abs(Double(wholeLoss) - shardedLoss) < 1e-5 * max(1, Double(abs(wholeLoss))), "\(name): loss \(wholeLoss) vs \(shardedLoss)")
        // 1e-5 relative per tensor; a tensor whose gradient is a sum of terms that nearly cancel (Dynamic LoRA's gate
        // biases, norms of 1e-7) differs by summation order alone: 1e-11 absolute there.
        for (k, a) in wholeGradients {
            let b = gradients()[k]!
            let num = zip(a, b).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot(), den = a.map { $0 * $0 }.reduce(0, +).squareRoot()
            #expect(num <= 1e-5 * den + 1e-11, "\(name): \(k) differs by \(num) (norm \(den))")
        }
    }

    /// The classifier of a merged model directory.
    struct FileHead: WeightSource {
        let file: SafeTensorsFile
        func has(_ name: String) -> Bool { file.contains(name) }
        func tensor(_ name: String, shape: [Int]) throws -> Tensor { Tensor(shape: shape, values: try file.floats(name)) }
    }
}

extension Trainer {
    /// Names of the checkpointed tensors (parameters, Adam moments, method and sampler states) that
    /// differ between this run and `other`, or that only one of them has.
    func stateDifferences(_ other: Trainer) -> [String] {
        let a = Dictionary(uniqueKeysWithValues: checkpointTensors().map { ($0.name, $0.bytes) })
        let b = Dictionary(uniqueKeysWithValues: other.checkpointTensors().map { ($0.name, $0.bytes) })
        return Set(a.keys).union(b.keys).filter { a[$0] != b[$0] }.sorted()
    }
}
