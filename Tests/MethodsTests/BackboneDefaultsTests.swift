import Foundation
import Testing
@testable import Adapters
@testable import Methods
import Models
import RankwiseCore
import SafeTensors
import Training

/// Target modules come from the backbone when the user names none: every registered method records the
/// backbone's list in its configuration (so run.json, fingerprints and adapter files name the modules), and a
/// configuration built in Swift without the registry still adapts and saves them.
@Suite struct BackboneDefaultsTests {
    func tinyBackbone() throws -> BertModel {
        let config = BertConfig(hiddenSize: 8, numHeads: 2, numLayers: 2, intermediateSize: 16, vocabSize: 30, maxPositions: 16)
        return try BertModel(config: config, weights: RandomWeights(seed: 5), withPooler: true)
    }

    @Test func everyMethodRecordsTheBackbonesTargets() throws {
        #expect(LoRATargeting().targetModules.isEmpty)
        let expected = try tinyBackbone().defaultTargetModules
        #expect(expected.count == 6)
        for entry in MethodRegistry.all {
            let backbone = try tinyBackbone()
            let values = ["r": "2", "max-rank": "4", "init-r": "3"].filter { entry.hasOption($0.key) }
            let (method, configJSON) = try entry.make(options: values, backbone: backbone, seed: 1)
            let object = try JSONSerialization.jsonObject(with: Data(configJSON.utf8))
            #expect(Self.targetLists(in: object) == [expected], "\(entry.name): \(configJSON)")
            #expect(method.adapters.count == 12, "\(entry.name) adapted \(method.adapters.count) modules")
        }
        // A user's list is kept as given.
        let (_, own) = try MethodRegistry.entry("lora").make(options: ["target-modules": "query"], backbone: try tinyBackbone(), seed: 1)
        #expect(own.contains("\"targetModules\":[\"query\"]"))
    }

    @Test func aConfigBuiltInSwiftAdaptsAndSavesTheDefaults() throws {
        let backbone = try tinyBackbone()
        let adapters = try LoRA.attach(to: backbone, config: LoRAConfig(r: 2, alpha: 4), seed: 1)
        #expect(adapters.count == 12)
        let model = try TaskModel(backbone: backbone, numLabels: 2, problem: .singleLabel, seed: 2)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rankwise-defaults-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try PEFTFormat.save(directory: dir, model: model, adapters: adapters, config: LoRAConfig(r: 2, alpha: 4),
                            extra: .init(labelNames: ["a", "b"], problem: "single_label_classification", maxLength: 8,
                                         baseModel: "x", method: "lora"))
        let saved = try PEFTFormat.readConfig(directory: dir)
        #expect(saved.targetModules.sorted() == adapters.keys.sorted())
    }

