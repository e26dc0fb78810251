import Foundation
import Testing
import TestSupport
@testable import Adapters
@testable import Models
import RankwiseCore
import SafeTensors

/// DoRA: a 2 x 2 case worked by hand, then PEFT's `use_dora=True` on MiniLM (logits, loss, every gradient,
/// and the merged weights) from `Tests/Fixtures/dora` (scripts/make_varlen_reference.py --dora).
@Suite struct DoRATests {
    /// W = [[3, 4], [0, 1]], bias [0.5, -1], A = [[1, 0]], B = [[0], [1]], s = 1, m = [5, 2], x = [1, 2]:
    /// W + s·B A = [[3, 4], [1, 1]] with row norms 5 and √2, so k = m / norm = [1, √2]; the layer computes
    /// x Wᵀ + b = [11.5, 1] and the adapter adds (k − 1)·[11, 2] + k·[0, 1] = [0, 3√2 − 2]. With dy = [1, 1]:
    /// dm = dy·(x Wᵀ + low) / norm = [11/5, 3/√2], dB = k·dy·(A x) = [1, √2], dA = Σ dy·k·B·x = √2·[1, 2],
    /// and dx = dy (k ⊙ (W + s·B A)) = [3 + √2, 4 + √2] (the layer's own dy W plus the adapter's part).
    @Test func twoByTwoByHand() throws {
        let w = Param(name: "w", value: Tensor(shape: [2, 2], values: [3, 4, 0, 1]))
        let bias = Param(name: "b", value: Tensor(shape: [2], values: [0.5, -1]))
        let lin = Linear(path: "l", weight: w, bias: bias)
        let cfg = LoRAConfig(r: 1, alpha: 1, dropout: 0, targetModules: ["l"])
        let ad = DoRAAdapter(path: "l", layer: lin, config: cfg, a: Tensor(shape: [1, 2], values: [1, 0]), b: Tensor(shape: [2, 1], values: [0, 1]),
                             magnitude: Tensor(shape: [2], values: [5, 2]))
        let ps = ParameterSet()
        for p in ad.params { ps.add(p) }
        ps.setTrainable { _ in true }
        lin.adapter = ad
        let x: [Float] = [1, 2]
        var y = [Float](repeating: 0, count: 2)
        lin.forward(x, &y, n: 1, training: true, seed: 1)
        let r2 = Float(2).squareRoot()
        #expect(abs(y[0] - 11.5) < 1e-5 && abs(y[1] - (3 * r2 - 1)) < 1e-5, "\(y)")
        var dx = [Float](repeating: 0, count: 2)
        lin.backward(dy: [1, 1], x: x, dx: &dx, n: 1)
        let gm = ad.magnitude.grad!.array, gb = ad.lora.b.grad!.array, ga = ad.lora.a.grad!.array
        #expect(abs(gm[0] - 11.0 / 5) < 1e-5 && abs(gm[1] - 3 / r2) < 1e-5, "\(gm)")
        #expect(abs(gb[0] - 1) < 1e-5 && abs(gb[1] - r2) < 1e-5, "\(gb)")
        #expect(abs(ga[0] - r2) < 1e-5 && abs(ga[1] - 2 * r2) < 1e-5, "\(ga)")
        #expect(abs(dx[0] - (3 + r2)) < 1e-5 && abs(dx[1] - (4 + r2)) < 1e-5, "\(dx)")
        // Merging: W + delta = k ⊙ (W + s·B A) = [[3, 4], [√2, √2]].
        let d = ad.delta().array
        #expect(zip(d, [0, 0, r2, r2 - 1]).allSatisfy { abs($0 - $1) < 1e-5 }, "\(d)")
    }

    /// With dropout, x' = dropout(x) feeds both the base term and the low-rank path (PEFT recomputes x' Wᵀ):
    /// the adapter's gradients match central finite differences of a scalar loss through the same mask.
    @Test func gradientsWithDropoutMatchFiniteDifferences() throws {
        var rng = SplitMix64(seed: 3)
        func rand(_ n: Int) -> [Float] { (0..<n).map { _ in rng.nextFloat() - 0.5 } }
        let (inD, outD, n) = (5, 4, 3)
        let w = Param(name: "w", value: Tensor(shape: [outD, inD], values: rand(outD * inD)))
        let lin = Linear(path: "l", weight: w, bias: Param(name: "b", value: Tensor(shape: [outD], values: rand(outD))))
        let cfg = LoRAConfig(r: 2, alpha: 3, dropout: 0.3, targetModules: ["l"])
        let ad = DoRAAdapter(path: "l", layer: lin, config: cfg, a: Tensor(shape: [2, inD], values: rand(2 * inD)), b: Tensor(shape: [outD, 2], values: rand(outD * 2)),
                             magnitude: Tensor(shape: [outD], values: (0..<outD).map { _ in 1 + rng.nextFloat() }))
        let ps = ParameterSet()
        for p in ad.params { ps.add(p) }
        ps.setTrainable { _ in true }
        lin.adapter = ad
        let x = rand(n * inD), c = rand(n * outD)  // loss = Σ c ⊙ y
        func loss() -> Float {
            var y = [Float](repeating: 0, count: n * outD)
            lin.forward(x, &y, n: n, training: true, seed: 9)
            return zip(y, c).map { $0 * $1 }.reduce(0, +)
        }
        _ = loss()
        var dx = [Float](repeating: 0, count: n * inD)
        lin.backward(dy: c, x: x, dx: &dx, n: n)
        // The norm is detached in PEFT, so a finite difference of m, A or B must hold k's norm fixed: check m
        // (whose gradient is exact: the loss is linear in m for a fixed norm) and dx (the norm does not depend on x).
        let gm = ad.magnitude.grad!.array
        for j in 0..<outD {
            let h: Float = 1e-2
            ad.magnitude.value[j] += h; let up = loss(); ad.magnitude.value[j] -= 2 * h; let down = loss(); ad.magnitude.value[j] += h
            #expect(abs((up - down) / (2 * h) - gm[j]) < 2e-3, "dm[\(j)]")
        }
        var xs = x
        for i in 0..<(n * inD) {
            let h: Float = 1e-2
            func at(_ v: Float) -> Float { xs[i] = v; var y = [Float](repeating: 0, count: n * outD); lin.forward(xs, &y, n: n, training: true, seed: 9); return zip(y, c).map { $0 * $1 }.reduce(0, +) }
            let fd = (at(x[i] + h) - at(x[i] - h)) / (2 * h); xs[i] = x[i]
            #expect(abs(fd - dx[i]) < 3e-3, "dx[\(i)]: \(fd) vs \(dx[i])")
        }
    }

