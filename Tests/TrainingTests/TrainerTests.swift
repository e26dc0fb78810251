import Foundation
import Testing
@testable import Adapters
@testable import Models
import RankwiseCore
import SafeTensors
@testable import Training
@testable import Methods

/// A tiny task: label 1 when token 7 occurs in the sequence, else 0.
func tinyTask(n: Int, seed: UInt64) -> TokenizedSet {
    var rng = SplitMix64(seed: seed)
    var ids: [[Int32]] = [], labels: [Int32] = []
    for _ in 0..<n {
        let len = 3 + Int(rng.next() % 6)
        var s: [Int32] = [1] + (0..<len).map { _ in Int32(8 + rng.next() % 20) } + [2]
        let y: Int32 = rng.next() % 2 == 0 ? 1 : 0
        if y == 1 { s[1 + Int(rng.next() % UInt64(len))] = 7 }
        ids.append(s); labels.append(y)
    }
    return TokenizedSet(ids: ids, types: ids.map { [Int32](repeating: 0, count: $0.count) }, labels: labels, targets: labels.map(Float.init), regression: false)
}

func tinyEncoder(seed: UInt64 = 1) throws -> BertModel {
    let cfg = BertConfig(hiddenSize: 16, numHeads: 2, numLayers: 2, intermediateSize: 32, vocabSize: 32, maxPositions: 16,
                         hiddenDropout: 0.1, attentionDropout: 0.1)
    return try BertModel(config: cfg, weights: RandomWeights(seed: seed, std: 0.2), withPooler: true)
}

/// A tiny classifier with LoRA (r 4) attached, and the method.
func tinyModel(seed: UInt64 = 1) throws -> (TaskModel, TuningMethod) {
    let enc = try tinyEncoder(seed: seed)
    let method = try LoRAMethod(config: LoRAConfig(r: 4, alpha: 8, dropout: 0.1), backbone: enc, seed: seed)
    let m = try TaskModel(backbone: enc, numLabels: 2, problem: .singleLabel, seed: seed)
    return (m, method)
}

func tmpDir(_ name: String) -> String {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent("rankwise-train-\(name)-\(getpid())").path
    try? FileManager.default.removeItem(atPath: d)
    return d
}

