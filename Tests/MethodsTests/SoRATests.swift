import Foundation
import Testing
@testable import Adapters
@testable import Methods
@testable import Models
import RankwiseCore
import SafeTensors
@testable import Training

/// SoRA on small cases worked by hand: the gated adapter, the proximal step, the schedule, the L1
/// penalty and the export that folds the gate into B and drops zero-gate ranks.
@Suite struct SoRATests {
    /// A = [[1, 0], [0, 1]], g = [2, 0], B = [[1, 1], [0, 1]], s = 0.5, x = [3, 4]: u = x Aᵀ = [3, 4],
    /// u ⊙ g = [6, 0], y += s·(u ⊙ g) Bᵀ = 0.5·[6, 0] = [3, 0]. With dy = [1, 2]: d(u ⊙ g) = s·dy B = [0.5, 1.5],
    /// dg = d(u ⊙ g) ⊙ u = [1.5, 6] (the closed gate still gets a gradient), dB = s·dyᵀ (u ⊙ g) = [[3, 0], [6, 0]],
    /// du = d(u ⊙ g) ⊙ g = [1, 0], dA = duᵀ x = [[3, 4], [0, 0]], dx = du A = [1, 0].
    @Test func gatedAdapterByHand() throws {
        let ad = SoRAAdapter(path: "l", inDim: 2, outDim: 2, r: 2, scaling: 0.5, dropout: 0, a: Tensor(shape: [2, 2], values: [1, 0, 0, 1]),
                             b: Tensor(shape: [2, 2], values: [1, 1, 0, 1]), gate: Tensor(shape: [2], values: [2, 0]))
        let ps = ParameterSet()
        for p in ad.params { ps.add(p) }
        ps.setTrainable { _ in true }
        var y: [Float] = [10, 20]
        ad.forward(x: [3, 4], y: &y, n: 1, training: true, seed: 0)
        #expect(y == [13, 20])
        var dx: [Float] = [0, 0]
        ad.backward(dy: [1, 2], x: [3, 4], dx: &dx, n: 1)
        #expect(ad.gate.grad!.array == [1.5, 6])
        #expect(ad.b.grad!.array == [3, 0, 6, 0])
        #expect(ad.a.grad!.array == [3, 4, 0, 0])
        #expect(dx == [1, 0])
        #expect(ad.activeRank == 1)
        let (bg, kept) = ad.folded()
        #expect(bg.array == [2, 0, 0, 0] && kept == [0])
        #expect(ad.delta().array == [1, 0, 0, 0])  // 0.5 · B diag(g) A
    }

    @Test func scheduleAndPenalty() throws {
        var c = SoRAConfig()
        c.threshold = 1e-4; c.maxThreshold = 5e-4; c.stages = 5
        c.schedule = .linear
        #expect(c.thresholds.map { ($0 * 1e5).rounded() } == [10, 20, 30, 40, 50])
        c.schedule = .expLinear
        #expect(zip(c.thresholds, [1e-4, 1.4953e-4, 2.2361e-4, 3.3437e-4, 5e-4]).allSatisfy { abs($0 - Float($1)) < 1e-7 })
        c.schedule = .none
        #expect(c.thresholds == [1e-4])
        #expect(try SettingsTable.decode(SoRAConfig.self, values: ["schedule": "log_linear"]).schedule == .logLinear)
        #expect { try SettingsTable.decode(SoRAConfig.self, values: ["schedule": "cubic"]) } throws: {
            "\($0)".contains("--schedule: expected one of none, linear, log_linear, exp_linear")
        }
        // η · mean |g| and its gradient η · sign(g) / N
        let g = Param(name: "g", value: Tensor(shape: [4], values: [0.5, -2, 0, 1.5]))
        let ps = ParameterSet(); ps.add(g); ps.setTrainable { _ in true }
        let l1 = GateL1(gates: [g], weight: 2)
        #expect(abs(l1.loss() - 2) < 1e-6)  // 2 · 4 / 4
        l1.backward(scale: 1)
        #expect(g.grad!.array == [0.5, -0.5, 0, 0.5])
    }

    /// A tiny backbone: the proximal step soft-thresholds every gate by ξ of the step's stage, logs a
    /// change of ranks, and the PEFT export (gate folded, zero ranks dropped) gives the same outputs.
    @Test func proximalStepAndExport() throws {
        let cfg = BertConfig(hiddenSize: 8, numHeads: 2, numLayers: 1, intermediateSize: 16, vocabSize: 30, maxPositions: 16)
        let enc = try BertModel(config: cfg, weights: RandomWeights(seed: 1))
        var c = SoRAConfig()
        c.lora.r = 3; c.lora.targetModules = ["query", "value"]; c.lora.loraDropout = 0
        c.schedule = .linear; c.threshold = 0.1; c.maxThreshold = 0.3; c.stages = 3
        let m = try SoRAMethod(config: c, backbone: enc, seed: 5)
        enc.params.setTrainable { $0.contains("lora_") }
        let q = m.soraAdapters.first { $0.0.hasSuffix("query") }!.1
        q.gate.value[0] = 0.25; q.gate.value[1] = -0.05; q.gate.value[2] = -1
        for i in 0..<q.b.count { q.b.value[i] = Float(i % 5) * 0.1 - 0.2 }  // a non-zero B so the adapter changes the output
        var logged: [[String: Any]] = []
        let ctx = StepContext(step: 1, totalSteps: 30, epoch: 0, optimizer: AdamW(params: enc.params), sampler: WeightedSampler(count: 4, batchSize: 2, seed: 0),
                              log: { logged.append($0) })
        try m.afterOptimizerStep(ctx)  // step 0 of 30: stage 0, ξ = 0.1
        #expect(abs(q.gate.value[0] - 0.15) < 1e-6 && q.gate.value[1] == 0 && abs(q.gate.value[2] + 0.9) < 1e-6)
        #expect(m.ranks[q.gate.name.replacingOccurrences(of: ".lora_gate", with: "")] == 2)
        #expect(logged.count == 1 && logged[0]["event"] as? String == "ranks")
        #expect(abs(m.threshold(step: 10, totalSteps: 30) - 0.2) < 1e-6 && abs(m.threshold(step: 29, totalSteps: 30) - 0.3) < 1e-6)
        // The export (PEFT LoRA, rank_pattern) reads back to the same model output.
        let model = try TaskModel(backbone: enc, numLabels: 2, problem: .singleLabel, seed: 3)
        let input = TokenBatch(batch: 2, seq: 4, ids: [2, 5, 7, 3, 2, 9, 4, 3])
        let before = try model.forward(input).logits
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rankwise-sora-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        try m.save(directory: dir, model: model, metadata: AdapterMetadata(labelNames: ["a", "b"], problem: "single_label_classification", maxLength: 16, baseModel: "x", method: "sora"))
        let cfgJSON = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/adapter_config.json"))) as! [String: Any]
        #expect((cfgJSON["rank_pattern"] as! [String: Int])["encoder.layer.0.attention.self.query"] == 2)
        let enc2 = try BertModel(config: cfg, weights: RandomWeights(seed: 1))
        let (loaded, head) = try SoRAMethod.load(directory: dir, backbone: enc2)
        #expect(loaded.ranks == m.ranks)
        let model2 = try TaskModel(backbone: enc2, numLabels: 2, problem: .singleLabel, head: head)
        let after = try model2.forward(input).logits
        #expect(zip(before, after).allSatisfy { abs($0 - $1) < 1e-5 }, "\(before) vs \(after)")
    }
}
