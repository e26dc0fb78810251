import Foundation
import Testing
@testable import RankwiseCore

/// Finite-difference checks of every hand-written backward. Each case defines a scalar loss
/// L = Σ w ⊙ f(inputs) with fixed random weights w, computes analytic gradients with the backward
/// kernel, and compares them with central differences (in Double where the op allows).
struct FD {
    var rng = SplitMix64(seed: 42)
    mutating func randn(_ n: Int, scale: Float = 1) -> [Float] { (0..<n).map { _ in scale * rng.nextNormal() } }

    /// Compares analytic `grad` of `x` with central differences of `loss` at up to `samples` entries.
    static func check(_ name: String, x: inout [Float], grad: [Float], eps: Float = 1e-2, tol: Float = 2e-2,
                      samples: Int = 40, loss: ([Float]) -> Double) {
        var worst: Float = 0
        let step = max(1, x.count / samples)
        for i in stride(from: 0, to: x.count, by: step) {
            let orig = x[i]
            x[i] = orig + eps; let lp = loss(x)
            x[i] = orig - eps; let lm = loss(x)
            x[i] = orig
            let num = Float((lp - lm) / Double(2 * eps))
            let err = abs(num - grad[i]) / max(1, abs(num), abs(grad[i]))
            worst = max(worst, err)
        }
        #expect(worst < tol, "\(name): worst relative error \(worst)")
    }
}

func dot(_ a: [Float], _ b: UnsafePointer<Float>) -> Double { var s = 0.0; for i in a.indices { s += Double(a[i]) * Double(b[i]) }; return s }

@Suite struct GradCheckTests {
    @Test func linear() {
        var fd = FD()
        let n = 5, i = 7, o = 4
        var x = fd.randn(n * i), w = fd.randn(o * i), b = fd.randn(o)
        let wy = fd.randn(n * o)
        func run(_ x: [Float], _ w: [Float], _ b: [Float]) -> Double {
            var y = [Float](repeating: 0, count: n * o)
            Ops.linearForward(x: x, w: w, b: b, y: &y, n: n, inDim: i, outDim: o)
            return dot(wy, y)
        }
        var dx = [Float](repeating: 0, count: n * i), dw = [Float](repeating: 0, count: o * i), db = [Float](repeating: 0, count: o)
        Ops.linearBackward(dy: wy, x: x, w: w, dx: &dx, dw: &dw, db: &db, n: n, inDim: i, outDim: o)
        FD.check("linear dx", x: &x, grad: dx) { run($0, w, b) }
        FD.check("linear dw", x: &w, grad: dw) { run(x, $0, b) }
        FD.check("linear db", x: &b, grad: db) { run(x, w, $0) }
    }

    @Test func geluAndTanh() {
        var fd = FD()
        var x = fd.randn(64, scale: 2)
        let wy = fd.randn(64)
        var dx = [Float](repeating: 0, count: 64)
        Ops.geluBackward(x: x, dy: wy, dx: &dx, count: 64)
        FD.check("gelu", x: &x, grad: dx, eps: 1e-3) { x in var y = [Float](repeating: 0, count: 64); Ops.geluForward(x, &y, count: 64); return dot(wy, y) }
        // exact erf GELU, not the tanh approximation: gelu(1) = 0.841344746
        var y1: [Float] = [0]; Ops.geluForward([1], &y1, count: 1)
        #expect(abs(y1[0] - 0.841_344_746) < 1e-6)
        var y = [Float](repeating: 0, count: 64)
        Ops.tanhForward(x, &y, count: 64)
        var dt = [Float](repeating: 0, count: 64)
        Ops.tanhBackward(y: y, dy: wy, dx: &dt, count: 64)
        FD.check("tanh", x: &x, grad: dt, eps: 1e-3) { x in var y = [Float](repeating: 0, count: 64); Ops.tanhForward(x, &y, count: 64); return dot(wy, y) }
    }

