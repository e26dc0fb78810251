import Foundation
import Testing
@testable import Adapters
@testable import Methods
@testable import Models
import RankwiseCore
import SafeTensors
@testable import Training

/// ElaLoRA's prune-and-grow round on small cases worked by hand.
@Suite struct ElaLoRATests {
    /// Two modules (query, value) of an 8-wide backbone, rank 2 each, at most 4, with AdamW over them.
    func setup(k: Int = 2, b: Int = 1, maxRank: Int = 4, start: SVDStart = .peft) throws -> (ElaLoRAMethod, ElaLoRAAllocator, AdamW, BertModel) {
        let cfg = BertConfig(hiddenSize: 8, numHeads: 2, numLayers: 1, intermediateSize: 16, vocabSize: 30, maxPositions: 16)
        let enc = try BertModel(config: cfg, weights: RandomWeights(seed: 1))
        var c = ElaLoRAConfig()
        c.lora.r = 2; c.maxRank = maxRank; c.offersPerModule = k; c.ranksPerRound = b; c.lora.targetModules = ["query", "value"]
        c.phases.tinit = 0; c.phases.tfinal = 0; c.deltaT = 1; c.cubicDecay = false; c.start.adapterInit = start
        let m = try ElaLoRAMethod(config: c, backbone: enc, seed: 7)
        try m.prepare(totalSteps: 100)
        enc.params.setTrainable { $0.contains("lora_") }
        return (m, m.allocator!, AdamW(params: enc.params), enc)
    }

    /// Gives rank j of module m the score `s` (E's EMA only: I·U = s with I = U = √s).
    func setScore(_ al: ElaLoRAAllocator, _ m: Int, _ j: Int, _ s: Float) {
        let ad = al.adapters[m].1
        for p in ad.params {
            let id = ObjectIdentifier(p)
            if al.sensitivity.ipt[id] == nil { al.sensitivity.ipt[id] = Tensor(zeros: p.shape); al.sensitivity.unc[id] = Tensor(zeros: p.shape) }
        }
        al.sensitivity.ipt[ObjectIdentifier(ad.e)]![j] = s.squareRoot()
        al.sensitivity.unc[ObjectIdentifier(ad.e)]![j] = s.squareRoot()
    }

    @Test func prunesTheLowestOfferAndGrowsTheModuleWithTheHighest() throws {
        let (_, al, opt, _) = try setup(k: 1, b: 1)
        // query (module 0 after sorting: ...query < ...value): ranks 0, 1 scored 5, 9 → offers 5.
        // value: scored 1, 2 → offers 1. Lowest offer (value#0) is pruned; the highest (query's 5) grows query.
        setScore(al, 0, 0, 5); setScore(al, 0, 1, 9); setScore(al, 1, 0, 1); setScore(al, 1, 1, 2)
        let (pruned, grown) = al.round(b: 1, step: 1, optimizer: opt)
        #expect(pruned == ["encoder.layer.0.attention.self.value#0"])
        #expect(grown == ["encoder.layer.0.attention.self.query#2"])
        #expect(al.adapters[0].1.active == [true, true, true, false])
        #expect(al.adapters[1].1.active == [false, true, false, false])
        #expect(al.ranks.values.reduce(0, +) == 4)  // total kept
    }

    @Test func neverPrunesAModulesLastRankAndStopsAtTheMaximum() throws {
        let (_, al, opt, _) = try setup(k: 2, b: 3, maxRank: 3)
        // value at rank 1 offers nothing; query (rank 2) offers only its lowest rank.
        al.adapters[1].1.active = [true, false, false]
        setScore(al, 0, 0, 3); setScore(al, 0, 1, 4); setScore(al, 1, 0, 0)
        let (pruned, grown) = al.round(b: 3, step: 1, optimizer: opt)
        #expect(pruned == ["encoder.layer.0.attention.self.query#0"])  // one offer in the pool
        #expect(grown.count == 0)  // the only offer was pruned: nothing left to grow from
        #expect(al.adapters[1].1.rank == 1)

        let (_, al2, opt2, _) = try setup(k: 1, b: 2, maxRank: 2)  // both modules full: pruned ranks regrow where offers are highest
        setScore(al2, 0, 0, 1); setScore(al2, 0, 1, 2); setScore(al2, 1, 0, 7); setScore(al2, 1, 1, 8)
        let (p2, g2) = al2.round(b: 2, step: 1, optimizer: opt2)
        #expect(p2.count == 2 && g2.count == 0 || g2.allSatisfy { !$0.contains("#2") })
        #expect(al2.adapters.allSatisfy { $0.1.rank <= 2 })
    }

