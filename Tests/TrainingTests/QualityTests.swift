import Foundation
import Testing
@testable import Adapters
@testable import Models
import RankwiseCore
@testable import Training
@testable import Methods

/// TsqLoRA's mathematics on small cases: quality components against per-example gradients computed
/// one by one, the sampling probabilities, the rank initialisation and the frozen-weight sensitivity.
@Suite struct QualityTests {
    func model(svd: Bool) throws -> TaskModel { try tinyAdaptedClassifier(svd: svd) }

    /// Each example's gradient alone (eval mode), as one flat vector over the trainable parameters
    /// (`only`: restricted to parameters whose names start with it).
    func gradients(_ m: TaskModel, _ data: TokenizedSet, _ idx: [Int], only: String? = nil) throws -> (grads: [[Float]], losses: [Float]) {
        var grads: [[Float]] = [], losses: [Float] = []
        for i in idx {
            m.params.zeroGrad()
            let labelled = data.batch([i], packed: true)
            let x = labelled.tokens, l = labelled.labels
            losses.append(try m.forward(x, labels: l).exampleLosses[0])
            try m.backward()
            grads.append(m.params.trainable.filter { only == nil || $0.name.hasPrefix(only!) }.flatMap(\.grad!.array))
        }
        return (grads, losses)
    }

    func dot(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }

    @Test(arguments: [false, true]) func fullScoresEqualOneByOneGradients(svd: Bool) throws {
        let model = try self.model(svd: svd)
        let data = tinyTask(n: 12, seed: 6)
        let idx = [0, 3, 4, 5, 7, 8, 9, 11]  // chunks of 3: the pool's passes span several batches
        // The gradient buffer holds something else before: the scorer must put it back.
        for i in 0..<model.params.gradBuffer!.count { model.params.gradBuffer![i] = Float(i % 7) }
        let before = model.params.gradBuffer!.array
        var c = QualityConfig(); c.scoring = .full
        let s = try QualityScorer.score(model: model, data: data, indices: idx, config: c, learningRate: 0.01, batchSize: 3)
        #expect(model.params.gradBuffer!.array == before, "gradient buffer restored")
        let (g, losses) = try gradients(model, data, idx)
        let mean = (0..<g[0].count).map { j in g.reduce(0) { $0 + $1[j] } / Float(g.count) }
        let meanNorm = dot(mean, mean).squareRoot()
        for k in idx.indices {
            let norm = dot(g[k], g[k]).squareRoot()
            #expect(abs(s.gradNorm[k] - norm) <= 1e-4 * max(1, norm), "norm of example \(idx[k]): \(s.gradNorm[k]) vs \(norm)")
            let cos = dot(g[k], mean) / (norm * meanNorm)
            #expect(abs(s.alignment[k] - cos) <= 1e-4, "alignment of example \(idx[k]): \(s.alignment[k]) vs \(cos)")
            #expect(abs(s.reduction[k] - 0.01 * norm * norm) <= 1e-4 * max(1, norm * norm), "first-order reduction")
            #expect(abs(s.loss[k] - losses[k]) <= 1e-5)
        }
        #expect(Set(s.alignment.map { $0 > 0 }).count == 2, "some examples align with the mean, some against it")
    }

    @Test func headScoresEqualTheClassifiersOwnGradients() throws {
        let model = try self.model(svd: false)
        let data = tinyTask(n: 10, seed: 7)
        let idx = Array(0..<10)
        var c = QualityConfig(); c.scoring = .head
        let s = try QualityScorer.score(model: model, data: data, indices: idx, config: c, learningRate: 0.01, batchSize: 4)
        let (g, _) = try gradients(model, data, idx, only: "classifier.")
        let mean = (0..<g[0].count).map { j in g.reduce(0) { $0 + $1[j] } / Float(g.count) }
        for k in idx.indices {
            let norm = dot(g[k], g[k]).squareRoot()
            #expect(abs(s.gradNorm[k] - norm) <= 1e-4 * max(1, norm))
            #expect(abs(s.alignment[k] - dot(g[k], mean) / (norm * dot(mean, mean).squareRoot())) <= 1e-4)
        }
    }

    @Test func exactReductionIsTheLossDropAfterOneStepOnTheExample() throws {
        let model = try self.model(svd: true)
        let data = tinyTask(n: 6, seed: 9)
        var c = QualityConfig(); c.lossReduction = .exact
        let lr: Float = 0.05
        let values = model.params.trainable.map(\.value.array)
        let s = try QualityScorer.score(model: model, data: data, indices: [1, 2, 4], config: c, learningRate: lr, batchSize: 2)
        #expect(model.params.trainable.map(\.value.array) == values, "parameters put back")
        for (k, i) in [1, 2, 4].enumerated() {
            let (g, losses) = try gradients(model, data, [i])
            let saved = model.params.trainable.map(\.value.array)
            var off = 0
            for p in model.params.trainable { for j in 0..<p.count { p.value[j] -= lr * g[0][off + j] }; off += p.count }
            let labelled = data.batch([i], packed: true)
            let x = labelled.tokens, l = labelled.labels
            let after = try model.forward(x, labels: l).exampleLosses[0]
            for (p, v) in zip(model.params.trainable, saved) { for j in 0..<p.count { p.value[j] = v[j] } }
            #expect(abs(s.reduction[k] - (losses[0] - after)) <= 1e-5, "example \(i)")
            #expect(s.reduction[k] > 0, "a small step on its own gradient lowers the example's loss")
        }
    }

