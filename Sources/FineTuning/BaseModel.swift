import Foundation
import GGUF
import Models
import Tokenizers

/// A base model as a run finds it: where it is (a Hugging Face directory or a GGUF file), its tokenizer and, for a
/// decoder, its special tokens and chat template. `backbone` builds the network.
public struct BaseModel {
    /// A model directory or a `.gguf` file.
    public let path: String
    public let tokenizer: Tokenizer
    /// BOS, EOS and the chat template: decoders only (nil for encoders).
    public let specials: TokenizerSpecials?
    public var isDecoder: Bool { specials != nil }
    /// The longest sequence the model takes (config.json's `max_position_embeddings`, a GGUF file's
    /// `ARCH.context_length`), when it says.
    public var contextLength: Int?

    /// Resolves `--model`: an encoder or decoder directory, a `.gguf` file, a directory holding one, or a known
    /// alias (fetched on first use).
    public static func resolve(_ spec: String, quiet: Bool = false) throws -> BaseModel {
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: spec, isDirectory: &isDirectory)
        let hasConfig = FileManager.default.fileExists(atPath: (spec as NSString).appendingPathComponent("config.json"))
        let knownDecoder = ModelStore.known.first { $0.alias == spec || $0.directoryName == spec }.map {
            $0.required.contains { $0.hasSuffix(".gguf") }
        }
        if exists && isDirectory.boolValue && hasConfig {
            if try BackboneFamilies.family(of: spec).isDecoder {
                let (tokenizer, specials) = try Tokenizer.huggingFace(directory: spec)
                var base = BaseModel(path: spec, tokenizer: tokenizer, specials: specials)
                let config = FileManager.default.contents(
                    atPath: (spec as NSString).appendingPathComponent("config.json")
                )
                .flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
                base.contextLength = (config?["max_position_embeddings"] as? NSNumber)?.intValue
                return base
            }
            return BaseModel(path: try ModelStore.resolve(spec, quiet: quiet), tokenizer: try Tokenizer(path: spec))
        }
        if exists || knownDecoder == true {
            let path = try ModelStore.resolveDecoder(spec, quiet: quiet)
            let file: GGUFFile
            do { file = try GGUFFile(path: path) } catch { throw ModelError("\(error)") }
            let (tokenizer, specials) = try Tokenizer.gguf(file)
            var base = BaseModel(path: path, tokenizer: tokenizer, specials: specials)
            if let architecture = try? file.string("general.architecture") {
                base.contextLength = try? file.integer(architecture + ".context_length")
            }
            return base
        }
        let directory = try ModelStore.resolve(spec, quiet: quiet)
        return BaseModel(path: directory, tokenizer: try Tokenizer(path: directory))
    }

    public init(path: String, tokenizer: Tokenizer, specials: TokenizerSpecials? = nil) {
        self.path = path
        self.tokenizer = tokenizer
        self.specials = specials
    }

    /// The network; `pooled` as `BackboneFamily.load` takes it.
    public func backbone(pooled: Bool? = nil) throws -> any Backbone {
        try BackboneFamilies.load(path: path, pooled: pooled)
    }

    /// The chat template decoders format conversations with (nil when the model has none Rankwise can read).
    public var chatTemplate: ChatTemplate? {
        specials?.chatTemplate.flatMap { try? ChatTemplate(jinja: $0) }
    }
}
