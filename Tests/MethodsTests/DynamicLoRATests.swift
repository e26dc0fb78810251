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
    /// of each sequence feeds its gate, so dx has a term from every row of the sequence).
    @Test func gateGradientsMatchFiniteDifferences() throws {
        var rng = SplitMix64(seed: 11)
        func rand(_ n: Int) -> [Float] { (0..<n).map { _ in rng.nextFloat() - 0.5 } }
        let (inD, outD, n) = (4, 3, 5)
        let cfg = LoRAConfig(r: 2, alpha: 4, dropout: 0, targetModules: ["l"])
        let layout = SequenceLayout.packed(lengths: [2, 3])
        let ad = DynamicLoRAAdapter(path: "l", inDim: inD, outDim: outD, config: cfg, a: Tensor(shape: [2, inD], values: rand(2 * inD)),
                                    b: Tensor(shape: [outD, 2], values: rand(outD * 2)), gate: true, gateBiasInit: 0.3, layout: { layout })
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
    }

    @Test func weightsAreAppliedLoggedAndExported() throws {
        let cfg = BertConfig(hiddenSize: 8, numHeads: 2, numLayers: 2, intermediateSize: 16, vocabSize: 30, maxPositions: 16)
        let enc = try BertModel(config: cfg, weights: RandomWeights(seed: 1))
        var c = DynamicLoRAConfig()
        c.lora.r = 2; c.lora.targetModules = ["query"]; c.updateEvery = 2; c.temperature = 1; c.importanceBeta = 0.5
        let m = try DynamicLoRAMethod(config: c, encoder: enc, seed: 3)
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
        let model = try SequenceClassifier(encoder: enc, numLabels: 2, problem: .singleLabel, seed: 3)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rankwise-dynamic-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        try m.save(directory: dir, model: model, metadata: AdapterMetadata(labelNames: ["a", "b"], problem: "single_label_classification", maxLength: 16, baseModel: "x", method: "dynamic"))
        let f = try SafeTensorsFile(path: dir + "/adapter_model.safetensors")
        let b = try f.floats("base_model.model.bert.\(m.dynamicAdapters.first { $0.0.contains("layer.1") }!.0).lora_B.weight")
        #expect(zip(b, top.lora.b.value.array).allSatisfy { abs($0 - $1 * top.layerWeight) < 1e-6 })
        #expect(FileManager.default.fileExists(atPath: dir + "/" + DynamicLoRAMethod.gatesFile))
        let input = BertInput(batch: 1, seq: 4, ids: [2, 5, 7, 3])
        let before = try model.forward(input).logits
        let enc2 = try BertModel(config: cfg, weights: RandomWeights(seed: 1))
        let (loaded, head) = try DynamicLoRAMethod.load(directory: dir, encoder: enc2)
        let after = try SequenceClassifier(encoder: enc2, numLabels: 2, problem: .singleLabel, head: head).forward(input).logits
        #expect(zip(before, after).allSatisfy { abs($0 - $1) < 1e-5 }, "\(before) vs \(after)")
        #expect((loaded as! DynamicLoRAMethod).dynamicAdapters.allSatisfy { $0.1.gateWeight != nil })
        #expect { try PEFTFormat.merge(model: model, labelNames: ["a", "b"], baseDirectory: dir, to: dir + "-merged") } throws: { "\($0)".contains("input gate") }
    }
}