    @Test func zScoresQualityAndProbabilitiesByHand() {
        let z = QualityScores.zScores([1, 2, 3])
        #expect(abs(z[0] + 1.2247449) < 1e-6 && z[1] == 0 && abs(z[2] - 1.2247449) < 1e-6)
        #expect(QualityScores.zScores([4, 4]) == [0, 0])
        var s = QualityScores()
        s.indices = [0, 1, 2]; s.gradNorm = [1, 2, 3]; s.reduction = [5, 5, 5]; s.alignment = [3, 2, 1]
        var c = QualityConfig(); c.a1 = 0.5; c.a2 = 7; c.a3 = 2
        let q = s.quality(c)  // 0.5·z(g) + 2·z(a), z(a) = −z(g): −1.5·z(g)
        #expect(abs(q[0] - 1.5 * 1.2247449) < 1e-5 && abs(q[1]) < 1e-6 && abs(q[2] + 1.5 * 1.2247449) < 1e-5)
        let p = QualityScores.probabilities(quality: [0, Float(log(2.0))], tau: 1, floor: 0)
        #expect(abs(p[0] - 1.0 / 3) < 1e-7 && abs(p[1] - 2.0 / 3) < 1e-7)
        let f = QualityScores.probabilities(quality: [0, Float(log(2.0))], tau: 1, floor: 0.5)
        #expect(abs(f[0] - (0.5 / 3 + 0.25)) < 1e-7 && abs(f[1] - (1.0 / 3 + 0.25)) < 1e-7)
        let hot = QualityScores.probabilities(quality: [0, Float(log(2.0))], tau: 0.5, floor: 0)  // weights 1 : 4
        #expect(abs(hot[0] - 0.2) < 1e-7)
    }

    @Test func initialRanksByHand() {
        // Proportional with no bound reached.
        #expect(TsqLoRAMethod.initialRanks(sensitivity: [1, 1, 2], budget: 8, maxRank: 16) == [2, 2, 4])
        // 9·6/8 = 6.75 is above the maximum 4: fixed at 4, the other 5 shared 2.5 / 2.5, the tie to the first.
        #expect(TsqLoRAMethod.initialRanks(sensitivity: [1, 1, 6], budget: 9, maxRank: 4) == [3, 2, 4])
        // Below 1: fixed at 1; the rest shared again.
        #expect(TsqLoRAMethod.initialRanks(sensitivity: [0.01, 1, 1], budget: 6, maxRank: 16) == [1, 3, 2])
        // Zero sensitivity everywhere but one module.
        #expect(TsqLoRAMethod.initialRanks(sensitivity: [0, 0, 10], budget: 6, maxRank: 4) == [1, 1, 4])
        // Largest remainder: shares 1.5, 2.7, 4.8 -> 1, 2, 4 plus two for the largest fractions (.8, .7).
        #expect(TsqLoRAMethod.initialRanks(sensitivity: [15, 27, 48], budget: 9, maxRank: 16) == [1, 3, 5])
        for seed in 0..<50 as Range<UInt64> {  // every budget is kept exactly, every rank in bounds
            var rng = SplitMix64(seed: seed)
            let n = 1 + Int(rng.next() % 12), maxR = 1 + Int(rng.next() % 8)
            let s = (0..<n).map { _ in Double(rng.next() % 1000) / 100 }
            let budget = n + Int(rng.next() % UInt64(n * maxR - n + 1))
            let r = TsqLoRAMethod.initialRanks(sensitivity: s, budget: budget, maxRank: maxR)
            #expect(r.reduce(0, +) == budget && r.allSatisfy { (1...maxR).contains($0) }, "\(s) budget \(budget) max \(maxR): \(r)")
        }
    }

