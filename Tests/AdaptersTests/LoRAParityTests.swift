import Foundation
import Testing
import TestSupport
@testable import Adapters
@testable import Models
import RankwiseCore
import SafeTensors

/// PEFT LoRA fixtures on MiniLM + classifier: logits, loss and every gradient against PyTorch, on the
/// padded path and on the unpadded (packed, variable-length attention) path.
/// - `../shared/fixtures/minilm/lora_seqcls`: r=4 on all six linears, three single texts (9, 8, 8 tokens).
/// - `Tests/Fixtures/varlen_lora` (scripts/make_varlen_reference.py): r=4 on query, value and
///   intermediate.dense, single texts and sentence pairs of 3 to 31 tokens in one batch.
@Suite struct LoRAParityTests {
    static let fixtures = [Fixtures.minilm + "/lora_seqcls", Fixtures.packageRoot.path + "/Tests/Fixtures/varlen_lora"]

    @Test(arguments: fixtures, [false, true]) func reproducesPEFTLogitsLossAndGradients(_ fx: String, packed: Bool) throws {
        guard let dir = Fixtures.modelDir() else { return }
        let enc = try BertModel.load(directory: dir, withPooler: true)
        let cfgData = try Data(contentsOf: URL(fileURLWithPath: fx + "/adapter_config.json"))
        let cfgJSON = try JSONSerialization.jsonObject(with: cfgData) as! [String: Any]
        let cfg = LoRAConfig(r: cfgJSON["r"] as! Int, alpha: (cfgJSON["lora_alpha"] as! NSNumber).floatValue, dropout: 0,
                             targetModules: cfgJSON["target_modules"] as! [String], useRSLoRA: cfgJSON["use_rslora"] as! Bool)
        let adapters = try LoRA.attach(to: enc, config: cfg, seed: 0)
        let weights = try SafeTensorsFile(path: fx + "/adapter_model.safetensors")
        for (path, ad) in adapters {
            let a = try weights.floats("base_model.model.bert.\(path).lora_A.weight")
            let b = try weights.floats("base_model.model.bert.\(path).lora_B.weight")
            ad.a.value.buffer.update(from: a)
            _ = ad.b.value.buffer.update(from: b)
        }
        let head = ModelTestHead(file: weights)
        let model = try TaskModel(backbone: enc, numLabels: 3, problem: .singleLabel, head: head)
        model.params.setTrainable { $0.contains("lora_") || $0.hasPrefix("classifier.") }
        let ex = try SafeTensorsFile(path: fx + "/expected.safetensors")
        let shape = ex.info("input_ids")!.shape
        let padded = TokenBatch(batch: shape[0], seq: shape[1], ids: try ex.ints("input_ids").map(Int32.init),
                               typeIds: try ex.ints("token_type_ids").map(Int32.init), mask: try ex.ints("attention_mask").map(Float.init))
        let input = packed ? padded.unpadded() : padded
        let labels = try ex.ints("labels").map(Int32.init)
        let out = try model.forward(input, labels: labels)
        let refLogits = try ex.floats("logits")
        let lerr = zip(out.logits, refLogits).map { abs($0 - $1) }.max()!
        #expect(lerr < 1e-4, "logits max abs error \(lerr)")
        let refLoss = try ex.floats("loss")[0]
        #expect(abs(out.loss! - refLoss) < 1e-4, "loss \(out.loss!) vs \(refLoss)")
        try model.backward()
        var checked = 0, worst: Float = 0
        for name in ex.names where name.hasPrefix("grad.") {
            let peft = String(name.dropFirst(5))
            let ours = peft.replacingOccurrences(of: "base_model.model.bert.", with: "")
                .replacingOccurrences(of: "base_model.model.classifier.modules_to_save.default.", with: "classifier.")
                .replacingOccurrences(of: ".default.weight", with: ".weight")
            guard let p = model.params[ours], let g = p.grad else { Issue.record("no trainable parameter \(ours) for \(peft)"); continue }
            let ref = try ex.floats(name)
            let num = zip(g.array, ref).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
            let den = max(ref.map { $0 * $0 }.reduce(0, +).squareRoot(), 1e-12)
            worst = max(worst, num / den)
            #expect(num / den < 1e-3, "\(ours): relative gradient error \(num / den)")
            checked += 1
        }
        #expect(checked == 2 * adapters.count + 2)
        #expect(model.params.trainable.count == checked)
        print("lora parity (\(packed ? "packed" : "padded")) \((fx as NSString).lastPathComponent): logits \(lerr), loss \(abs(out.loss! - refLoss)), worst grad rel \(worst)")
    }
}