    /// Every model type the BERT config reads is loaded by the BERT family (RoBERTa-family checkpoints loaded
    /// before the registry); an unknown one is a clear error naming the file.
    @Test func modelTypesPickTheirFamily() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rankwise-family-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for modelType in ["bert", "roberta", "xlm-roberta", "camembert"] {
            try "{\"model_type\": \"\(modelType)\"}".write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
            #expect(try BackboneFamilies.family(of: dir).name == "bert")
        }
        try "{\"model_type\": \"gpt2\"}".write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        #expect { try BackboneFamilies.family(of: dir) } throws: { "\($0)".contains("config.json: model_type \"gpt2\"") }
        // Adapter readers strip only known prefixes: a tensor saved for another model's module is not taken.
        #expect(PEFTNames.modulePath(of: "base_model.model.bert.encoder.layer.0.output.dense", among: ["encoder.layer.0.output.dense"])
                == "encoder.layer.0.output.dense")
        #expect(PEFTNames.modulePath(of: "base_model.model.gpt.encoder.layer.0.output.dense", among: ["encoder.layer.0.output.dense"]) == nil)
    }

    /// A saved adapter names its modules: an empty `target_modules` is an error naming the file, not a silent
    /// "the backbone's defaults" (which the attach routine would read it as).
    @Test func emptySavedTargetsAreAnError() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rankwise-empty-targets-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try #"{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": []}"#
            .write(toFile: dir + "/adapter_config.json", atomically: true, encoding: .utf8)
        #expect { try PEFTFormat.readConfig(directory: dir) } throws: {
            "\($0)".contains("adapter_config.json: target_modules is empty")
        }
        try #"{"peft_type": "ADALORA", "init_r": 4, "target_r": 2, "lora_alpha": 4, "target_modules": []}"#
            .write(toFile: dir + "/adapter_config.json", atomically: true, encoding: .utf8)
        #expect { try AdaLoRAFormat.readConfig(directory: dir) } throws: {
            "\($0)".contains("adapter_config.json: target_modules missing or empty")
        }
    }

    /// The head's tensors in an adapter file are those under `base_model.model.` that are neither adapter tensors
    /// nor the backbone's: a file whose only other tensors belong to the backbone has no head.
    @Test func headWeightsSkipTheBackbonesTensors() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("rankwise-head-\(getpid()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let backboneOnly = [
            TensorToWrite(name: "base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight", shape: [1, 2], floats: [1, 2]),
            TensorToWrite(name: "base_model.model.bert.embeddings.word_embeddings.weight", shape: [1, 2], floats: [1, 2]),
        ]
        try SafeTensorsWriter.write(backboneOnly, to: path)
        #expect(PEFTNames.headWeights(in: try SafeTensorsFile(path: path)) == nil)
        // PEFT's wrapping is found whichever tensor comes first.
        let wrapped = backboneOnly + [
            TensorToWrite(name: "base_model.model.classifier.modules_to_save.default.weight", shape: [2, 1], floats: [3, 4]),
        ]
        try SafeTensorsWriter.write(wrapped, to: path)
        let head = try #require(PEFTNames.headWeights(in: try SafeTensorsFile(path: path)))
        #expect(try head.tensor("classifier.weight", shape: [2, 1]).array == [3, 4])
    }

    /// Weight decay and random initialisation go by the role the model gave each parameter, not by BERT's names;
    /// on BERT (with a head and Dynamic LoRA's gated adapters) the roles pick exactly what the old name rule
    /// (`.bias` suffix or `LayerNorm`) picked, so runs with weight decay do not change.
    @Test func parameterRolesReplaceTheNameRule() throws {
        let backbone = try tinyBackbone()
        _ = try MethodRegistry.entry("dynamic").make(options: ["r": "2"], backbone: backbone, seed: 1)
        let model = try TaskModel(backbone: backbone, numLabels: 2, problem: .singleLabel, seed: 2)
        let optimizer = AdamW(params: model.params)
        var skipped = 0
        for param in model.params.all {
            let byName = param.name.hasSuffix(".bias") || param.name.contains("LayerNorm")
            #expect(optimizer.noDecay(param) == byName, "\(param.name)")
            #expect((param.role == .normScale) == param.name.hasSuffix("LayerNorm.weight"), "\(param.name)")
            if byName { skipped += 1 }
        }
        #expect(skipped > 12)
        // A random normalisation scale starts near one, a random weight near zero.
        let scale = try RandomWeights(seed: 3).tensor("norm", shape: [64], role: .normScale).array
        #expect(abs(scale.reduce(0, +) / 64 - 1) < 0.1)
        let weight = try RandomWeights(seed: 3).tensor("norm", shape: [64]).array
        #expect(abs(weight.reduce(0, +) / 64) < 0.1)
    }

    /// Every `targetModules` list in a configuration's JSON.
    static func targetLists(in value: Any) -> [[String]] {
        guard let object = value as? [String: Any] else { return [] }
        var lists: [[String]] = []
        for (key, inner) in object.sorted(by: { $0.key < $1.key }) {
            if key == "targetModules", let list = inner as? [String] { lists.append(list) } else { lists += targetLists(in: inner) }
        }
        return lists
    }
}