    @Test func newRanksAreOrthonormalAndStartWithFreshMoments() throws {
        let (_, al, opt, enc) = try setup(k: 1, b: 1)
        var rng = SplitMix64(seed: 4)
        for p in enc.params.trainable { for i in 0..<p.count { p.grad![i] = rng.nextNormal() } }
        opt.step(lr: 1e-3)  // every parameter now has non-zero Adam moments
        setScore(al, 0, 0, 5); setScore(al, 0, 1, 9); setScore(al, 1, 0, 1); setScore(al, 1, 1, 2)
        let momentsBefore = opt.m.array
        _ = al.round(b: 1, step: 3, optimizer: opt)
        let q = al.adapters[0].1, v = al.adapters[1].1
        #expect(q.active[2] && q.e.value[2] == 0 && !v.active[0] && v.e.value[0] == 0)
        func dotA(_ i: Int, _ j: Int) -> Float { (0..<q.inDim).reduce(0) { $0 + q.a.value[i * q.inDim + $1] * q.a.value[j * q.inDim + $1] } }
        func dotB(_ i: Int, _ j: Int) -> Float { (0..<q.outDim).reduce(0) { $0 + q.b.value[$1 * q.rMax + i] * q.b.value[$1 * q.rMax + j] } }
        #expect(abs(dotA(2, 2) - 1) < 1e-5 && abs(dotB(2, 2) - 1) < 1e-5)
        #expect(abs(dotA(2, 0)) < 1e-5 && abs(dotA(2, 1)) < 1e-5 && abs(dotB(2, 0)) < 1e-5 && abs(dotB(2, 1)) < 1e-5)
        func offset(_ p: Param) -> Int { opt.slices.first { $0.0 === p }!.1 }
        // Grown (query#2) and pruned (value#0) ranks start from zero moments; everything else keeps its own.
        #expect(opt.m[offset(q.e) + 2] == 0 && opt.m[offset(v.e) + 0] == 0 && opt.m[offset(q.a) + 2 * q.inDim] == 0)
        #expect(opt.m[offset(q.e) + 0] == momentsBefore[offset(q.e) + 0] && momentsBefore[offset(q.e) + 0] != 0)
        #expect(opt.m[offset(v.a) + v.inDim] == momentsBefore[offset(v.a) + v.inDim])
        #expect(opt.t == 1)  // the step count (and so the learning-rate schedule) goes on
    }

