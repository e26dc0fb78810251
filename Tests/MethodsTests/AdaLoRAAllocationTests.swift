import Foundation
import Testing
import TestSupport
@testable import Adapters
@testable import Models
@testable import Methods
import RankwiseCore
import SafeTensors
import Training

/// Replays `Tests/Fixtures/adalora_allocation.json` (PEFT's own RankAllocator, made by
/// scripts/make_adalora_reference.py): same values and gradients each step, same masks.
@Suite struct AdaLoRAAllocationTests {
    static func value(_ step: Int, _ m: Int, _ k: Int, _ i: Int) -> Float { Float(0.5 * sin(0.37 * Double(i) + 1.3 * Double(step) + 0.9 * Double(m) + 2.1 * Double(k))) }
    static func grad(_ step: Int, _ m: Int, _ k: Int, _ i: Int) -> Float { Float(0.3 * cos(0.23 * Double(i) + 0.7 * Double(step) + 1.7 * Double(m) + 0.5 * Double(k))) }

    func tinyAllocator() throws -> (AdaLoRAAllocator, [String: SVDAdapter], ParameterSet) {
        let cfg = BertConfig(hiddenSize: 8, numHeads: 2, numLayers: 1, intermediateSize: 16, vocabSize: 30, maxPositions: 16)
        let enc = try BertModel(config: cfg, weights: RandomWeights(seed: 1))
        var c = AdaLoRAConfig()
        c.initR = 3; c.lora.r = 1; c.lora.alpha = 4; c.lora.targetModules = ["query", "value"]; c.phases.tinit = 2; c.phases.tfinal = 3; c.deltaT = 2
        let ads = try SVDAdapter.attach(to: enc, targeting: c.lora, initialRank: c.initR, seed: 1, method: "AdaLoRA")
        enc.params.setTrainable { $0.contains("lora_") }
        return (AdaLoRAAllocator(adapters: ads, config: AdaLoRASchedule(c, totalStep: 12)), ads, enc.params)
    }

    @Test func matchesPEFTStepByStep() throws {
        let url = Fixtures.packageRoot.appendingPathComponent("Tests/Fixtures/adalora_allocation.json")
        let ref = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        let modules = ref["modules"] as! [String]
        let steps = ref["E_after_step"] as! [[String: [Double]]]
        let (alloc, ads, _) = try tinyAllocator()
        #expect(alloc.initBudget == 6 && alloc.targetBudget == 2)
        for step in 0..<12 {
            for (m, path) in modules.enumerated() {
                let ad = ads[path]!
                for (k, p) in [(0, ad.a), (1, ad.b), (2, ad.e)] {
                    for i in 0..<p.count { p.value[i] = Self.value(step, m, k, i); p.grad![i] = Self.grad(step, m, k, i) }
                }
            }
            alloc.step(step)
            for path in modules {
                let want = steps[step][path]!.map(Float.init)
                let got = ads[path]!.e.value.array
                #expect(zip(want, got).allSatisfy { abs($0 - $1) < 1e-6 }, "step \(step) \(path): E \(got) vs PEFT \(want)")
            }
        }
        let pattern = ref["rank_pattern"] as! [String: [Bool]]
        for (path, keep) in pattern { #expect(alloc.rankPattern?[path] == keep, "\(path)") }
        #expect(alloc.ranks.values.reduce(0, +) == 2)
    }

    @Test func budgetScheduleIsCubic() throws {
        let (alloc, _, _) = try tinyAllocator()
        // init 6, target 2, tinit 2, tfinal 3, total 12: budget = int(4 (1 - (t-2)/7)^3 + 2)
        #expect(alloc.budget(at: 2) == (6, false))
        #expect(alloc.budget(at: 3).0 == Int(4 * pow(1 - 1.0 / 7, 3) + 2))
        #expect(alloc.budget(at: 4) == (Int(4 * pow(1 - 2.0 / 7, 3) + 2), true))
        #expect(alloc.budget(at: 5).1 == false)
        #expect(alloc.budget(at: 10) == (2, true))
    }

    @Test func impossibleSchedulesAreRejected() {
        var c = AdaLoRAConfig()
        c.phases.tinit = 60; c.phases.tfinal = 40
        #expect(throws: ModelError.self) { try AdaLoRASchedule(c, totalStep: 100).validate() }
        c.phases.tinit = 10; c.phases.tfinal = 10; c.lora.r = 20
        #expect(throws: ModelError.self) { try AdaLoRASchedule(c, totalStep: 100).validate() }
        c.lora.r = 4
        #expect(throws: ModelError.self) { try AdaLoRASchedule(c, totalStep: 0).validate() }
        #expect(throws: Never.self) { try AdaLoRASchedule(c, totalStep: 100).validate() }
        c.phases.tinit = nil; c.phases.tfinal = nil
        #expect(AdaLoRASchedule(c, totalStep: 100).tinit == 10 && AdaLoRASchedule(c, totalStep: 100).tfinal == 20)
    }

    @Test func checkpointRestoresScoresAndPattern() throws {
        let (a1, ads1, _) = try tinyAllocator()
        for step in 0..<6 {
            for (m, path) in ads1.keys.sorted().enumerated() {
                let ad = ads1[path]!
                for (k, p) in [(0, ad.a), (1, ad.b), (2, ad.e)] { for i in 0..<p.count { p.value[i] = Self.value(step, m, k, i); p.grad![i] = Self.grad(step, m, k, i) } }
            }
            a1.step(step)
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("adalora-state-\(getpid()).safetensors").path
        try SafeTensorsWriter.write(a1.checkpointTensors(), to: path)
        let (a2, _, _) = try tinyAllocator()
        try a2.restore(from: CheckpointSection(file: SafeTensorsFile(path: path), prefix: ""))
        #expect(a2.rankPattern == a1.rankPattern)
        for ((_, x), (_, y)) in zip(a1.adapters, a2.adapters) { #expect(a1.tripletScores(x) == a2.tripletScores(y)) }
    }
}
