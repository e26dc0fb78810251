import Foundation
import Testing
@testable import Adapters
@testable import Models
import RankwiseCore

/// Finite differences through LoRA (with its dropout), the classifier dropout and both losses.
@Suite struct LoRAGradTests {
    @Test(arguments: [TaskModel.Problem.singleLabel, .regression])
    func loraAndHeadGradientsMatchFiniteDifferences(problem: TaskModel.Problem) throws {
        let cfg = BertConfig(hiddenSize: 8, numHeads: 2, numLayers: 2, intermediateSize: 16, vocabSize: 20, maxPositions: 10,
                             hiddenDropout: 0.1, attentionDropout: 0.1)
        let enc = try BertModel(config: cfg, weights: RandomWeights(seed: 2, std: 0.3), withPooler: true)
        let ads = try LoRA.attach(to: enc, config: LoRAConfig(r: 3, alpha: 6, dropout: 0.2, targetModules: ["query", "value", "output.dense"]), seed: 4)
        #expect(ads.count == 8)  // per layer: query, value, and both "output.dense" (PEFT suffix rule)
        var rng = SplitMix64(seed: 8)
        for ad in ads.values { for i in 0..<ad.b.count { ad.b.value[i] = 0.3 * rng.nextNormal() } }  // B = 0 would hide A's gradient
        let n = problem == .regression ? 1 : 3
        let m = try TaskModel(backbone: enc, numLabels: n, problem: problem, seed: 1)
        for i in 0..<m.params["classifier.weight"]!.count { m.params["classifier.weight"]!.value[i] = 0.5 * rng.nextNormal() }
        m.params.setTrainable { $0.contains("lora_") || $0.hasPrefix("classifier.") }
        let input = TokenBatch(batch: 3, seq: 4, ids: [1, 5, 6, 2, 1, 7, 2, 0, 1, 9, 9, 2], mask: [1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1])
        let labels: [Int32] = [0, 2, 1], targets: [Float] = [0.5, -1, 2]
        func loss() throws -> Double {
            Double(try m.forward(input, labels: problem == .singleLabel ? labels : nil, targets: problem == .regression ? targets : nil,
                                 training: true, seed: 77).loss!)
        }
        _ = try loss()
        try m.backward()
        let eps: Float = 2e-3
        for p in m.params.trainable {
            var diff: Float = 0, norm: Float = 0
            let step = max(1, p.count / 12)
            for i in stride(from: 0, to: p.count, by: step) {
                let o = p.value[i]
                p.value[i] = o + eps; let lp = try loss()
                p.value[i] = o - eps; let lm = try loss()
                p.value[i] = o
                let num = Float((lp - lm) / Double(2 * eps))
                diff += (num - p.grad![i]) * (num - p.grad![i]); norm += num * num
            }
            #expect(norm.squareRoot() > 1e-3, "\(p.name): gradient vanished")
            #expect(diff.squareRoot() <= 2e-2 * norm.squareRoot() + 1e-3, "\(p.name): |Δ| \(diff.squareRoot()) vs \(norm.squareRoot())")
        }
    }

    @Test func targetModulesFollowPEFTSuffixRule() {
        let c = LoRAConfig(targetModules: ["query", "output.dense"])
        #expect(c.matches("encoder.layer.0.attention.self.query"))
        #expect(c.matches("encoder.layer.0.output.dense"))
        #expect(c.matches("encoder.layer.0.attention.output.dense"))
        #expect(!c.matches("pooler.dense"))
        #expect(!c.matches("encoder.layer.0.attention.self.queryx"))
    }
}