    @Test(arguments: [false, true]) func reproducesPEFT(packed: Bool) throws {
        guard let dir = Fixtures.modelDir() else { return }
        let fx = Fixtures.packageRoot.path + "/Tests/Fixtures/dora"
        let enc = try BertModel.load(directory: dir, withPooler: true)
        let lc = try PEFTFormat.readConfig(directory: fx, dora: true)
        var ads: [String: DoRAAdapter] = [:]
        let weights = try SafeTensorsFile(path: fx + "/adapter_model.safetensors")
        for lin in enc.linears where lc.matches(lin.path) {
            let pre = "base_model.model.bert.\(lin.path)."
            let ad = DoRAAdapter(path: lin.path, layer: lin, config: lc, a: Tensor(shape: [lc.r, lin.inDim], values: try weights.floats(pre + "lora_A.weight")),
                                 b: Tensor(shape: [lin.outDim, lc.r], values: try weights.floats(pre + "lora_B.weight")),
                                 magnitude: Tensor(shape: [lin.outDim], values: try weights.floats(pre + "lora_magnitude_vector")))
            lin.adapter = ad
            for p in ad.params { enc.params.add(p) }
            ads[lin.path] = ad
        }
        #expect(ads.count == 18)
        let model = try TaskModel(backbone: enc, numLabels: 3, problem: .singleLabel, head: ModelTestHead(file: weights))
        model.params.setTrainable { $0.contains("lora_") || $0.hasPrefix("classifier.") }
        let ex = try SafeTensorsFile(path: fx + "/expected.safetensors")
        let shape = ex.info("input_ids")!.shape
        let padded = TokenBatch(batch: shape[0], seq: shape[1], ids: try ex.ints("input_ids").map(Int32.init),
                               typeIds: try ex.ints("token_type_ids").map(Int32.init), mask: try ex.ints("attention_mask").map(Float.init))
        let out = try model.forward(packed ? padded.unpadded() : padded, labels: try ex.ints("labels").map(Int32.init))
        let lerr = zip(out.logits, try ex.floats("logits")).map { abs($0 - $1) }.max()!
        #expect(lerr < 1e-4, "logits max abs error \(lerr)")
        #expect(abs(out.loss! - (try ex.floats("loss")[0])) < 1e-4)
        try model.backward()
        var checked = 0, worst: Float = 0
        for name in ex.names where name.hasPrefix("grad.") {
            let ours = String(name.dropFirst(5)).replacingOccurrences(of: "base_model.model.bert.", with: "")
                .replacingOccurrences(of: "base_model.model.classifier.modules_to_save.default.", with: "classifier.")
                .replacingOccurrences(of: "lora_magnitude_vector.default.weight", with: "lora_magnitude_vector")
                .replacingOccurrences(of: ".default.weight", with: ".weight")
            guard let p = model.params[ours], let g = p.grad else { Issue.record("no trainable parameter \(ours)"); continue }
            let ref = try ex.floats(name)
            let num = zip(g.array, ref).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
            let rel = num / max(ref.map { $0 * $0 }.reduce(0, +).squareRoot(), 1e-12)
            worst = max(worst, rel)
            #expect(rel < 1e-3, "\(ours): relative gradient error \(rel)")
            checked += 1
        }
        #expect(checked == 3 * ads.count + 2 && model.params.trainable.count == checked)
        // PEFT's merge_and_unload: W + delta equals its merged weight.
        var merr: Float = 0
        for (path, ad) in ads {
            let ref = try ex.floats("merged.\(path).weight"), d = ad.delta().array, w = enc.linears.first { $0.path == path }!.weight.value.array
            merr = max(merr, zip(zip(w, d).map { $0 + $1 }, ref).map { abs($0 - $1) }.max()!)
        }
        #expect(merr < 1e-5, "merged weights max abs error \(merr)")
        print("dora parity (\(packed ? "packed" : "padded")): logits \(lerr), worst grad rel \(worst), merged \(merr)")
    }
}