@Suite(.serialized) struct TrainerTests {
    @Test func learnsATinyTask() throws {
        var cfg = TrainConfig()
        cfg.epochs = 8; cfg.batchSize = 16; cfg.lr = 5e-3; cfg.evalEvery = 0
        let (m, method) = try tinyModel()
        let t = try Trainer(model: m, method: method, config: cfg, train: tinyTask(n: 400, seed: 1), dev: tinyTask(n: 100, seed: 2), labelNames: ["no", "yes"], outputDir: tmpDir("learn"))
        try t.run()
        #expect(t.bestMetric > 0.9, "dev macro-F1 \(t.bestMetric)")
        let lines = try String(contentsOfFile: t.outputDir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(lines.contains { $0.contains("\"event\":\"eval\"") } && lines.contains { $0.contains("\"event\":\"train\"") })
    }

    /// A run stopped abruptly (between checkpoints, as kill -9 would) and resumed ends with the same
    /// weights as a run that was never interrupted.
    @Test func resumeGivesIdenticalWeights() throws {
        var cfg = TrainConfig()
        cfg.epochs = 3; cfg.batchSize = 8; cfg.gradAccum = 2; cfg.lr = 3e-3; cfg.checkpointEvery = 3; cfg.evalEvery = 5
        let train = tinyTask(n: 120, seed: 3), dev = tinyTask(n: 40, seed: 4)
        let (full, fm) = try tinyModel()
        let a = try Trainer(model: full, method: fm, config: cfg, train: train, dev: dev, labelNames: ["no", "yes"], outputDir: tmpDir("full"))
        try a.run()
        let dir = tmpDir("resume")
        let (first, firstMethod) = try tinyModel()
        let b = try Trainer(model: first, method: firstMethod, config: cfg, train: train, dev: dev, labelNames: ["no", "yes"], outputDir: dir)
        try b.run(shouldStop: { b.step == 11 })  // last checkpoint at step 9: steps 10-11 are lost, as in a crash
        #expect(b.step == 11)
        let (second, secondMethod) = try tinyModel()
        let c = try Trainer(model: second, method: secondMethod, config: cfg, train: train, dev: dev, labelNames: ["no", "yes"], outputDir: dir)
        // Scramble the fresh model so that only the checkpoint can make it right.
        #expect(!second.params.trainable.isEmpty)
        for p in second.params.trainable { for i in 0..<p.count { p.value[i] += 1 } }
        try c.run(resume: true)
        #expect(c.step == a.step)
        var worst: Float = 0
        for (p, q) in zip(full.params.trainable, second.params.trainable) {
            for i in 0..<p.count { worst = max(worst, abs(p.value[i] - q.value[i])) }
        }
        #expect(worst <= 1e-6, "max weight difference after resume \(worst)")
        #expect(c.bestStep == a.bestStep && c.bestMetric == a.bestMetric)
    }

    @Test func nanLossStopsWithTheLastGoodCheckpointIntact() throws {
        var cfg = TrainConfig()
        cfg.epochs = 5; cfg.batchSize = 8; cfg.checkpointEvery = 2
        let (m, method) = try tinyModel()
        let t = try Trainer(model: m, method: method, config: cfg, train: tinyTask(n: 80, seed: 5), dev: nil, labelNames: ["no", "yes"], outputDir: tmpDir("nan"))
        t.afterStep.append { step in if step == 5 { m.params["classifier.weight"]!.value[0] = .nan } }
        do { try t.run(); Issue.record("a NaN loss did not stop training") }
        catch {
            #expect("\(error)".contains("loss is nan at step 6"), "\(error)")
            #expect("\(error)".contains("step 4"))
        }
        let ck = try SafeTensorsFile(path: t.checkpointPath)
        #expect(ck.metadata["step"] == "4")
        #expect(try ck.floats("param.classifier.weight").allSatisfy(\.isFinite))
    }

    @Test func adamWMatchesPyTorchFormula() throws {
        let ps = ParameterSet()
        let p = Param(name: "w", value: Tensor(shape: [2], values: [1, -2]))
        ps.add(p); ps.setTrainable { _ in true }
        let opt = AdamW(params: ps, weightDecay: 0.1)
        p.grad![0] = 0.5; p.grad![1] = -1
        opt.step(lr: 0.01)
        // torch.optim.AdamW([w], lr=0.01, weight_decay=0.1): first step moves by lr·sign(g) after decay
        #expect(abs(p.value[0] - (1 * (1 - 0.001) - 0.01 * 0.5 / (0.5 + 1e-8))) < 1e-6)
        #expect(abs(p.value[1] - (-2 * (1 - 0.001) + 0.01)) < 1e-6)
        p.grad![0] = 0.5; p.grad![1] = -1
        opt.step(lr: 0.01)
        // second step with the same gradient: m̂ = g, v̂ = g², so again lr·sign(g)
        #expect(abs(p.value[0] - ((1 * 0.999 - 0.01) * 0.999 - 0.01)) < 1e-5)
    }

    @Test func schedulesMatchHuggingFace() {
        #expect(Schedule.linear.factor(step: 0, warmup: 10, total: 100) == 0)
        #expect(Schedule.linear.factor(step: 5, warmup: 10, total: 100) == 0.5)
        #expect(Schedule.linear.factor(step: 10, warmup: 10, total: 100) == 1)
        #expect(abs(Schedule.linear.factor(step: 55, warmup: 10, total: 100) - 0.5) < 1e-6)
        #expect(abs(Schedule.cosine.factor(step: 55, warmup: 10, total: 100) - 0.5) < 1e-6)
        #expect(Schedule.cosine.factor(step: 100, warmup: 10, total: 100) < 1e-6)
    }

    @Test func gradientClippingScalesToTheNorm() {
        let ps = ParameterSet()
        ps.add(Param(name: "a", value: Tensor(zeros: [2]))); ps.setTrainable { _ in true }
        ps["a"]!.grad![0] = 3; ps["a"]!.grad![1] = 4
        #expect(clipGradNorm(ps, maxNorm: 1) == 5)
        #expect(abs(ps["a"]!.grad![0] - 0.6) < 1e-5 && abs(ps["a"]!.grad![1] - 0.8) < 1e-5)
    }

    @Test func batchPlanIsSeededBucketedAndComplete() {
        let lengths = (0..<100).map { ($0 * 37) % 23 }
        let p1 = BatchPlan.epoch(count: 100, lengths: lengths, batchSize: 8, seed: 1, epoch: 0, bucket: 4)
        #expect(p1 == BatchPlan.epoch(count: 100, lengths: lengths, batchSize: 8, seed: 1, epoch: 0, bucket: 4))
        #expect(p1 != BatchPlan.epoch(count: 100, lengths: lengths, batchSize: 8, seed: 1, epoch: 1, bucket: 4))
        #expect(p1.flatMap { $0 }.sorted() == Array(0..<100))
        for b in p1 { #expect(b.map { lengths[$0] } == b.map { lengths[$0] }.sorted()) }
    }

    /// Batch size and length not given take the model's defaults: an encoder's 32 x 128, a causal LM's 8 x 1024 (at
    /// most its context); given ones stay.
    @Test func batchAndLengthDefaultsFollowTheModel() {
        var config = TrainConfig()
        #expect(config.batchSize == nil && config.maxLength == nil)
        let encoder = config.resolved(languageModel: false)
        #expect(encoder.batchSize == 32 && encoder.maxLength == 128)
        let decoder = config.resolved(languageModel: true, contextLength: 8192)
        #expect(decoder.batchSize == 8 && decoder.maxLength == 1024)
        #expect(config.resolved(languageModel: true, contextLength: 128).maxLength == 128)
        config.batchSize = 4
        config.maxLength = 512
        let given = config.resolved(languageModel: true, contextLength: 128)
        #expect(given.batchSize == 4 && given.maxLength == 512)
    }
}

