import Foundation
import Models
import RankwiseCore
import SafeTensors

/// A full Hugging Face model with the adapters folded into its weights: no PEFT needed to load it.
public enum MergedModel {
    /// Writes a full Hugging Face model directory (the backbone's class with the head's suffix, such as
    /// `BertForSequenceClassification`) with each adapter folded into its weight (`W + scaling·B·A`), the config
    /// with labels, and the tokenizer files copied from `baseDirectory`.
    public static func write(model: TaskModel, labelNames: [String], baseDirectory: String, to out: String) throws {
        var adapters: [String: LinearAdapter] = [:]
        for lin in model.backbone.adaptableLinears { if let a = lin.adapter { adapters[lin.path] = a } }
        if let gated = adapters.first(where: { ($0.value as? DynamicLoRAAdapter)?.gateWeight != nil }) {
            throw ModelError(
                "merge: \(gated.key) has Dynamic LoRA's input gate, which depends on each input and cannot be folded "
                    + "into a weight; train with --gate false to get a mergeable adapter (the PEFT export without the "
                    + "gate file is the gate-off model)"
            )
        }
        let fm = FileManager.default
        let created = !fm.fileExists(atPath: out)
        try fm.createDirectory(atPath: out, withIntermediateDirectories: true)
        do { try write() } catch {
            if created { try? fm.removeItem(atPath: out) }  // no empty or half-written model left behind
            throw error
        }
        func write() throws {
            var tensors: [TensorToWrite] = []
            let skipped = Set((adapters.values.flatMap(\.params) + model.head.params).map { ObjectIdentifier($0) })
            for p in model.backbone.params.all where !skipped.contains(ObjectIdentifier(p)) {
                var v = p.value.array
                let path = p.name.hasSuffix(".weight") ? String(p.name.dropLast(7)) : ""
                if let ad = adapters[path] {
                    let d = ad.delta()
                    for i in 0..<v.count { v[i] += d[i] }
                }
                guard v.allSatisfy(\.isFinite) else {
                    throw ModelError("merge: \(p.name) would hold non-finite values; the adapter is broken")
                }
                tensors.append(
                    TensorToWrite(name: model.backbone.huggingFace.prefix + p.name, shape: p.shape, floats: v))
            }
            tensors += model.head.params.map { TensorToWrite(name: $0.name, shape: $0.shape, floats: $0.value.array) }
            try SafeTensorsWriter.write(tensors, metadata: ["format": "pt"], to: out + "/model.safetensors")
            var cfg =
                (fm.contents(atPath: baseDirectory + "/config.json").flatMap {
                    try? JSONSerialization.jsonObject(with: $0) as? [String: Any]
                }) ?? model.backbone.configJSON
            cfg["architectures"] = [model.backbone.huggingFace.classStem + model.head.names.classSuffix]
            if model.head.names.peftTaskType == "SEQ_CLS" {
                let names =
                    labelNames.count == model.head.outputs ? labelNames : (0..<model.head.outputs).map { "LABEL_\($0)" }
                cfg["id2label"] = Dictionary(uniqueKeysWithValues: names.enumerated().map { (String($0), $1) })
                cfg["label2id"] = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
                cfg["problem_type"] = model.head.names.problemType
            }
            try AtomicFile.write(
                String(
                    decoding: try JSONSerialization.data(withJSONObject: cfg, options: [.prettyPrinted, .sortedKeys]),
                    as: UTF8.self), to: out + "/config.json")
            for f in [
                "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json",
                "chat_template.jinja",
                "generation_config.json", "vocab.json", "merges.txt",
            ]
            where fm.fileExists(atPath: baseDirectory + "/" + f) {
                try? fm.removeItem(atPath: out + "/" + f)
                try fm.copyItem(atPath: baseDirectory + "/" + f, toPath: out + "/" + f)
            }
        }
    }
}
