import Foundation
import Testing
@testable import Adapters
@testable import Methods
import Models
import RankwiseCore
import SafeTensors

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
