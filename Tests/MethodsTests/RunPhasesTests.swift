import Foundation
import Testing
@testable import Methods
@testable import Models
import RankwiseCore
import Adapters

/// Warm-up, final phase and allocation intervals default to fractions of the run; explicit steps win.
@Suite struct RunPhasesTests {
    func ints(_ xs: Int...) -> [Int] { xs }

    @Test func fractionsOfTheRunByHand() throws {
        #expect(RunPhases.steps(nil, fraction: 0.1, of: 63) == 6)
        #expect(RunPhases.steps(nil, fraction: 0.2, of: 958) == 191)
        #expect(RunPhases.steps(nil, fraction: 0.01, of: 63, minimum: 1) == 1)
        #expect(RunPhases.steps(nil, fraction: 0.01, of: 10_000, minimum: 1) == 100)
        #expect(RunPhases.steps(nil, fraction: 0.29, of: 100) == 29)  // 0.29 * 100 is 28.999999999999996 in binary
        #expect(RunPhases.steps(7, fraction: 0.5, of: 100) == 7)
        #expect(throws: ModelError.self) { try RunPhases.validate([("tinit-fraction", 1.5)], method: "X") }

        var a = AdaLoRAConfig()
        let cases: [(Int, [Int])] = [(63, [6, 12, 1]), (958, [95, 191, 9]), (10_000, [1000, 2000, 100])]
        for (total, expected) in cases {
            let s = AdaLoRASchedule(a, totalStep: total)
            #expect(ints(s.tinit, s.tfinal, s.deltaT) == expected, "AdaLoRA at \(total) steps")
        }
        a.phases.tinit = 3; a.phases.tfinal = 4; a.deltaT = 5
        let explicit = AdaLoRASchedule(a, totalStep: 10_000)
        #expect(ints(explicit.tinit, explicit.tfinal, explicit.deltaT) == [3, 4, 5])

        var sal = SalientLoRAConfig()
        let short = SalientLoRASchedule(sal, totalStep: 63), long = SalientLoRASchedule(sal, totalStep: 1000)
        #expect(ints(short.tinit, short.tfinal, short.ti, short.tf) == [6, 12, 2, 12])
        #expect(ints(long.ti, long.tf) == [10, 200])  // the paper's Ti and Tf at 1,000 steps
        sal.windowStart = 10; sal.windowEnd = 200
        let fixed = SalientLoRASchedule(sal, totalStep: 63)
        #expect(ints(fixed.ti, fixed.tf) == [10, 200])
    }

    /// ElaLoRA (and TsqLoRA through it) and Dynamic LoRA resolve theirs when the run's length is known.
    @Test func methodsResolveAtPrepare() throws {
        let cfg = BertConfig(hiddenSize: 8, numHeads: 2, numLayers: 2, intermediateSize: 16, vocabSize: 30, maxPositions: 16)
        var e = ElaLoRAConfig()
        e.lora.r = 2; e.maxRank = 4; e.lora.targetModules = ["query"]
        let ela = try ElaLoRAMethod(config: e, backbone: try BertModel(config: cfg, weights: RandomWeights(seed: 1)), seed: 1)
        try ela.prepare(totalSteps: 63)
        #expect(ints(ela.allocator!.tinit, ela.allocator!.tfinal, ela.allocator!.deltaT) == [6, 12, 1])
        try ela.prepare(totalSteps: 958)
        #expect(ela.allocator!.deltaT == 9)
        var d = DynamicLoRAConfig()
        d.lora.r = 2; d.lora.targetModules = ["query"]
        let dyn = try DynamicLoRAMethod(config: d, backbone: try BertModel(config: cfg, weights: RandomWeights(seed: 1)), seed: 1)
        try dyn.prepare(totalSteps: 2000)
        #expect(dyn.updateEvery == 20 && dyn.summary.contains("every 20 steps"))
    }

    /// The shared groups (`phases`, `start`) keep flat flag names, a method's own help for them wins, and a
    /// flag reaches the nested property.
    @Test func sharedGroupsKeepFlatFlagsAndTheMethodsHelp() throws {
        func option(_ type: Settings.Type, _ key: String) -> SettingInfo? {
            SettingsTable.options(of: type).first { $0.key == key }
        }
        for type in [AdaLoRAConfig.self, SalientLoRAConfig.self, ElaLoRAConfig.self, DynamicLoRAConfig.self] as [Settings.Type] {
            for key in ["tinit", "tfinal", "tinit-fraction", "tfinal-fraction"] {
                #expect(option(type, key) != nil, "\(type) --\(key)")
            }
        }
        #expect(option(AdaLoRAConfig.self, "tinit")?.help.hasPrefix("warm-up before pruning starts") == true)
        #expect(option(DynamicLoRAConfig.self, "tinit-fraction")?.help.hasPrefix("ranks mode:") == true)
        #expect(option(ElaLoRAConfig.self, "tfinal-fraction")?.help.contains("fraction of the run") == true)
        #expect(option(SalientLoRAConfig.self, "init-e")?.defaultText == "0.57735026")
        let parsed = try SettingsTable.decode(ElaLoRAConfig.self, values: ["tinit": "3", "tfinal-fraction": "0.3", "adapter-init": "peft"])
        #expect(parsed.phases.tinit == 3 && parsed.phases.tfinalFraction == 0.3 && parsed.start.adapterInit == .peft)
        var negative = PhaseSettings()
        negative.tfinal = -1
        #expect(throws: ModelError.self) { try negative.validate(method: "X") }
        #expect { try SettingsTable.decode(ElaLoRAConfig.self, values: ["adapter-init": "gaussian"]) } throws: {
            "\($0)".contains("--adapter-init: expected one of peft, zero-b")
        }
    }

    /// A warm-up fraction above 0 is at least one step once a run has two (TsqLoRA's sensitivities need it).
    @Test func aWarmUpFractionIsAtLeastOneStep() {
        let phases = PhaseSettings()
        #expect(phases.steps(of: 6).tinit == 1 && phases.steps(of: 6).tfinal == 1)
        #expect(phases.steps(of: 1).tinit == 0 && phases.steps(of: 100).tinit == 10)
        var none = PhaseSettings()
        none.tinitFraction = 0
        #expect(none.steps(of: 6).tinit == 0)
    }
}
