import Foundation
import Testing
@testable import Adapters
@testable import Models
@testable import Methods
import RankwiseCore

/// SalientLoRA's pieces on small histories worked out by hand.
@Suite struct SalienceTests {
    // s0 rises 1..4; s1 = 2·s0 (corr 1, slope 2 from s0, 0.5 back); s2 falls (corr −1); s3 = s0 + 0.5·s0 wiggle
    let history: [[Float]] = [[1, 2, 3, 4], [2, 4, 6, 8], [4, 3, 2, 1], [0, 0, 0, 0]]

    @Test func graphKeepsOnlyStrongSteepDependencies() {
        let g = Salience.dependencyGraph(history, beta: 0.9, gamma: 2)
        #expect(g[0][1] == 2)                       // cov(0,1)/var(0) = 2, corr 1
        #expect(g[1][0] == 0)                       // slope 0.5 < γ
        #expect(g[0][2] == 0 && g[2][0] == 0)       // corr −1 < β
        #expect(g[3].allSatisfy { $0 == 0 })         // constant series: no edges
        #expect(g.enumerated().allSatisfy { $0.element[$0.offset] == 0 })  // no self-loops
        // Lowering γ to 0.5 admits the reverse edge too.
        let g2 = Salience.dependencyGraph(history, beta: 0.9, gamma: 0.5)
        #expect(g2[1][0] == 0.5 && g2[0][1] == 2)
    }

    @Test func cyclesLoseTheirWeakestEdge() {
        // 0 → 1 (3), 1 → 2 (2), 2 → 0 (5), 2 → 3 (4): the cycle 0-1-2 loses 1 → 2.
        var g: [[Float]] = [[0, 3, 0, 0], [0, 0, 2, 0], [5, 0, 0, 4], [0, 0, 0, 0]]
        Salience.breakCycles(&g)
        #expect(g == [[0, 3, 0, 0], [0, 0, 0, 0], [5, 0, 0, 4], [0, 0, 0, 0]])
        var two: [[Float]] = [[0, 0.5], [2, 0]]
        Salience.breakCycles(&two)
        #expect(two == [[0, 0], [2, 0]])
    }

    @Test func influenceDomainByHand() {
        // 2 → 0 (5) → 1 (3); 2 → 3 (4). Leaves 1 and 3 count 1 below their parents, 0 themselves.
        // D(0) = 3·1 = 3; D(2) = 5·D(0) + 4·1 = 19; D(1) = D(3) = 0; normalised by 22.
        let g: [[Float]] = [[0, 3, 0, 0], [0, 0, 0, 0], [5, 0, 0, 4], [0, 0, 0, 0]]
        let d = Salience.influence(g)
        #expect(abs(d[0] - 3.0 / 22) < 1e-6 && abs(d[2] - 19.0 / 22) < 1e-6 && d[1] == 0 && d[3] == 0)
        #expect(Salience.influence([[0, 0], [0, 0]]) == [0, 0])
    }

    @Test func magnitudeWeightsOrthogonalStepsAndNormalisesPerModule() {
        // one module of two values over two steps; orth losses [1, 3] → Σ/reg = [4, 4/3] → min-max [1, 0]
        let m = Salience.magnitude([[1, 3], [2, 2]], orthLosses: [1, 3], moduleSizes: [2])
        #expect(abs(m[0] - 1.0 / 3) < 1e-6 && abs(m[1] - 2.0 / 3) < 1e-6)
        // two modules are normalised separately
        let m2 = Salience.magnitude([[1, 1], [3, 3], [5, 5]], orthLosses: [1, 1], moduleSizes: [2, 1])
        #expect(abs(m2[0] - 0.25) < 1e-6 && abs(m2[1] - 0.75) < 1e-6 && abs(m2[2] - 1) < 1e-6)
        let s = Salience.salience(magnitude: [0.2, 0.8], influence: [1, 0], lambda: 0.25)
        #expect(abs(s[0] - 0.8) < 1e-6 && abs(s[1] - 0.2) < 1e-6)
    }

    @Test func allocatorPrunesTowardTheTargetAndStaysPruned() throws {
        let cfg = BertConfig(hiddenSize: 8, numHeads: 2, numLayers: 1, intermediateSize: 16, vocabSize: 30, maxPositions: 16)
        let enc = try BertModel(config: cfg, weights: RandomWeights(seed: 1))
        var a = AdaLoRAConfig()
        a.initR = 4; a.lora.r = 2; a.lora.targetModules = ["query", "value"]; a.phases.tinit = 0; a.phases.tfinal = 0
        let ads = try SVDAdapter.attach(to: enc, targeting: a.lora, initialRank: a.initR, seed: 1, method: "AdaLoRA")
        var c = SalientLoRASchedule()
        c.initR = 4; c.targetR = 2; c.ti = 3; c.tf = 6; c.totalStep = 60; c.tinit = 2; c.tfinal = 10
        try c.validate()
        let alloc = SalientLoRAAllocator(adapters: ads, config: c, regularizer: OrthogonalRegularizer(adapters: ads.values.map { $0 }, weight: 0.1))
        var rng = SplitMix64(seed: 3)
        var pruned = Set<String>()
        for step in 1...60 {
            for (_, ad) in ads { for j in 0..<ad.rMax { ad.e.value[j] += 0.1 * rng.nextNormal() + Float(j) * 0.01 } }
            alloc.step(step)
            for (p, ad) in ads { for j in 0..<ad.rMax where !ad.active[j] { pruned.insert("\(p)#\(j)"); #expect(ad.e.value[j] == 0) } }
            for name in pruned { let parts = name.split(separator: "#"); #expect(!ads[String(parts[0])]!.active[Int(parts[1])!]) }
        }
        #expect(alloc.currentRank == alloc.targetRank)  // 2 modules x target 2
    }
}