    @Test func maskedSoftmax() {
        var fd = FD()
        let rows = 6, d = 5
        var x = fd.randn(rows * d)
        let mask: [Float] = [1, 1, 0, 1, 0, 1, 1, 1, 1, 0]  // two masks, 3 rows each
        let wy = fd.randn(rows * d)
        func fwd(_ x: [Float]) -> [Float] { var p = x; Ops.softmaxForward(&p, rows: rows, d: d, keyMask: mask, rowsPerMask: 3); return p }
        let p = fwd(x)
        for r in 0..<rows { #expect(abs(p[(r * d)..<(r * d + d)].reduce(0, +) - 1) < 1e-6) }
        #expect(p[2] == 0 && p[4] == 0 && p[3 * d + 4] == 0)
        var dx = [Float](repeating: 0, count: rows * d)
        Ops.softmaxBackward(p: p, dp: wy, dx: &dx, rows: rows, d: d)
        FD.check("softmax", x: &x, grad: dx, eps: 1e-3) { dot(wy, fwd($0)) }
    }

    @Test func layerNorm() {
        var fd = FD()
        let n = 4, d = 16
        var x = fd.randn(n * d, scale: 3), g = fd.randn(d), b = fd.randn(d)
        let wy = fd.randn(n * d)
        func fwd(_ x: [Float], _ g: [Float], _ b: [Float]) -> Double {
            var y = [Float](repeating: 0, count: n * d), m = [Float](repeating: 0, count: n), r = m
            Ops.layerNormForward(x: x, gamma: g, beta: b, y: &y, mean: &m, rstd: &r, n: n, d: d, eps: 1e-5)
            return dot(wy, y)
        }
        var y = [Float](repeating: 0, count: n * d), m = [Float](repeating: 0, count: n), r = m
        Ops.layerNormForward(x: x, gamma: g, beta: b, y: &y, mean: &m, rstd: &r, n: n, d: d, eps: 1e-5)
        var dx = [Float](repeating: 0, count: n * d), dg = [Float](repeating: 0, count: d), db = dg
        Ops.layerNormBackward(dy: wy, x: x, gamma: g, mean: m, rstd: r, dx: &dx, dgamma: &dg, dbeta: &db, n: n, d: d)
        FD.check("layernorm dx", x: &x, grad: dx, eps: 1e-2) { fwd($0, g, b) }
        FD.check("layernorm dgamma", x: &g, grad: dg) { fwd(x, $0, b) }
        FD.check("layernorm dbeta", x: &b, grad: db) { fwd(x, g, $0) }
    }

    @Test func embeddingGatherScatter() {
        var fd = FD()
        let v = 6, d = 3
        var table = fd.randn(v * d)
        let ids: [Int32] = [2, 0, 2, 5]
        let wy = fd.randn(ids.count * d)
        func fwd(_ t: [Float]) -> Double { var y = [Float](repeating: 0, count: ids.count * d); Ops.embeddingForward(ids: ids, table: t, y: &y, n: ids.count, d: d); return dot(wy, y) }
        var dt = [Float](repeating: 0, count: v * d)
        Ops.embeddingBackward(ids: ids, dy: wy, dtable: &dt, n: ids.count, d: d)
        FD.check("embedding", x: &table, grad: dt, samples: 100) { fwd($0) }
        #expect(dt[1 * d] == 0)  // row 1 is never used
    }

    @Test func dropoutIsSeededAndScaled() {
        var fd = FD()
        let n = 10_000
        var x = fd.randn(n)
        var y = [Float](repeating: 0, count: n), mask = y, y2 = y, mask2 = y
        // 100 rows of 100, keyed by row (`DropoutKeys`): the masks depend on the seed and the keys only.
        func drop(_ x: [Float], _ y: inout [Float], _ mask: inout [Float]) {
            Ops.dropoutRowsForward(x: x, y: &y, mask: &mask, rows: 100, width: n / 100, p: 0.25, seed: 7) { UInt64($0) }
        }
        drop(x, &y, &mask)
        drop(x, &y2, &mask2)
        #expect(y == y2)
        let kept = mask.filter { $0 != 0 }.count
        #expect(abs(Double(kept) / Double(n) - 0.75) < 0.03)
        #expect(mask.allSatisfy { $0 == 0 || abs($0 - 1 / 0.75) < 1e-6 })
        let wy = fd.randn(n)
        var dx = [Float](repeating: 0, count: n)
        Ops.dropoutBackward(dy: wy, mask: mask, dx: &dx, count: n)
        FD.check("dropout", x: &x, grad: dx) { x in var yy = [Float](repeating: 0, count: n), mm = yy; drop(x, &yy, &mm); return dot(wy, yy) }
    }

    @Test func crossEntropyAndMSE() {
        var fd = FD()
        let n = 4, c = 3
        var logits = fd.randn(n * c, scale: 2)
        let labels: [Int32] = [0, 2, -100, 1]
        var dl = [Float](repeating: 0, count: n * c)
        let loss = Ops.crossEntropy(logits: logits, labels: labels, n: n, classes: c, dlogits: &dl)
        #expect(loss > 0)
        #expect(dl[6] == 0 && dl[7] == 0 && dl[8] == 0)  // ignored row
        FD.check("cross-entropy", x: &logits, grad: dl, eps: 1e-3) { Double(Ops.crossEntropy(logits: $0, labels: labels, n: n, classes: c, dlogits: nil)) }
        // Uniform logits give log(C).
        #expect(abs(Ops.crossEntropy(logits: [0, 0, 0], labels: [1], n: 1, classes: 3, dlogits: nil) - Float(log(3.0))) < 1e-6)
        var x = fd.randn(8)
        let t = fd.randn(8)
        var dx = [Float](repeating: 0, count: 8)
        _ = Ops.mse(x: x, target: t, count: 8, dx: &dx)
        FD.check("mse", x: &x, grad: dx, eps: 1e-3) { Double(Ops.mse(x: $0, target: t, count: 8, dx: nil)) }
        // Per-row losses: each row's own loss, 0 for an ignored row, averaging to the loss.
        var rows = [Float](repeating: -1, count: n)
        let l2 = Ops.crossEntropy(logits: logits, labels: labels, n: n, classes: c, dlogits: nil, rowLoss: &rows)
        #expect(rows[2] == 0 && abs(rows.reduce(0, +) / 3 - l2) < 1e-6)
        let single = Ops.crossEntropy(logits: Array(logits[3...5]), labels: [labels[1]], n: 1, classes: c, dlogits: nil)
        #expect(abs(rows[1] - single) < 1e-6)
        var sq = [Float](repeating: 0, count: 8)
        let m = Ops.mse(x: x, target: t, count: 8, dx: nil, rowLoss: &sq)
        #expect(abs(sq[5] - (x[5] - t[5]) * (x[5] - t[5])) < 1e-7 && abs(sq.reduce(0, +) / 8 - m) < 1e-6)
    }

    /// Finite-difference gradients of attention, padded (a key mask) and packed (sequences of
    /// different lengths back to back), with and without dropout.
    @Test(arguments: [false, true]) func attentionWithMaskAndDropout(packed: Bool) {
        var fd = FD()
        let heads = 2, hd = 3, H = heads * hd
        let layout: SequenceLayout = packed ? .packed(lengths: [3, 5, 1]) : .padded(batch: 2, seq: 4, mask: [1, 1, 1, 0, 1, 1, 1, 1])
        let N = layout.tokens, P = layout.probCount(heads: heads)
        var q = fd.randn(N * H), k = fd.randn(N * H), v = fd.randn(N * H)
        let wy = fd.randn(N * H)
        for useDropout in [false, true] {
            func fwd(_ q: [Float], _ k: [Float], _ v: [Float]) -> (Double, [Float], [Float], [Float]) {
                var probs = [Float](repeating: 0, count: P), ctx = [Float](repeating: 0, count: N * H)
                var dm = [Float](repeating: 0, count: P), dp = [Float](repeating: 0, count: P)
                probs.withUnsafeMutableBufferPointer { pb in
                    dm.withUnsafeMutableBufferPointer { mb in
                        dp.withUnsafeMutableBufferPointer { db in
                            Attention.forward(q: q, k: k, v: v, layout: layout, probs: pb.baseAddress!, ctx: &ctx, heads: heads, headDim: hd,
                                              dropout: useDropout ? (p: 0.3, seed: 3, mask: mb.baseAddress!, dropped: db.baseAddress!, exampleKeys: (0..<layout.count).map { UInt64($0) }) : nil)
                        }
                    }
                }
                return (dot(wy, ctx), probs, dm, dp)
            }
            let (_, probs, dm, dp) = fwd(q, k, v)
            var dq = [Float](repeating: 0, count: N * H), dk = dq, dv = dq, scratch = [Float](repeating: 0, count: P)
            dm.withUnsafeBufferPointer { mb in
                dp.withUnsafeBufferPointer { db in
                    Attention.backward(dctx: wy, q: q, k: k, v: v, probs: probs, dq: &dq, dk: &dk, dv: &dv, scratch: &scratch,
                                       layout: layout, heads: heads, headDim: hd,
                                       dropout: useDropout ? (mask: mb.baseAddress!, dropped: db.baseAddress!) : nil)
                }
            }
            FD.check("attention dq (packed \(packed), dropout \(useDropout))", x: &q, grad: dq, eps: 1e-2) { fwd($0, k, v).0 }
            FD.check("attention dk (packed \(packed), dropout \(useDropout))", x: &k, grad: dk, eps: 1e-2) { fwd(q, $0, v).0 }
            FD.check("attention dv (packed \(packed), dropout \(useDropout))", x: &v, grad: dv, eps: 1e-2) { fwd(q, k, $0).0 }
            // A masked key gets no gradient.
            if !packed { for h in 0..<H { #expect(abs(dk[3 * H + h]) < 1e-7) } }
        }
    }

    /// Attention written out in Double, one (sequence, query head) at a time: what the grouped and causal
    /// kernels must compute. Returns the context `[tokens, heads·headDim]`.
    static func naiveAttention(q: [Float], k: [Float], v: [Float], layout: SequenceLayout, heads: Int, kvHeads: Int,
                               headDim: Int, causal: Bool) -> [Double] {
        let queryWidth = heads * headDim, kvWidth = kvHeads * headDim, group = heads / kvHeads
        var ctx = [Double](repeating: 0, count: layout.tokens * queryWidth)
        for b in 0..<layout.count {
            let start = layout.starts[b], length = layout.lengths[b]
            for head in 0..<heads {
                let kvHead = head / group
                for i in 0..<length {
                    var scores: [Double] = []
                    var visible: [Int] = []
                    for j in 0..<length where (!causal || j <= i) && (layout.keyMask?[start + j] ?? 1) != 0 {
                        var dotProduct = 0.0
                        for d in 0..<headDim {
                            dotProduct += Double(q[(start + i) * queryWidth + head * headDim + d])
                                * Double(k[(start + j) * kvWidth + kvHead * headDim + d])
                        }
                        scores.append(dotProduct / Double(headDim).squareRoot())
                        visible.append(j)
                    }
                    let top = scores.max() ?? 0
                    let weights = scores.map { exp($0 - top) }
                    let total = weights.reduce(0, +)
                    for (n, j) in visible.enumerated() {
                        for d in 0..<headDim {
                            ctx[(start + i) * queryWidth + head * headDim + d] += weights[n] / total
                                * Double(v[(start + j) * kvWidth + kvHead * headDim + d])
                        }
                    }
                }
            }
        }
        return ctx
    }

    /// Grouped key/value heads (6 query heads over 2 key/value heads) and the causal mask, padded and packed:
    /// the kernel's output equals the naive one, and its gradients the naive one's central differences.
    @Test(arguments: [false, true]) func groupedCausalAttentionMatchesNaive(packed: Bool) {
        var fd = FD()
        let heads = 6, kvHeads = 2, headDim = 3
        let layout: SequenceLayout = packed ? .packed(lengths: [4, 1, 6]) : .padded(batch: 2, seq: 5, mask: [1, 1, 1, 0, 0, 1, 1, 1, 1, 1])
        let N = layout.tokens, P = layout.probCount(heads: heads)
        let queryWidth = heads * headDim, kvWidth = kvHeads * headDim
        var q = fd.randn(N * queryWidth), k = fd.randn(N * kvWidth), v = fd.randn(N * kvWidth)
        let weights = fd.randn(N * queryWidth)
        var realRows: [Int] = []
        for b in 0..<layout.count {
            for t in 0..<layout.lengths[b] where (layout.keyMask?[layout.starts[b] + t] ?? 1) != 0 { realRows.append(layout.starts[b] + t) }
        }
        for causal in [true, false] {
            var probs = [Float](repeating: 0, count: P), ctx = [Float](repeating: 0, count: N * queryWidth)
            Attention.forward(q: q, k: k, v: v, layout: layout, probs: &probs, ctx: &ctx, heads: heads, headDim: headDim,
                              kvHeads: kvHeads, causal: causal)
            let expected = Self.naiveAttention(q: q, k: k, v: v, layout: layout, heads: heads, kvHeads: kvHeads,
                                               headDim: headDim, causal: causal)
            var worst = 0.0
            for row in realRows { for j in 0..<queryWidth { worst = max(worst, abs(Double(ctx[row * queryWidth + j]) - expected[row * queryWidth + j])) } }
            #expect(worst < 1e-5, "grouped attention (causal \(causal), packed \(packed)) differs from naive by \(worst)")
            if causal, packed {  // the first token of a sequence sees only itself
                for j in 0..<headDim { #expect(abs(ctx[j] - v[j]) < 1e-6) }
            }
            // Loss over real query rows only (a padded row's output is never used).
            var rowWeights = [Float](repeating: 0, count: N * queryWidth)
            for row in realRows { for j in 0..<queryWidth { rowWeights[row * queryWidth + j] = weights[row * queryWidth + j] } }
            func loss(_ q: [Float], _ k: [Float], _ v: [Float]) -> Double {
                let out = Self.naiveAttention(q: q, k: k, v: v, layout: layout, heads: heads, kvHeads: kvHeads,
                                              headDim: headDim, causal: causal)
                return zip(rowWeights, out).reduce(0) { $0 + Double($1.0) * $1.1 }
            }
            var dq = [Float](repeating: 0, count: N * queryWidth), dk = [Float](repeating: 7, count: N * kvWidth), dv = dk
            var scratch = [Float](repeating: 0, count: P)
            Attention.backward(dctx: rowWeights, q: q, k: k, v: v, probs: probs, dq: &dq, dk: &dk, dv: &dv, scratch: &scratch,
                               layout: layout, heads: heads, headDim: headDim, kvHeads: kvHeads)
            let name = "grouped attention (causal \(causal), packed \(packed))"
            // Recomputing the probabilities in backward (nothing stored) gives the same numbers, from NaN scratch.
            var shares = [Float](repeating: .nan, count: Attention.recomputeScratchCount(layout: layout, heads: heads))
            var ctxAgain = [Float](repeating: 0, count: N * queryWidth)
            Attention.forwardRecomputing(q: q, k: k, v: v, layout: layout, ctx: &ctxAgain, scratch: &shares, heads: heads,
                                         headDim: headDim, kvHeads: kvHeads, causal: causal)
            #expect(realRows.allSatisfy { row in (0..<queryWidth).allSatisfy { ctxAgain[row * queryWidth + $0] == ctx[row * queryWidth + $0] } },
                    "\(name): recomputing forward differs")
            var dqAgain = [Float](repeating: 0, count: N * queryWidth), dkAgain = [Float](repeating: 7, count: N * kvWidth)
            var dvAgain = dkAgain
            Attention.backwardRecomputing(dctx: rowWeights, q: q, k: k, v: v, dq: &dqAgain, dk: &dkAgain, dv: &dvAgain,
                                          scratch: &shares, layout: layout, heads: heads, headDim: headDim, kvHeads: kvHeads,
                                          causal: causal)
            #expect(dqAgain == dq && dkAgain == dk && dvAgain == dv, "\(name): recomputing backward differs")
            FD.check(name + " dq", x: &q, grad: dq, eps: 1e-2, tol: 2e-3, samples: 200) { loss($0, k, v) }
            FD.check(name + " dk", x: &k, grad: dk, eps: 1e-2, tol: 2e-3, samples: 200) { loss(q, $0, v) }
            FD.check(name + " dv", x: &v, grad: dv, eps: 1e-2, tol: 2e-3, samples: 200) { loss(q, k, $0) }
        }
    }

    /// Packed attention gives the padded result on the real tokens: a sequence sees only its own.
    @Test func packedAttentionEqualsPaddedOnRealTokens() {
        var fd = FD()
        let heads = 2, hd = 4, H = heads * hd, lengths = [2, 5, 3], T = 5
        let packed = SequenceLayout.packed(lengths: lengths)
        var mask = [Float](repeating: 0, count: lengths.count * T)
        for (b, l) in lengths.enumerated() { for t in 0..<l { mask[b * T + t] = 1 } }
        let padded = SequenceLayout.padded(batch: lengths.count, seq: T, mask: mask)
        let q = fd.randn(packed.tokens * H), k = fd.randn(packed.tokens * H), v = fd.randn(packed.tokens * H)
        func pad(_ x: [Float]) -> [Float] {
            var out = fd.randn(padded.tokens * H)  // junk in the padding rows must not leak
            for b in lengths.indices { for t in 0..<lengths[b] { for j in 0..<H { out[(b * T + t) * H + j] = x[(packed.starts[b] + t) * H + j] } } }
            return out
        }
        func run(_ layout: SequenceLayout, _ q: [Float], _ k: [Float], _ v: [Float]) -> [Float] {
            var probs = [Float](repeating: 0, count: layout.probCount(heads: heads)), ctx = [Float](repeating: 0, count: layout.tokens * H)
            Attention.forward(q: q, k: k, v: v, layout: layout, probs: &probs, ctx: &ctx, heads: heads, headDim: hd)
            return ctx
        }
        let a = run(packed, q, k, v), b = run(padded, pad(q), pad(k), pad(v))
        var worst: Float = 0
        for i in lengths.indices { for t in 0..<lengths[i] { for j in 0..<H { worst = max(worst, abs(a[(packed.starts[i] + t) * H + j] - b[(i * T + t) * H + j])) } } }
        #expect(worst < 1e-6, "packed vs padded attention: \(worst)")
    }

    @Test func batchedStridedMatmulBackward() {
        var fd = FD()
        // 3 "heads" of 4x2 inside a [4, 6] activation (ld 6, stride 2), times 3 separate 2x5 matrices.
        let av = Ops.MatrixView(rows: 4, cols: 2, ld: 6, stride: 2), bv = Ops.MatrixView(rows: 2, cols: 5, stride: 10)
        let cv = Ops.MatrixView(rows: 4, cols: 5, ld: 15, stride: 5)
        var a = fd.randn(24), b = fd.randn(30)
        let wy = fd.randn(60)
        func fwd(_ a: [Float], _ b: [Float]) -> Double {
            var c = [Float](repeating: 0, count: 60)
            Ops.batchedMatmul(a, av, b, bv, &c, cv, batch: 3, alpha: 0.5)
            return dot(wy, c)
        }
        var da = [Float](repeating: 0, count: 24), db = [Float](repeating: 0, count: 30)
        Ops.batchedMatmulBackward(dc: wy, cv, a: a, av, b: b, bv, da: &da, db: &db, batch: 3, alpha: 0.5)
        FD.check("batched matmul dA", x: &a, grad: da) { fwd($0, b) }
        FD.check("batched matmul dB", x: &b, grad: db) { fwd(a, $0) }
    }

    @Test func stridedBatchedMatmulMatchesNaive() {
        var fd = FD()
        let m = 3, n = 4, k = 5
        let a = fd.randn(m * 8), b = fd.randn(k * 9)  // leading dims 8 and 9 (strided views)
        var c = [Float](repeating: 0, count: m * n)
        BLAS.sgemm(m: m, n: n, k: k, a: a, lda: 8, b: b, ldb: 9, c: &c, ldc: n)
        for i in 0..<m { for j in 0..<n {
            var s: Float = 0
            for p in 0..<k { s += a[i * 8 + p] * b[p * 9 + j] }
            #expect(abs(s - c[i * n + j]) < 1e-5)
        } }
    }
}

@Suite struct VectorMathTests {
    @Test func expAndErfMatchLibm() {
        var worstExp: Float = 0, worstErf: Float = 0, worstGelu: Float = 0
        var x: Float = -20
        while x < 20 {
            let v = VMath.V(repeating: x)
            let e = VMath.exp(v)[0], ref = expf(x)
            worstExp = max(worstExp, abs(e - ref) / max(ref, 1e-30))
            worstErf = max(worstErf, abs(VMath.erf(v)[0] - erff(x)))
            var y: [Float] = [0]
            Ops.geluForward([x], &y, count: 1)
            worstGelu = max(worstGelu, abs(y[0] - 0.5 * x * (1 + erff(x / Float(2).squareRoot()))))
            x += 0.001
        }
        #expect(worstExp < 1e-6, "exp relative error \(worstExp)")
        #expect(worstErf < 1e-6, "erf absolute error \(worstErf)")
        #expect(worstGelu < 3e-6, "gelu absolute error \(worstGelu)")
        #expect(VMath.exp(VMath.V(repeating: -200))[0] < 1e-37)
    }
}