    /// With the LoRA-like start (zero-b): active ranks start with E = init-e, orthonormal A rows and B = 0
    /// (output zero); a grown rank gets an A row orthonormal to the others, E = init-e and a zero B column.
    @Test func zeroBStartAndGrowth() throws {
        let (m, al, opt, _) = try setup(k: 1, b: 1, start: .zeroB)
        let q = al.adapters[0].1
        let e0 = m.config.start.initE
        #expect(abs(e0 - 1 / Float(3).squareRoot()) < 1e-7)
        #expect((0..<q.rMax).allSatisfy { q.e.value[$0] == (q.active[$0] ? e0 : 0) })
        #expect(q.b.value.array.allSatisfy { $0 == 0 })
        func dotA(_ i: Int, _ j: Int) -> Float { (0..<q.inDim).reduce(0) { $0 + q.a.value[i * q.inDim + $1] * q.a.value[j * q.inDim + $1] } }
        for i in 0..<q.rMax { for j in 0..<q.rMax { #expect(abs(dotA(i, j) - (i == j ? 1 : 0)) < 1e-5, "A rows \(i), \(j)") } }
        for k in 0..<q.b.count { q.b.value[k] = Float(k % 5) * 0.1 }  // trained columns
        setScore(al, 0, 0, 5); setScore(al, 0, 1, 9); setScore(al, 1, 0, 1); setScore(al, 1, 1, 2)
        _ = al.round(b: 1, step: 3, optimizer: opt)
        #expect(q.active[2] && q.e.value[2] == e0)
        #expect((0..<q.outDim).allSatisfy { q.b.value[$0 * q.rMax + 2] == 0 })
        #expect(abs(dotA(2, 2) - 1) < 1e-5 && abs(dotA(2, 0)) < 1e-5 && abs(dotA(2, 1)) < 1e-5)
    }

    @Test func growthAloneIsFunctionPreserving() throws {
        let (_, al, opt, enc) = try setup(k: 1, b: 1)
        var rng = SplitMix64(seed: 4)
        for (_, ad) in al.adapters { for j in 0..<ad.rMax where ad.active[j] { ad.e.value[j] = rng.nextNormal() } }
        let input = TokenBatch(batch: 2, seq: 4, ids: [1, 5, 6, 2, 1, 9, 8, 2])
        let before = try { let o = try enc.forward(input); return Array(UnsafeBufferPointer(start: o.lastHidden, count: o.batch * o.seq * o.hidden)) }()
        al.grow(al.adapters[0].1, 2, module: 0, step: 1, optimizer: opt)
        al.grow(al.adapters[1].1, 3, module: 1, step: 1, optimizer: opt)
        let after = try { let o = try enc.forward(input); return Array(UnsafeBufferPointer(start: o.lastHidden, count: o.batch * o.seq * o.hidden)) }()
        #expect(before == after)
        #expect(al.adapters[0].1.rank == 3 && al.adapters[1].1.rank == 3)
    }

    @Test func roundSizeDecaysCubically() throws {
        let cfg = BertConfig(hiddenSize: 8, numHeads: 2, numLayers: 1, intermediateSize: 16, vocabSize: 30, maxPositions: 16)
        let enc = try BertModel(config: cfg, weights: RandomWeights(seed: 1))
        var c = ElaLoRAConfig()
        c.lora.r = 2; c.maxRank = 4; c.ranksPerRound = 4; c.phases.tinit = 10; c.phases.tfinal = 10; c.deltaT = 5
        let m = try ElaLoRAMethod(config: c, backbone: enc, seed: 1)
        try m.prepare(totalSteps: 120)  // rounds over steps 10..110: p = (s - 10) / 100
        let al = m.allocator!
        #expect(al.roundSize(at: 10) == 4)
        #expect(al.roundSize(at: 60) == 4)  // p = 0.5: 4 · 0.875 = 3.5, half to even → 4
        #expect(al.roundSize(at: 90) == 2)  // p = 0.8: 4 · 0.488 = 1.952 → 2
        #expect(al.roundSize(at: 110) == 0)
        #expect(!al.isRound(10) && al.isRound(15) && !al.isRound(16) && al.isRound(110) && !al.isRound(115))
        c.phases.tinit = 60; c.phases.tfinal = 60
        let m2 = try ElaLoRAMethod(config: c, backbone: try BertModel(config: cfg, weights: RandomWeights(seed: 1)), seed: 1)
        #expect(throws: ModelError.self) { try m2.prepare(totalSteps: 120) }
    }

    @Test func activeOnlyRegulariserIgnoresInactiveRanks() throws {
        let (m, al, _, _) = try setup()
        let ad = al.adapters[0].1
        let full = OrthogonalRegularizer(adapters: [ad], weight: 1)
        let l1 = m.regularizer.loss()
        for j in 2..<ad.rMax { for k in 0..<ad.inDim { ad.a.value[j * ad.inDim + k] += 3 } }  // change inactive rows only
        #expect(m.regularizer.loss() == l1)
        #expect(full.loss() > 0)
    }
}