/// Reads a PEFT adapter file's classifier as a weight source.
struct ModelTestHead: WeightSource {
    let file: SafeTensorsFile
    func has(_ name: String) -> Bool { file.contains("base_model.model." + name) }
    func tensor(_ name: String, shape: [Int]) throws -> Tensor { Tensor(shape: shape, values: try file.floats("base_model.model." + name)) }
}

/// Importing an adapter directory exactly as PEFT's save_pretrained wrote it.
@Suite struct PEFTImportTests {
    @Test func importsThePEFTFixtureDirectory() throws {
        guard let dir = Fixtures.modelDir() else { return }
        let fx = Fixtures.minilm + "/lora_seqcls"
        let cfg = try PEFTFormat.readConfig(directory: fx)
        #expect(cfg.r == 4 && cfg.alpha == 8 && !cfg.useRSLoRA)
        let enc = try BertModel.load(directory: dir, withPooler: true)
        let ads = try LoRA.attach(to: enc, config: cfg, seed: 0)
        let head = try PEFTFormat.loadWeights(directory: fx, adapters: ads)
        let model = try TaskModel(backbone: enc, numLabels: 3, problem: .singleLabel, head: head)
        let ex = try SafeTensorsFile(path: fx + "/expected.safetensors")
        let shape = ex.info("input_ids")!.shape
        let out = try model.forward(TokenBatch(batch: shape[0], seq: shape[1], ids: try ex.ints("input_ids").map(Int32.init),
                                              typeIds: try ex.ints("token_type_ids").map(Int32.init), mask: try ex.ints("attention_mask").map(Float.init)))
        let err = zip(out.logits, try ex.floats("logits")).map { abs($0 - $1) }.max()!
        #expect(err < 1e-4, "imported adapter logits differ by \(err)")
    }

    @Test func roundTripThroughOurExport() throws {
        let cfg = BertConfig(hiddenSize: 8, numHeads: 2, numLayers: 1, intermediateSize: 16, vocabSize: 20, maxPositions: 8)
        let enc = try BertModel(config: cfg, weights: RandomWeights(seed: 1), withPooler: true)
        let lc = LoRAConfig(r: 2, alpha: 4, dropout: 0, targetModules: ["query", "value"])
        let ads = try LoRA.attach(to: enc, config: lc, seed: 2)
        var rng = SplitMix64(seed: 5)
        for ad in ads.values { for i in 0..<ad.b.count { ad.b.value[i] = rng.nextNormal() } }
        let m = try TaskModel(backbone: enc, numLabels: 2, problem: .singleLabel, seed: 3)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rankwise-rt-\(getpid())").path
        try PEFTFormat.save(directory: dir, model: m, adapters: ads, config: lc,
                            extra: .init(labelNames: ["a", "b"], problem: "single_label_classification", maxLength: 8, baseModel: "x", method: "lora"))
        let input = TokenBatch(batch: 1, seq: 4, ids: [1, 5, 6, 2])
        let want = try m.forward(input).logits
        let enc2 = try BertModel(config: cfg, weights: RandomWeights(seed: 1), withPooler: true)
        let ads2 = try LoRA.attach(to: enc2, config: try PEFTFormat.readConfig(directory: dir), seed: 99)
        let m2 = try TaskModel(backbone: enc2, numLabels: 2, problem: .singleLabel, head: try PEFTFormat.loadWeights(directory: dir, adapters: ads2))
        #expect(try m2.forward(input).logits == want)
        #expect(PEFTFormat.readExtra(directory: dir)?.labelNames == ["a", "b"])
    }
}