    @Test func warmUpSensitivityIsMeanAbsWeightTimesItsGradient() throws {
        let enc = try tinyEncoder(seed: 5)
        var cfg = TsqLoRAConfig(); cfg.elastic.lora.r = 2; cfg.elastic.maxRank = 4; cfg.elastic.lora.loraDropout = 0
        let method = try TsqLoRAMethod(config: cfg, backbone: enc, seed: 1)
        let model = try TaskModel(backbone: enc, numLabels: 2, problem: .singleLabel, seed: 2)
        model.setTrainable(adapted: method.isTrainable)
        _ = method.makeSampler(count: 8, batchSize: 4, seed: 3)
        try method.prepare(totalSteps: 20)
        let data = tinyTask(n: 8, seed: 4)
        let labelled = data.batch([0, 1, 2, 3], packed: true)
        let x = labelled.tokens, l = labelled.labels
        _ = try model.forward(x, labels: l)
        try model.backward()
        let measured = method.state!.sensitivity
        // The same batch with the frozen weights made trainable: their gradients directly.
        let paths = method.svdAdapters.map { $0.0 + ".weight" }
        model.setTrainable { method.isTrainable($0) || paths.contains($0) }
        _ = try model.forward(x, labels: l)
        try model.backward()
        for (m, path) in paths.enumerated() {
            let w = model.params[path]!
            let expected = (0..<w.count).reduce(0.0) { $0 + Double(abs(w.value[$1] * w.grad![$1])) } / Double(w.count)
            #expect(abs(measured[m] - expected) <= 1e-5 * max(expected, 1e-8), "\(path): \(measured[m]) vs \(expected)")
            #expect(expected > 0)
        }
    }

    @Test func theSamplerDrawsBySoftmaxProbabilities() throws {
        let q: [Float] = [0, Float(log(2.0)), Float(log(4.0)), -5]
        let p = QualityScores.probabilities(quality: q, tau: 1, floor: 0.2)  // 0.8·softmax + 0.05
        let sampler = WeightedSampler(count: 4, batchSize: 50, seed: 9)
        try sampler.setWeights(p)
        var counts = [Int](repeating: 0, count: 4)
        for b in 0..<sampler.batchesPerEpoch { for e in 0..<400 { for i in sampler.batch(epoch: e, index: b) { counts[i] += 1 } } }
        let n = Double(counts.reduce(0, +))
        let softmaxTotal = 1 + 2 + 4 + exp(-5.0)
        for i in 0..<4 {
            let expected = 0.8 * [1, 2, 4, exp(-5.0)][i] / softmaxTotal + 0.05
            #expect(abs(p[i] - expected) < 1e-9)
            #expect(abs(Double(counts[i]) / n - expected) < 0.01, "example \(i): drawn \(Double(counts[i]) / n), probability \(expected)")
        }
        #expect(counts[3] > 0, "the floor keeps the worst example drawable")
    }

    @Test func thePoolRotatesThroughEveryExample() throws {
        let enc = try tinyEncoder(seed: 5)
        var cfg = TsqLoRAConfig(); cfg.elastic.lora.r = 2; cfg.elastic.maxRank = 4; cfg.quality.poolSize = 7
        let method = try TsqLoRAMethod(config: cfg, backbone: enc, seed: 1)
        _ = method.makeSampler(count: 21, batchSize: 4, seed: 3)
        let pools = (1...3).map { method.pool(refresh: $0) }
        #expect(pools.allSatisfy { $0.count == 7 })
        #expect(Set(pools.flatMap { $0 }) == Set(0..<21), "three refreshes of 7 cover all 21 examples once")
        #expect(method.pool(refresh: 4) == pools[0], "then it starts over")
        #expect(pools[0] != Array(0..<7), "in a seeded order, not the file's (files are often grouped by class)")
    }

    @Test(arguments: [QualityScoring.head, .full]) func aTsqLoRARunScoresReweightsAndResizes(scoring: QualityScoring) throws {
        let enc = try tinyEncoder(seed: 6)
        var cfg = TsqLoRAConfig(); cfg.elastic.lora.r = 2; cfg.elastic.maxRank = 4; cfg.elastic.phases.tinit = 4; cfg.elastic.phases.tfinal = 4; cfg.elastic.deltaT = 2
        cfg.quality.scoring = scoring; cfg.quality.refreshEvery = 3; cfg.quality.poolSize = 12
        let method = try TsqLoRAMethod(config: cfg, backbone: enc, seed: 1)
        let model = try TaskModel(backbone: enc, numLabels: 2, problem: .singleLabel, seed: 2)
        var tc = TrainConfig(); tc.epochs = 4; tc.batchSize = 8; tc.lr = 1e-2; tc.warmupRatio = 0; tc.checkpointEvery = 0
        let t = try Trainer(model: model, method: method, config: tc, train: tinyTask(n: 40, seed: 3), dev: nil, labelNames: ["no", "yes"],
                            outputDir: tmpDir("tsqlora-\(scoring)"))
        try t.run()
        let state = try #require(method.state), sampler = try #require(method.sampler)
        #expect(t.step == 20 && state.ranksInitialised)
        #expect(state.scoredAt.filter { $0 > 0 }.count == 40, "six refreshes of 12 reach all 40 examples")
        #expect(Set((0..<40).map { sampler.probability($0) }).count > 10, "probabilities differ by quality")
        #expect(state.sensitivity.allSatisfy { $0 > 0 })
        #expect(method.ranks.values.reduce(0, +) == 2 * method.svdAdapters.count, "the budget is kept")
        #expect(Set(method.ranks.values).count > 1, "ranks moved between modules")
        #expect(model.params.trainable.allSatisfy { $0.value.array.allSatisfy(\.isFinite) })
    }
}
