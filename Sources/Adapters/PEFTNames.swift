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

    /// The prefixes under which PEFT and other tools save a module's tensors, most specific first: for every
    /// registered family's Hugging Face prefix `p` (`bert.`), `base_model.model.p`, then `base_model.model.`, `p`
    /// and none.
    public static var knownPrefixes: [String] {
        let familyPrefixes = BackboneFamilies.all.flatMap(\.tensorPrefixes).filter { !$0.isEmpty }
        return familyPrefixes.map { modelPrefix + $0 } + [modelPrefix] + familyPrefixes + [""]
    }

    /// The tensor of `file` named one of `stems` (a module path and a suffix) under a known prefix, trying each
    /// prefix with every stem before the next prefix.
    public static func find(_ stems: [String], in file: SafeTensorsFile) -> String? {
        for prefix in knownPrefixes {
            if let name = stems.map({ prefix + $0 }).first(where: file.contains) { return name }
        }
        return nil
    }

    /// The module path among `paths` that a saved name refers to: the name without a known prefix, when that
    /// is one of `paths`.
    public static func modulePath(of savedName: String, among paths: some Sequence<String>) -> String? {
        let candidates = Set(paths)
        for prefix in knownPrefixes where savedName.hasPrefix(prefix) {
            let path = String(savedName.dropFirst(prefix.count))
            if candidates.contains(path) { return path }
        }
        return nil
    }

    /// The head's weights inside an adapter file (`base_model.model.classifier.weight`, or PEFT's
    /// `classifier.modules_to_save.default.weight`), or nil when the file holds none: a head tensor is one under
    /// `base_model.model.` that is neither an adapter tensor nor under a backbone's prefix.
    public static func headWeights(in file: SafeTensorsFile) -> WeightSource? {
        // A family whose modules sit directly under the model (LLaMA's `model.layers.…`) adds no prefix here.
        let backbonePrefixes = BackboneFamilies.all.flatMap(\.tensorPrefixes).filter { !$0.isEmpty }.map {
            modelPrefix + $0
        }
        let headNames = file.names.filter { name in
            name.hasPrefix(modelPrefix) && !name.contains("lora_") && !backbonePrefixes.contains { name.hasPrefix($0) }
        }
        guard !headNames.isEmpty else { return nil }
        return HeadWeights(file: file, wrapped: headNames.contains { $0.contains(".modules_to_save.default.") })
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
