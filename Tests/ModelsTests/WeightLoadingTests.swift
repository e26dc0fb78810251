import Foundation
import Testing
@testable import Models
import RankwiseCore
import SafeTensors

/// Writes a tiny random BERT as a Hugging Face directory, with a key prefix and optional damage.
func writeTinyModel(prefix: String, dropKey: String? = nil, reshapeKey: String? = nil) throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rankwise-tiny-\(prefix.isEmpty ? "plain" : "prefixed")-\(dropKey ?? "")-\(reshapeKey ?? "")-\(getpid())").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let cfg = BertConfig(hiddenSize: 8, numHeads: 2, numLayers: 2, intermediateSize: 16, vocabSize: 30, maxPositions: 12)
    let src = try BertModel(config: cfg, weights: RandomWeights(seed: 3), withPooler: true)
    var tensors: [TensorToWrite] = []
    for p in src.params.all where p.name != dropKey {
        let shape = p.name == reshapeKey ? [p.count] : p.shape
        tensors.append(TensorToWrite(name: prefix + p.name, shape: shape, floats: p.value.array))
    }
    try SafeTensorsWriter.write(tensors, to: dir + "/model.safetensors")
    let json = try JSONSerialization.data(withJSONObject: cfg.json)
    try json.write(to: URL(fileURLWithPath: dir + "/config.json"))
    return dir
}

@Suite struct WeightLoadingTests {
    @Test func loadsWithAndWithoutBertPrefixIdentically() throws {
        let a = try BertModel.load(directory: try writeTinyModel(prefix: ""))
        let b = try BertModel.load(directory: try writeTinyModel(prefix: "bert."))
        #expect(a.pooler != nil && b.pooler != nil)
        let input = TokenBatch(batch: 1, seq: 4, ids: [1, 5, 7, 2])
        let ya = try a.forward(input).lastHidden
        let va = (0..<32).map { ya[$0] }
        let yb = try b.forward(input).lastHidden
        #expect((0..<32).allSatisfy { yb[$0] == va[$0] })
    }

    @Test func missingTensorIsNamed() throws {
        let dir = try writeTinyModel(prefix: "bert.", dropKey: "encoder.layer.1.output.dense.weight")
        do { _ = try BertModel.load(directory: dir); Issue.record("loaded a model with a missing tensor") }
        catch { #expect("\(error)".contains("bert.encoder.layer.1.output.dense.weight"), "\(error)") }
    }

    @Test func misShapedTensorIsNamed() throws {
        let dir = try writeTinyModel(prefix: "", reshapeKey: "encoder.layer.0.attention.self.key.weight")
        do { _ = try BertModel.load(directory: dir); Issue.record("loaded a mis-shaped tensor") }
        catch {
            #expect("\(error)".contains("encoder.layer.0.attention.self.key.weight"))
            #expect("\(error)".contains("[64]") && "\(error)".contains("[8, 8]"), "\(error)")
        }
    }

    @Test func configErrorsNameTheField() throws {
        let dir = try writeTinyModel(prefix: "")
        let bad = ["hidden_size": 8, "num_attention_heads": 2, "num_hidden_layers": 2, "intermediate_size": 16, "vocab_size": 30, "hidden_act": "swish"] as [String: Any]
        try JSONSerialization.data(withJSONObject: bad).write(to: URL(fileURLWithPath: dir + "/config.json"))
        do { _ = try BertModel.load(directory: dir); Issue.record("accepted hidden_act swish") }
        catch { #expect("\(error)".contains("hidden_act") && "\(error)".contains("config.json")) }
    }
}
