import Foundation
import Testing
@testable import Adapters
@testable import Models
@testable import Methods
import RankwiseCore
import SafeTensors

/// Saving and loading SVD-form adapters in PEFT's AdaLoRA format.
@Suite struct AdaLoRAFormatTests {
    func tiny(seed: UInt64) throws -> (TaskModel, [String: SVDAdapter], AdaLoRAConfig) {
        let cfg = BertConfig(hiddenSize: 8, numHeads: 2, numLayers: 1, intermediateSize: 16, vocabSize: 20, maxPositions: 8)
        let enc = try BertModel(config: cfg, weights: RandomWeights(seed: 1), withPooler: true)
        var c = AdaLoRAConfig()
        c.initR = 3; c.lora.r = 1; c.lora.alpha = 4; c.lora.loraDropout = 0; c.lora.targetModules = ["query", "value", "output.dense"]
        let ads = try SVDAdapter.attach(to: enc, targeting: c.lora, initialRank: c.initR, seed: seed, method: "AdaLoRA")
        var rng = SplitMix64(seed: seed)
        for ad in ads.values { for i in 0..<ad.rMax { ad.e.value[i] = rng.nextNormal() } }
        let m = try TaskModel(backbone: enc, numLabels: 2, problem: .singleLabel, seed: 3)
        return (m, ads, c)
    }

    @Test func stoppedBeforeAllocationSavesAFullPattern() throws {
        let (m, ads, c) = try tiny(seed: 5)
        let alloc = AdaLoRAAllocator(adapters: ads, config: AdaLoRASchedule(c, totalStep: 10))
        #expect(alloc.rankPattern == nil)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rankwise-ada-full-\(getpid())").path
        try AdaLoRAFormat.save(directory: dir, model: m, adapters: alloc.adapters, pattern: alloc.patternForSaving, targeting: c.lora, initR: c.initR, schedule: [:],
                               extra: .init(labelNames: ["a", "b"], problem: "single_label_classification", maxLength: 8, baseModel: "x", method: "adalora"))
        let (_, _, pattern) = try AdaLoRAFormat.readConfig(directory: dir)!
        #expect(pattern.count == ads.count)
        #expect(pattern.values.allSatisfy { $0 == [true, true, true] })
        let f = try SafeTensorsFile(path: dir + "/adapter_model.safetensors")
        #expect(f.info("base_model.model.bert.encoder.layer.0.attention.self.query.lora_A")?.shape == [3, 8])
    }

    @Test func prunedModulesIncludingRankZeroLoadBackExactly() throws {
        let (m, ads, c) = try tiny(seed: 5)
        let alloc = AdaLoRAAllocator(adapters: ads, config: AdaLoRASchedule(c, totalStep: 10))
        // Prune by hand: query keeps ranks 0 and 2, value keeps nothing (rank 0), output.dense keeps rank 1.
        let keep: [String: [Bool]] = ["encoder.layer.0.attention.self.query": [true, false, true],
                                      "encoder.layer.0.attention.self.value": [false, false, false],
                                      "encoder.layer.0.attention.output.dense": [false, true, false],
                                      "encoder.layer.0.output.dense": [false, true, false]]
        for (path, ad) in ads { for j in 0..<ad.rMax where !(keep[path]![j]) { ad.e.value[j] = 0 } }
        alloc.rankPattern = keep
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rankwise-ada-pruned-\(getpid())").path
        try AdaLoRAFormat.save(directory: dir, model: m, adapters: alloc.adapters, pattern: alloc.patternForSaving, targeting: c.lora, initR: c.initR, schedule: [:],
                               extra: .init(labelNames: ["a", "b"], problem: "single_label_classification", maxLength: 8, baseModel: "x", method: "adalora"))
        let f = try SafeTensorsFile(path: dir + "/adapter_model.safetensors")
        #expect(f.info("base_model.model.bert.encoder.layer.0.attention.self.value.lora_A")?.shape == [0, 8])
        #expect(f.info("base_model.model.bert.encoder.layer.0.attention.self.query.lora_B")?.shape == [8, 2])
        let input = TokenBatch(batch: 1, seq: 4, ids: [1, 5, 6, 2])
        let before = try m.forward(input).logits
        // A fresh model with different random adapters: only the file can make it right.
        let cfg = (m.backbone as! BertModel).config
        let enc2 = try BertModel(config: cfg, weights: RandomWeights(seed: 1), withPooler: true)
        let ads2 = try SVDAdapter.attach(to: enc2, targeting: c.lora, initialRank: c.initR, seed: 99, method: "AdaLoRA")
        let (_, _, pattern) = try AdaLoRAFormat.readConfig(directory: dir)!
        // PEFT keys rank_pattern by the wrapped model's module names: the backbone's prefix, then the path.
        #expect(pattern == Dictionary(uniqueKeysWithValues: keep.map { ("bert." + $0.key, $0.value) }))
        let head = try AdaLoRAFormat.loadWeights(directory: dir, adapters: ads2, pattern: pattern)
        let m2 = try TaskModel(backbone: enc2, numLabels: 2, problem: .singleLabel, head: head)
        let after = try m2.forward(input).logits
        #expect(zip(before, after).allSatisfy { abs($0 - $1) < 1e-6 }, "\(before) vs \(after)")
        #expect(ads2["encoder.layer.0.attention.self.value"]!.rank == 0)
    }
}
