import Foundation
import Models
import RankwiseCore
import SafeTensors

/// How PEFT names what it saves, for any backbone and head: adapter tensors under
/// `base_model.model.` + the backbone's Hugging Face prefix + the module path, the head's tensors
/// (`modules_to_save`) under `base_model.model.`.
public enum PEFTNames {
    public static let modelPrefix = "base_model.model."

    /// `base_model.model.bert.` for a BERT backbone.
    public static func backbonePrefix(_ backbone: any Backbone) -> String {
        modelPrefix + backbone.huggingFace.prefix
    }

    /// The head's parameters as PEFT saves them.
    public static func headTensors(_ model: TaskModel) -> [TensorToWrite] {
        model.head.params.map { TensorToWrite(name: modelPrefix + $0.name, shape: $0.shape, floats: $0.value.array) }
    }

    /// The config entries every adapter of `model` shares: task type, modules to save, base model.
    public static func configBase(model: TaskModel, baseModel: String) -> [String: Any] {
        [
            "task_type": model.head.names.peftTaskType, "modules_to_save": model.head.names.modulesToSave,
            "base_model_name_or_path": baseModel,
        ]
    }

    /// Writes `adapter_config.json` and Rankwise's `rankwise.json` into an adapter directory, each atomically.
    public static func writeConfigFiles(_ config: [String: Any], metadata: AdapterMetadata, directory: String) throws {
        let configData = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
        try AtomicFile.write(String(decoding: configData, as: UTF8.self), to: directory + "/adapter_config.json")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let metadataText = String(decoding: try encoder.encode(metadata), as: UTF8.self)
        try AtomicFile.write(metadataText, to: directory + "/rankwise.json")
    }

    /// The tensor of `file` named `stem` (a module path and a suffix) under any prefix: PEFT and other tools
    /// save the same tensor as `base_model.model.bert.PATH…`, `bert.PATH…` or `PATH…`.
    public static func find(_ stems: [String], in file: SafeTensorsFile) -> String? {
        for stem in stems {
            if file.contains(stem) { return stem }
            if let name = file.names.first(where: { $0.hasSuffix("." + stem) }) { return name }
        }
        return nil
    }

    /// The module path among `paths` that a saved name (prefixes and all) refers to: the longest path the name
    /// equals or ends with after a dot.
    public static func modulePath(of savedName: String, among paths: some Sequence<String>) -> String? {
        paths.filter { savedName == $0 || savedName.hasSuffix("." + $0) }.max { $0.count < $1.count }
    }

    /// The head's weights inside an adapter file (`base_model.model.classifier.weight`, or PEFT's
    /// `classifier.modules_to_save.default.weight`), or nil when the file holds none.
    public static func headWeights(in file: SafeTensorsFile) -> WeightSource? {
        let headNames = file.names.filter { $0.hasPrefix(modelPrefix) && !$0.contains("lora_") }
        guard let first = headNames.first else { return nil }
        return HeadWeights(file: file, wrapped: first.contains(".modules_to_save.default."))
    }

    /// A head's tensors in an adapter file, by the head's own names (`classifier.weight`).
    struct HeadWeights: WeightSource {
        let file: SafeTensorsFile
        /// PEFT's `modules_to_save` wrapping: `classifier.modules_to_save.default.weight`.
        let wrapped: Bool

        func key(_ name: String) -> String {
            guard wrapped, let dot = name.firstIndex(of: ".") else { return modelPrefix + name }
            return modelPrefix + name[..<dot] + ".modules_to_save.default" + name[dot...]
        }

        func has(_ name: String) -> Bool { file.contains(key(name)) }

        func tensor(_ name: String, shape: [Int]) throws -> Tensor {
            guard let info = file.info(key(name)) else { throw ModelError("\(file.path): missing \(key(name))") }
            guard info.shape == shape else {
                throw ModelError("\(file.path): \(key(name)) has shape \(info.shape), expected \(shape)")
            }
            return Tensor(shape: shape, values: try file.floats(key(name)))
        }
    }
}
