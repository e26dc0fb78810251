import Foundation
import GGUF

/// A model family Rankwise loads: the config.json `model_type`s it reads and how it builds a backbone from a
/// model directory. A new family is one folder under `Sources/Models` and one line in `BackboneFamilies.all`.
public struct BackboneFamily: Sendable {
    public let name: String
    /// config.json `model_type` values of this family.
    public let modelTypes: [String]
    /// Prefixes of the backbone's tensors inside Hugging Face task models and PEFT files (`bert.`), which adapter
    /// readers strip to find a module's path.
    public let tensorPrefixes: [String]
    /// The block modules' paths after the block index and their short kinds, in table order
    /// (`attention.self.query` → `query`): how a report labels an older run that stored no module map.
    public let moduleKinds: [(path: String, kind: String)]
    /// Builds the backbone from a model directory. `pooled`: true when a head needs one vector per sequence
    /// (an error if the checkpoint cannot give it), false to skip it, nil to load it when present.
    public let load: @Sendable (_ directory: String, _ pooled: Bool?) throws -> any Backbone
    /// True for decoders (a causal language model: next-token training, generation, a chat template).
    public let isDecoder: Bool
    /// GGUF `general.architecture` values of this family and how it builds a backbone from such a file.
    public let ggufArchitectures: [String]
    public let loadGGUF: (@Sendable (GGUFFile) throws -> any Backbone)?

    public init(
        name: String, modelTypes: [String], tensorPrefixes: [String], moduleKinds: [(path: String, kind: String)],
        isDecoder: Bool = false, ggufArchitectures: [String] = [],
        loadGGUF: (@Sendable (GGUFFile) throws -> any Backbone)? = nil,
        load: @escaping @Sendable (String, Bool?) throws -> any Backbone
    ) {
        self.name = name
        self.modelTypes = modelTypes
        self.tensorPrefixes = tensorPrefixes
        self.moduleKinds = moduleKinds
        self.isDecoder = isDecoder
        self.ggufArchitectures = ggufArchitectures
        self.loadGGUF = loadGGUF
        self.load = load
    }
}

public enum BackboneFamilies {
    /// Every family, the first the one a config.json without `model_type` is read as.
    public static let all: [BackboneFamily] = [BertModel.family, LlamaModel.family]

    /// The family of a model directory, from its config.json's `model_type`.
    public static func family(of directory: String) throws -> BackboneFamily {
        let file = (directory as NSString).appendingPathComponent("config.json")
        guard let data = FileManager.default.contents(atPath: file) else {
            throw ModelError("\(file): cannot read config.json")
        }
        guard let config = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ModelError("\(file): not a JSON object")
        }
        guard let modelType = config["model_type"] as? String else { return all[0] }
        guard let family = all.first(where: { $0.modelTypes.contains(modelType) }) else {
            let known = all.flatMap(\.modelTypes).joined(separator: ", ")
            throw ModelError("\(file): model_type \"\(modelType)\" is not a family Rankwise loads (\(known))")
        }
        return family
    }

    /// The family of a GGUF file, from its `general.architecture`.
    public static func family(of file: GGUFFile) throws -> BackboneFamily {
        let architecture: String
        do { architecture = try file.string("general.architecture") } catch { throw ModelError("\(error)") }
        guard let family = all.first(where: { $0.ggufArchitectures.contains(architecture) && $0.loadGGUF != nil })
        else {
            let known = all.flatMap(\.ggufArchitectures).joined(separator: ", ")
            throw ModelError(
                "\(file.path): general.architecture \"\(architecture)\" is not a family Rankwise loads (\(known))")
        }
        return family
    }

    /// Loads the backbone of a model directory or a GGUF file, whichever family it is.
    public static func load(path: String, pooled: Bool? = nil) throws -> any Backbone {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ModelError("\(path): no such model file or directory")
        }
        if isDirectory.boolValue { return try load(directory: path, pooled: pooled) }
        let file: GGUFFile
        do { file = try GGUFFile(path: path) } catch { throw ModelError("\(error)") }
        if pooled == true {
            throw ModelError("\(path): a GGUF decoder has no pooled output for a head that needs one vector a sequence")
        }
        return try family(of: file).loadGGUF!(file)
    }

    /// Loads the backbone of a model directory, whichever family it is.
    public static func load(directory: String, pooled: Bool? = nil) throws -> any Backbone {
        try family(of: directory).load(directory, pooled)
    }
}
