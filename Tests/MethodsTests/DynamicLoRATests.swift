import Foundation
import Testing
@testable import Adapters
@testable import Methods
@testable import Models
import RankwiseCore
import SafeTensors
@testable import Training

/// Dynamic LoRA (our reading): the layer weights worked by hand, the per-sequence input gate against
/// finite differences, the weights applied and logged, and the export (weights folded into B, gates aside).
@Suite struct DynamicLoRATests {
    /// `--mode` parses from its text into the enum and says what it accepts; the rank options are checked in
    /// either mode (they were ignored in scale mode, and `--moves-per-round 0` passed though nothing could move).
    @Test func modeAndRankOptionsAreChecked() throws {
        let entry = try MethodRegistry.entry("dynamic")
        #expect(try SettingsTable.decode(DynamicLoRAConfig.self, values: ["mode": "ranks"]).mode == .ranks)
        #expect(entry.options.first { $0.key == "mode" }?.defaultText == "scale")
        #expect { try SettingsTable.decode(DynamicLoRAConfig.self, values: ["mode": "rank"]) } throws: {
            "\($0)".contains("--mode: expected one of scale, ranks")
        }
        for (values, says) in [(["moves-per-round": "0"], "--moves-per-round must be at least 1"),
                               (["moves-per-round": "0", "mode": "ranks"], "--moves-per-round must be at least 1"),
                               (["max-rank": "0"], "--max-rank must be at least 1"),
                               (["tinit-fraction": "2"], "tinit-fraction")] {
            #expect { try SettingsTable.decode(DynamicLoRAConfig.self, values: values).validate() } throws: { "\($0)".contains(says) }
        }
        try SettingsTable.decode(DynamicLoRAConfig.self, values: ["r": "32"]).validate()  // scale mode: max-rank 16 below r is fine
    }

    /// I = [1, 3]: mean 2, z = [0.5, 1.5], softmax = [1, e] / (1 + e), times 2 layers = [0.5379, 1.4621].
    @Test func layerWeightsByHand() {
        let w = DynamicLoRAMethod.weights(importance: [1, 3], temperature: 1)
        let e = Float(M_E)
        #expect(abs(w[0] - 2 / (1 + e)) < 1e-6 && abs(w[1] - 2 * e / (1 + e)) < 1e-6)
        #expect(abs(w.reduce(0, +) / 2 - 1) < 1e-6)  // mean 1
        #expect(DynamicLoRAMethod.weights(importance: [0, 0, 0], temperature: 1) == [1, 1, 1])
        let flat = DynamicLoRAMethod.weights(importance: [1, 1000], temperature: 1e6)  // a huge temperature: all near 1
        #expect(abs(flat[0] - 1) < 1e-3 && abs(flat[1] - 1) < 1e-3)
    }

    /// Two sequences (2 and 3 rows, packed) through a gated adapter with layer weight 1.5: the gate's
    /// parameters, A, B and the input get the gradients of Σ c ⊙ y (central differences; the mean input
    /// of each sequence feeds its gate, so dx has a term from every row of the sequence). The causal gate
    /// (a causal backbone: the mean over the tokens so far) gets the same check, and a token's output must
    /// not move when a later token's input does.
    @Test(arguments: [false, true]) func gateGradientsMatchFiniteDifferences(causal: Bool) throws {
        var rng = SplitMix64(seed: 11)
        func rand(_ n: Int) -> [Float] { (0..<n).map { _ in rng.nextFloat() - 0.5 } }
        let (inD, outD, n) = (4, 3, 5)
        let cfg = LoRAConfig(r: 2, alpha: 4, dropout: 0, targetModules: ["l"])
        let layout = SequenceLayout.packed(lengths: [2, 3])
        let ad = DynamicLoRAAdapter(path: "l", inDim: inD, outDim: outD, config: cfg, a: Tensor(shape: [2, inD], values: rand(2 * inD)),
                                    b: Tensor(shape: [outD, 2], values: rand(outD * 2)), gate: true, gateBiasInit: 0.3, causal: causal,
                                    layout: { layout })
        ad.layerWeight = 1.5
        for (i, v) in rand(inD).enumerated() { ad.gateWeight!.value[i] = 2 * v }
        let ps = ParameterSet()
        for p in ad.params { ps.add(p) }
        ps.setTrainable { _ in true }
        let x = rand(n * inD), c = rand(n * outD)
        func loss(_ xs: [Float]) -> Float {
            var y = [Float](repeating: 0, count: n * outD)
            ad.forward(x: xs, y: &y, n: n, training: false, seed: 0)
            return zip(y, c).map { $0 * $1 }.reduce(0, +)
        }
        _ = loss(x)
        var dx = [Float](repeating: 0, count: n * inD)
        ad.backward(dy: c, x: x, dx: &dx, n: n)
        let h: Float = 1e-2
        for p in ad.params {
            let g = p.grad!.array
            for k in 0..<p.count {
                let v = p.value[k]
                p.value[k] = v + h; let up = loss(x); p.value[k] = v - h; let down = loss(x); p.value[k] = v
                #expect(abs((up - down) / (2 * h) - g[k]) < 2e-3, "\(p.name)[\(k)]")
            }
        }
        for i in 0..<(n * inD) {
            var xu = x, xd = x
            xu[i] += h; xd[i] -= h
            #expect(abs((loss(xu) - loss(xd)) / (2 * h) - dx[i]) < 2e-3, "dx[\(i)]")
        }
        // Row 3 is the second token of the second sequence: rows 2 and 3 must not see row 4 when causal.
        func output(_ xs: [Float]) -> [Float] {
            var y = [Float](repeating: 0, count: n * outD)
            ad.forward(x: xs, y: &y, n: n, training: false, seed: 0)
            return y
        }
        var later = x
        for j in 0..<inD { later[4 * inD + j] += 1 }
        let (before, after) = (output(x), output(later))
        let earlierRowsMoved = (2 * outD..<4 * outD).contains { abs(before[$0] - after[$0]) > 1e-7 }
        #expect(earlierRowsMoved == !causal, "causal \(causal): an earlier token's output moved with a later token")
    }

    @Test func weightsAreAppliedLoggedAndExported() throws {
        let cfg = BertConfig(hiddenSize: 8, numHeads: 2, numLayers: 2, intermediateSize: 16, vocabSize: 30, maxPositions: 16)
        let enc = try BertModel(config: cfg, weights: RandomWeights(seed: 1))
        var c = DynamicLoRAConfig()
        c.lora.r = 2; c.lora.targetModules = ["query"]; c.updateEvery = 2; c.temperature = 1; c.importanceBeta = 0.5
        let m = try DynamicLoRAMethod(config: c, backbone: enc, seed: 3)
        try m.prepare(totalSteps: 10)
        enc.params.setTrainable { $0.contains("lora_") }
        for (_, ad) in m.dynamicAdapters { for p in ad.lora.params { for k in 0..<p.count { p.value[k] = 0.1; p.grad![k] = 0.1 } } }
        let top = m.dynamicAdapters.first { $0.0.contains("layer.1") }!.1
        for k in 0..<top.lora.b.count { top.lora.b.grad![k] = 1 }  // layer 1 twice as... more important
        var logged: [[String: Any]] = []
        func ctx(_ s: Int) -> StepContext {
            StepContext(step: s, totalSteps: 10, epoch: 0, optimizer: AdamW(params: enc.params), sampler: WeightedSampler(count: 4, batchSize: 2, seed: 0), log: { logged.append($0) })
        }
        try m.afterOptimizerStep(ctx(1))
        #expect(logged.isEmpty && m.dynamicAdapters.allSatisfy { $0.1.layerWeight == 1 })
        try m.afterOptimizerStep(ctx(2))
        #expect(logged.count == 1 && logged[0]["event"] as? String == "layer_weights")
        let expected = DynamicLoRAMethod.weights(importance: m.state.importance, temperature: 1)
        #expect(top.layerWeight == expected[1] && top.layerWeight > 1)
        // Export: B times the layer weight; the gates in their own file; a resumed state hands its weights over.
        let model = try TaskModel(backbone: enc, numLabels: 2, problem: .singleLabel, seed: 3)
        let (loaded, dir) = try saveAndLoad(m, model, cfg, name: "scale")
        let f = try SafeTensorsFile(path: dir + "/adapter_model.safetensors")
        let b = try f.floats("base_model.model.bert.\(m.dynamicAdapters.first { $0.0.contains("layer.1") }!.0).lora_B.weight")
        #expect(zip(b, top.lora.b.value.array).allSatisfy { abs($0 - $1 * top.layerWeight) < 1e-6 })
        #expect(FileManager.default.fileExists(atPath: dir + "/" + DynamicLoRAMethod.gatesFile))
        #expect((loaded as! DynamicLoRAMethod).dynamicAdapters.allSatisfy { $0.1.gateWeight != nil })
        #expect { try MergedModel.write(model: model, labelNames: ["a", "b"], baseDirectory: dir, to: dir + "-merged") } throws: { "\($0)".contains("input gate") }
    }

    /// Shares of a budget of r = 4 per module: proportional to modules x weight, within [m, m · maxRank],
    /// rounded by largest remainder.
    @Test func layerTargetsByHand() {
        #expect(DynamicLoRAMethod.layerTargets(weights: [1, 1], modules: [2, 2], r: 4, maxRank: 8) == [8, 8])
        // m·w = 1, 3 of 16 ranks: 4 and 12.
        #expect(DynamicLoRAMethod.layerTargets(weights: [0.5, 1.5], modules: [2, 2], r: 4, maxRank: 8) == [4, 12])
        // maxRank 5: the second layer holds at most 10, the first takes the other 6.
        #expect(DynamicLoRAMethod.layerTargets(weights: [0.5, 1.5], modules: [2, 2], r: 4, maxRank: 5) == [6, 10])
        // 10 ranks split 1:2 = 3.33 and 6.67: floors 3 and 6, the larger remainder gets the last one.
        #expect(DynamicLoRAMethod.layerTargets(weights: [2.0 / 3, 4.0 / 3], modules: [1, 1], r: 5, maxRank: 10) == [3, 7])
        // A weight near zero still leaves a rank per module.
        #expect(DynamicLoRAMethod.layerTargets(weights: [0.001, 1.999], modules: [3, 3], r: 2, maxRank: 4) == [3, 9])
        // Uneven layers: 3 modules and 1, equal weights: 4 x 4 = 16 ranks, 12 and 4.
        #expect(DynamicLoRAMethod.layerTargets(weights: [1, 1], modules: [3, 1], r: 4, maxRank: 8) == [12, 4])
        // Clamped at both ends (found by review; an earlier version trapped on the first and gave [73, 7] on
        // the second): a budget at the floor leaves every layer at one rank per module; a layer at its
        // ceiling leaves the rest to the other.
        #expect(DynamicLoRAMethod.layerTargets(weights: [2.5, 0.25, 0.25], modules: [1, 1, 1], r: 1, maxRank: 2) == [1, 1, 1])
        #expect(DynamicLoRAMethod.layerTargets(weights: [1.9, 0.1], modules: [6, 6], r: 8, maxRank: 12) == [72, 24])
        // Any weights: the shares add up to the budget and stay within their bounds.
        var rng = SplitMix64(seed: 4)
        for _ in 0..<300 {
            let layers = 1 + Int(rng.next() % 6), r = 1 + Int(rng.next() % 8), maxRank = r + Int(rng.next() % 9)
            let modules = (0..<layers).map { _ in 1 + Int(rng.next() % 6) }
            let w = (0..<layers).map { _ in rng.nextFloat() < 0.2 ? 0 : 5 * rng.nextFloat() }
            let t = DynamicLoRAMethod.layerTargets(weights: w, modules: modules, r: r, maxRank: maxRank)
            #expect(t.reduce(0, +) == modules.reduce(0, +) * r, "\(w) \(modules) r \(r) max \(maxRank): \(t)")
            #expect(zip(t, modules).allSatisfy { $0 >= $1 && $0 <= $1 * maxRank }, "\(w) \(modules): \(t)")
        }
    }

    /// `ranks` mode on a 2-layer model: with the top layer weighted 3x, a round moves ranks from layer 0 to
    /// layer 1, the lowest-scoring ones first, keeps the budget, zeroes a pruned rank's A row and B column,
    /// grows ranks with zero B (the output of the grown rank alone is unchanged), A rows orthogonal to the
    /// module's others at their mean norm; the export keeps per-module ranks and loads to the same logits.
    @Test func ranksModeMovesRanksToTheHeavierLayer() throws {
        let cfg = BertConfig(hiddenSize: 8, numHeads: 2, numLayers: 2, intermediateSize: 16, vocabSize: 30, maxPositions: 16)
        let enc = try BertModel(config: cfg, weights: RandomWeights(seed: 1))
        var c = DynamicLoRAConfig()
        c.lora.r = 2; c.lora.targetModules = ["query", "value"]; c.mode = .ranks; c.maxRank = 4; c.movesPerRound = 3; c.gate = false
        let m = try DynamicLoRAMethod(config: c, backbone: enc, seed: 3)
        try m.prepare(totalSteps: 100)
        enc.params.setTrainable { $0.contains("lora_") }
        var rng = SplitMix64(seed: 9)
        for (_, ad) in m.dynamicAdapters {
            for j in 0..<2 { for o in 0..<8 { ad.lora.b.value[o * 4 + j] = rng.nextFloat() - 0.5 } }
            for p in ad.lora.params { for k in 0..<p.count { p.grad![k] = rng.nextFloat() - 0.5 } }
        }
        // Ranks start at r of the 4 allocated; the others are zero.
        #expect(m.ranks.values.allSatisfy { $0 == 2 } && m.maxRank == 4)
        let q0 = m.dynamicAdapters.first { $0.0.contains("layer.0") && $0.0.hasSuffix("query") }!.1.lora
        #expect((2 * 8..<4 * 8).allSatisfy { q0.a.value[$0] == 0 })
        m.state.sensitivity.update(m.state.params)
        m.state.sensitivity.update(m.state.params)
        m.state.weights = [0.5, 1.5]  // targets: 2 and 6 of 8 ranks
        let scores = m.dynamicAdapters.map { m.state.sensitivity.rankScores(a: $0.1.lora.a, b: $0.1.lora.b) }
        let model = try TaskModel(backbone: enc, numLabels: 2, problem: .singleLabel, seed: 3)
        let moved = m.moveRanks(step: 50, optimizer: AdamW(params: enc.params))
        #expect(moved.count == 2, "\(moved)")  // 4 -> 2 in layer 0, 4 -> 6 in layer 1
        #expect(m.layerRanks == [2, 6] && m.ranks.values.reduce(0, +) == 8 && m.ranks.values.allSatisfy { $0 >= 1 })
        // Layer 0's two lowest-scoring ranks (never a module's last) went.
        let l0 = m.dynamicAdapters.indices.filter { m.layerOf[$0] == 0 }
        var offers: [(Float, Int, Int)] = []
        for i in l0 { for j in 0..<2 { offers.append((scores[i][j], i, j)) } }
        offers.sort { $0 < $1 }
        var expectPruned: [(Int, Int)] = [], left = Dictionary(uniqueKeysWithValues: l0.map { ($0, 2) })
        for (_, i, j) in offers where expectPruned.count < 2 && left[i]! > 1 { expectPruned.append((i, j)); left[i]! -= 1 }
        for (i, j) in expectPruned {
            let l = m.dynamicAdapters[i].1.lora
            #expect(!m.state.active[i][j])
            #expect((0..<8).allSatisfy { l.a.value[j * 8 + $0] == 0 && l.b.value[$0 * 4 + j] == 0 })
        }
        // Grown ranks: B column zero, A row orthogonal to the module's other active rows, at their mean norm.
        for i in m.dynamicAdapters.indices where m.layerOf[i] == 1 {
            let l = m.dynamicAdapters[i].1.lora
            let act = (0..<4).filter { m.state.active[i][$0] }
            func row(_ j: Int) -> [Float] { (0..<8).map { l.a.value[j * 8 + $0] } }
            for j in act where j >= 2 {
                #expect((0..<8).allSatisfy { l.b.value[$0 * 4 + j] == 0 })
                for o in act where o != j { #expect(abs(zip(row(j), row(o)).map { $0 * $1 }.reduce(0, +)) < 1e-5) }
                let norm = zip(row(j), row(j)).map { $0 * $1 }.reduce(0, +).squareRoot()
                let mean = [0, 1].map { o in zip(row(o), row(o)).map { $0 * $1 }.reduce(0, +).squareRoot() }.reduce(0, +) / 2
                #expect(abs(norm - mean) < 1e-5)
            }
        }
        // Export with rank_pattern; loading gives the same logits and ranks.
        let (loaded, dir) = try saveAndLoad(m, model, cfg, name: "ranks")
        #expect(loaded.ranks == m.ranks)
        let f = try SafeTensorsFile(path: dir + "/adapter_model.safetensors")
        let q1 = m.dynamicAdapters.first { $0.0.contains("layer.1") && $0.0.hasSuffix("query") }!
        #expect(try f.floats("base_model.model.bert.\(q1.0).lora_A.weight").count == m.ranks[q1.0]! * 8)
    }

    /// Saves `m` with `model`, loads the directory into a fresh backbone and expects the same logits on a
    /// probe; returns the loaded method and the directory.
    func saveAndLoad(_ m: DynamicLoRAMethod, _ model: TaskModel, _ cfg: BertConfig, name: String) throws -> (TuningMethod, String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rankwise-dynamic-\(name)-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        try m.save(directory: dir, model: model, metadata: AdapterMetadata(labelNames: ["a", "b"], problem: "single_label_classification", maxLength: 16, baseModel: "x", method: "dynamic"))
        let input = TokenBatch(batch: 1, seq: 4, ids: [2, 5, 7, 3])
        let before = try model.forward(input).logits
        let enc2 = try BertModel(config: cfg, weights: RandomWeights(seed: 1))
        let (loaded, head) = try DynamicLoRAMethod.load(directory: dir, backbone: enc2)
        let after = try TaskModel(backbone: enc2, numLabels: 2, problem: .singleLabel, head: head).forward(input).logits
        #expect(zip(before, after).allSatisfy { abs($0 - $1) < 1e-5 }, "\(name): \(before) vs \(after)")
        return (loaded, dir)
    }
}
