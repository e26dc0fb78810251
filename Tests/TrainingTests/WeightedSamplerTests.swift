import Foundation
import Testing
@testable import Adapters
@testable import Models
import RankwiseCore
import SafeTensors
@testable import Training
@testable import Methods

/// LoRA plus a weighted sampler steered by the data: every `interval` steps the examples are re-weighted
/// by a running average of their own losses (hard examples drawn more often). The running averages
/// are method state; the weights are sampler state; both must survive a crash.
final class LossWeightedLoRA: TuningMethod {
    let name = "loss-weighted-lora"
    let lora: LoRAMethod
    let count: Int, interval: Int
    var lossAverage: [Float]
    /// Test switch: a restore that forgets, to show that the resume test can fail.
    var forgetOnRestore = false

    init(backbone: any Backbone, count: Int, interval: Int, seed: UInt64) throws {
        lora = try LoRAMethod(config: LoRAConfig(r: 4, alpha: 8, dropout: 0.1), backbone: backbone, seed: seed)
        self.count = count; self.interval = interval
        lossAverage = [Float](repeating: 1, count: count)
    }

    var adapters: [(String, LinearAdapter)] { lora.adapters }
    func makeSampler(count: Int, batchSize: Int, seed: UInt64) -> Sampler? { WeightedSampler(count: count, batchSize: batchSize, seed: seed) }

    func afterOptimizerStep(_ c: StepContext) throws {
        #expect(c.examples.count == c.exampleLosses.count)
        for (i, l) in zip(c.examples, c.exampleLosses) { lossAverage[i] = 0.5 * lossAverage[i] + 0.5 * l }
        if c.step % interval == 0, let s = c.sampler as? WeightedSampler { try s.setWeights(lossAverage.map { Double($0) + 0.05 }) }
    }

    final class State: CheckpointState {
        unowned let owner: LossWeightedLoRA
        init(_ o: LossWeightedLoRA) { owner = o }
        func checkpointTensors() -> [TensorToWrite] { [TensorToWrite(name: "loss_average", shape: [owner.count], floats: owner.lossAverage)] }
        func restore(from f: CheckpointSection) throws {
            if !owner.forgetOnRestore { owner.lossAverage = try f.floats("loss_average", count: owner.count) }
        }
    }
    var checkpointStates: [String: CheckpointState] { ["loss": State(self)] }

    func save(directory: String, model: TaskModel, metadata: AdapterMetadata) throws { try lora.save(directory: directory, model: model, metadata: metadata) }
    var ranks: [String: Int] { lora.ranks }
    var maxRank: Int { lora.maxRank }
    var summary: String { "loss-weighted " + lora.summary }
}

@Suite(.serialized) struct WeightedSamplerTests {
    static let train = tinyTask(n: 120, seed: 13)

    static var config: TrainConfig {
        var c = TrainConfig()
        c.epochs = 3; c.batchSize = 8; c.lr = 3e-3; c.checkpointEvery = 4; c.evalEvery = 0; c.seed = 9
        return c
    }

    func make() throws -> (TaskModel, LossWeightedLoRA) {
        let enc = try tinyEncoder(seed: 2)
        let method = try LossWeightedLoRA(backbone: enc, count: Self.train.count, interval: 3, seed: 2)
        return (try TaskModel(backbone: enc, numLabels: 2, problem: .singleLabel, seed: 2), method)
    }

    func trainer(_ m: TaskModel, _ method: TuningMethod, _ dir: String) throws -> Trainer {
        try Trainer(model: m, method: method, config: Self.config, train: Self.train, dev: nil, labelNames: ["no", "yes"], outputDir: dir)
    }

    /// Parameter difference between an uninterrupted run and one stopped at step 17 (last checkpoint
    /// at 16, so steps 17 is lost as in a kill -9) and resumed in fresh objects.
    func resumedDifference(forget: Bool) throws -> (Float, Trainer, Trainer) {
        let (ma, a) = try make()
        let ta = try trainer(ma, a, tmpDir("weighted-full"))
        try ta.run()
        let dir = tmpDir("weighted-resume")
        let (mb, b) = try make()
        let tb = try trainer(mb, b, dir)
        try tb.run(shouldStop: { tb.step == 17 })
        let (mc, c) = try make()
        c.forgetOnRestore = forget
        let tc = try trainer(mc, c, dir)
        for p in mc.params.trainable { for i in 0..<p.count { p.value[i] += 0.5 } }
        try tc.run(resume: true)
        #expect(tc.step == ta.step)
        var worst: Float = 0
        for (p, q) in zip(ma.params.trainable, mc.params.trainable) { for i in 0..<p.count { worst = max(worst, abs(p.value[i] - q.value[i])) } }
        return (worst, ta, tc)
    }

    @Test func drawsByTheWeightsAMethodSets() throws {
        let s = WeightedSampler(count: 4, batchSize: 1000, seed: 1)
        try s.setWeights([0, 1, 3, 0])
        let drawn = s.batch(epoch: 0, index: 0)
        #expect(!drawn.contains(0) && !drawn.contains(3))
        let threes = drawn.filter { $0 == 2 }.count
        #expect(abs(Double(threes) / Double(drawn.count) - 0.75) < 0.05, "\(threes) of \(drawn.count)")
        #expect(s.batch(epoch: 0, index: 0) == drawn, "same (seed, epoch, index), same batch")
        #expect(s.batch(epoch: 1, index: 0) != drawn)
        #expect(throws: TrainError.self) { try s.setWeights([0, 0, 0, 0]) }
        #expect(throws: TrainError.self) { try s.setWeights([1, .nan, 1, 1]) }
    }

    /// Weights change during the run (so the draw depends on them), and a crashed, resumed run ends
    /// bit-identical to the uninterrupted one: parameters, the method's averages, the sampler's weights
    /// and Adam's moments.
    @Test func killedAndResumedRunIsIdentical() throws {
        let (worst, full, resumed) = try resumedDifference(forget: false)
        let w = (full.sampler as! WeightedSampler).weights
        #expect(Set(w).count > 10, "the weights moved away from uniform")
        #expect(worst == 0, "resumed run differs by \(worst)")
        #expect(full.stateDifferences(resumed) == [])
    }

    /// The same test with a restore that forgets the method's averages fails: the test can see it.
    @Test func aForgottenStateIsDetected() throws {
        let (worst, full, resumed) = try resumedDifference(forget: true)
        #expect(worst > 0 && full.stateDifferences(resumed).contains("method.loss.loss_average"))
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
