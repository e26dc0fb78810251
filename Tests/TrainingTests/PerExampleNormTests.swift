import Foundation
import Testing
@testable import Adapters
@testable import Models
import RankwiseCore
@testable import Training

/// A tiny classifier with LoRA or SVD adapters (rank 3, no dropout), adapter and head trainable and
/// perturbed so that every gradient is non-trivial.
func tinyAdaptedClassifier(svd: Bool) throws -> TaskModel {
    let enc = try tinyEncoder(seed: 3)
    if svd {
        var t = LoRATargeting(); t.r = 3; t.loraDropout = 0
        _ = try SVDAdapter.attach(to: enc, targeting: t, initialRank: 3, seed: 2, method: "AdaLoRA")
    } else {
        _ = try LoRA.attach(to: enc, config: LoRAConfig(r: 3, dropout: 0), seed: 2)
    }
    let model = try TaskModel(backbone: enc, numLabels: 2, problem: .singleLabel, seed: 4)
    model.params.setTrainable { $0.contains("lora_") || $0.hasPrefix("classifier.") }
    var rng = SplitMix64(seed: 8)
    for p in model.params.trainable { for i in 0..<p.count { p.value[i] += 0.3 * rng.nextNormal() } }
    return model
}

/// Per-example gradient norms collected in one batched backward equal the norms of each example's
/// own gradient computed alone, for LoRA and SVD adapters plus the classifier head.
@Suite struct PerExampleNormTests {
    @Test(arguments: [false, true]) func batchedNormsEqualOneByOne(svd: Bool) throws {
        let model = try tinyAdaptedClassifier(svd: svd)
        let enc = model.backbone
        let data = tinyTask(n: 4, seed: 6)
        let idx = [0, 1, 2, 3]
        // Batched: one forward and backward of the mean loss, norms collected on the way.
        let norms = PerExampleNorms()
        enc.perExample = norms
        let labelled = data.batch(idx, packed: true)
        let input = labelled.tokens, labels = labelled.labels
        #expect(Set(input.layout.lengths).count > 1, "mixed lengths")
        model.params.zeroGrad()
        _ = try model.forward(input, labels: labels)
        try model.backward()
        let batched = norms.norms(meanOver: idx.count)
        // One by one, without the collector.
        enc.perExample = nil
        for (k, i) in idx.enumerated() {
            model.params.zeroGrad()
            let labelled = data.batch([i], packed: true)
            let one = labelled.tokens, l = labelled.labels
            _ = try model.forward(one, labels: l)
            try model.backward()
            let exact = model.params.trainable.reduce(Float(0)) { acc, p in acc + p.grad!.array.reduce(0) { $0 + $1 * $1 } }.squareRoot()
            #expect(abs(batched[k] - exact) <= 1e-4 * max(1, exact), "example \(i): batched \(batched[k]) vs alone \(exact)")
            #expect(exact > 1e-3)
        }
    }
}
