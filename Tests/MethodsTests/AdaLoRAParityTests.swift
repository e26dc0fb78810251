import Foundation
import Testing
import TestSupport
@testable import Adapters
@testable import Models
@testable import Methods
import RankwiseCore
import SafeTensors

/// `../shared/fixtures/minilm/adalora_seqcls`: PEFT AdaLoRA (init_r 4, alpha 8, orth_reg_weight 0.1),
/// on the padded and the unpadded path.
@Suite struct AdaLoRAParityTests {
    @Test(arguments: [false, true]) func reproducesPEFTLogitsLossWithRegulariserAndGradients(packed: Bool) throws {
        guard let dir = Fixtures.modelDir() else { return }
        let fx = Fixtures.minilm + "/adalora_seqcls"
        let enc = try BertModel.load(directory: dir, withPooler: true)
        var cfg = AdaLoRAConfig()
        cfg.initR = 4; cfg.lora.r = 2; cfg.lora.alpha = 8; cfg.lora.loraDropout = 0; cfg.phases.tinit = 10; cfg.phases.tfinal = 20; cfg.deltaT = 5
        cfg.orthRegWeight = 0.1; cfg.beta1 = 0.85; cfg.beta2 = 0.85
        cfg.lora.targetModules = ["query", "key", "attention.output.dense", "value", "output.dense", "intermediate.dense"]
        let adapters = try SVDAdapter.attach(to: enc, targeting: cfg.lora, initialRank: cfg.initR, seed: 0, method: "AdaLoRA")
        #expect(adapters.count == 36)
        let w = try SafeTensorsFile(path: fx + "/adapter_model.safetensors")
        for (path, ad) in adapters {
            for (p, key) in [(ad.a, "lora_A"), (ad.e, "lora_E"), (ad.b, "lora_B")] {
                _ = p.value.buffer.update(from: try w.floats("base_model.model.bert.\(path).\(key)"))
            }
        }
        let head = PEFTTestHead(file: w)
        let model = try TaskModel(backbone: enc, numLabels: 3, problem: .singleLabel, head: head)
        model.regularizers = [OrthogonalRegularizer(adapters: adapters.values.sorted { $0.path < $1.path }, weight: 0.1)]
        model.params.setTrainable { $0.contains("lora_") || $0.hasPrefix("classifier.") }
        let ex = try SafeTensorsFile(path: fx + "/expected.safetensors")
        let shape = ex.info("input_ids")!.shape
        let input = TokenBatch(batch: shape[0], seq: shape[1], ids: try ex.ints("input_ids").map(Int32.init),
                              typeIds: try ex.ints("token_type_ids").map(Int32.init), mask: try ex.ints("attention_mask").map(Float.init))
        let out = try model.forward(packed ? input.unpadded() : input, labels: try ex.ints("labels").map(Int32.init))
        let lerr = zip(out.logits, try ex.floats("logits")).map { abs($0 - $1) }.max()!
        #expect(lerr < 1e-4, "logits \(lerr)")
        let refLoss = try ex.floats("loss")[0], refCE = try ex.floats("cross_entropy")[0]
        #expect(abs(out.loss! - refLoss) < 1e-4, "loss \(out.loss!) vs \(refLoss)")
        #expect(abs(model.regularizers[0].loss() - (refLoss - refCE)) < 1e-4, "regulariser \(model.regularizers[0].loss()) vs \(refLoss - refCE)")
        try model.backward()
        var checked = 0, worst: Float = 0
        for name in ex.names where name.hasPrefix("grad.") {
            let ours = String(name.dropFirst(5)).replacingOccurrences(of: "base_model.model.bert.", with: "")
                .replacingOccurrences(of: "base_model.model.classifier.modules_to_save.default.", with: "classifier.")
                .replacingOccurrences(of: ".default", with: "")
            guard let g = model.params[ours]?.grad else { Issue.record("no gradient for \(ours)"); continue }
            let ref = try ex.floats(name)
            let num = zip(g.array, ref).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
            let den = max(ref.map { $0 * $0 }.reduce(0, +).squareRoot(), 1e-12)
            worst = max(worst, num / den)
            #expect(num / den < 1e-3, "\(ours): relative error \(num / den)")
            checked += 1
        }
        #expect(checked == 110)
        print("adalora parity: logits \(lerr), loss \(abs(out.loss! - refLoss)), worst grad rel \(worst)")
    }
}

struct PEFTTestHead: WeightSource {
    let file: SafeTensorsFile
    func has(_ name: String) -> Bool { file.contains("base_model.model." + name) }
    func tensor(_ name: String, shape: [Int]) throws -> Tensor { Tensor(shape: shape, values: try file.floats("base_model.model." + name)) }
}
