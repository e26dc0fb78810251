import Foundation
import GGUF

/// The shape of a LLaMA-family decoder, from a GGUF file's `llama.*` metadata or a Hugging Face config.json.
public struct LlamaConfig: Sendable, Equatable {
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numLayers: Int
    public var numHeads: Int
    public var numKeyValueHeads: Int
    public var ropeTheta: Double
    public var rmsNormEps: Float
    public var maxPositions: Int
    /// The output projection is the token embedding (no `lm_head` / `output.weight` of its own).
    public var tieWordEmbeddings: Bool

    public var headDim: Int { hiddenSize / numHeads }

    public init(
        vocabSize: Int, hiddenSize: Int, intermediateSize: Int, numLayers: Int, numHeads: Int, numKeyValueHeads: Int,
        ropeTheta: Double = 10_000, rmsNormEps: Float = 1e-5, maxPositions: Int = 2048, tieWordEmbeddings: Bool = true
    ) {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numLayers = numLayers
        self.numHeads = numHeads
        self.numKeyValueHeads = numKeyValueHeads
        self.ropeTheta = ropeTheta
        self.rmsNormEps = rmsNormEps
        self.maxPositions = maxPositions
        self.tieWordEmbeddings = tieWordEmbeddings
    }

    /// Model types this family loads from config.json.
    public static let modelTypes = ["llama", "mistral", "smollm", "smollm2"]

    /// The shape a GGUF file of architecture `llama` declares; the vocabulary size comes from the token list when
    /// `llama.vocab_size` is absent, and the output is tied when the file has no `output.weight`.
    public init(gguf file: GGUFFile) throws {
        let architecture = try file.string("general.architecture")
        guard architecture == "llama" else {
            throw ModelError("\(file.path): architecture \"\(architecture)\" is not a LLaMA-family decoder (llama)")
        }
        let vocabulary =
            file.metadata["llama.vocab_size"] != nil
            ? try file.integer("llama.vocab_size") : try file.strings("tokenizer.ggml.tokens").count
        let heads = try file.integer("llama.attention.head_count")
        self.init(
            vocabSize: vocabulary, hiddenSize: try file.integer("llama.embedding_length"),
            intermediateSize: try file.integer("llama.feed_forward_length"),
            numLayers: try file.integer("llama.block_count"), numHeads: heads,
            numKeyValueHeads: file.metadata["llama.attention.head_count_kv"] != nil
                ? try file.integer("llama.attention.head_count_kv") : heads,
            ropeTheta: file.metadata["llama.rope.freq_base"] != nil ? try file.number("llama.rope.freq_base") : 10_000,
            rmsNormEps: Float(try file.number("llama.attention.layer_norm_rms_epsilon")),
            maxPositions: try file.integer("llama.context_length"),
            tieWordEmbeddings: !file.tensors.contains { $0.name == "output.weight" })
        try validate(file.path)
    }

    /// The shape a Hugging Face config.json declares.
    public init(json: [String: Any], path: String) throws {
        func integer(_ key: String) throws -> Int {
            guard let value = (json[key] as? NSNumber)?.intValue else {
                throw ModelError("\(path): config.json has no integer \"\(key)\"")
            }
            return value
        }
        let heads = try integer("num_attention_heads")
        // transformers 5 writes the rotary base under rope_parameters; a scaled RoPE (Llama 3.1's "llama3", YaRN,
        // linear) changes the frequencies and is refused rather than run wrong.
        let rope = json["rope_parameters"] as? [String: Any] ?? json["rope_scaling"] as? [String: Any] ?? [:]
        if let kind = (rope["rope_type"] ?? rope["type"]) as? String, kind != "default" {
            throw ModelError("\(path): rope_type \"\(kind)\" (scaled rotary positions) is not supported yet")
        }
        let ropeTheta = (json["rope_theta"] as? NSNumber ?? rope["rope_theta"] as? NSNumber)?.doubleValue ?? 10_000
        let hidden = try integer("hidden_size")
        if let headDim = (json["head_dim"] as? NSNumber)?.intValue,
            headDim.multipliedReportingOverflow(by: heads) != (hidden, false)
        {
            throw ModelError(
                "\(path): head_dim \(headDim) x \(heads) heads differs from hidden_size \(hidden) (not supported yet)")
        }
        for flag in ["attention_bias", "mlp_bias"] where json[flag] as? Bool == true {
            throw ModelError("\(path): \(flag) true is not supported yet (LLaMA's linears have no bias)")
        }
        self.init(
            vocabSize: try integer("vocab_size"), hiddenSize: hidden,
            intermediateSize: try integer("intermediate_size"), numLayers: try integer("num_hidden_layers"),
            numHeads: heads, numKeyValueHeads: (json["num_key_value_heads"] as? NSNumber)?.intValue ?? heads,
            ropeTheta: ropeTheta,
            rmsNormEps: (json["rms_norm_eps"] as? NSNumber)?.floatValue ?? 1e-6,
            maxPositions: (json["max_position_embeddings"] as? NSNumber)?.intValue ?? 2048,
            tieWordEmbeddings: (json["tie_word_embeddings"] as? Bool) ?? false)
        try validate(path)
    }

    func validate(_ path: String) throws {
        let sizes = [vocabSize, hiddenSize, intermediateSize, numLayers, numHeads, numKeyValueHeads, maxPositions]
        guard sizes.allSatisfy({ $0 > 0 && $0 < 1 << 24 }) else {
            throw ModelError("\(path): sizes out of range: \(self)")
        }
        guard hiddenSize % numHeads == 0, headDim % 2 == 0, numHeads % numKeyValueHeads == 0 else {
            throw ModelError(
                "\(path): \(numHeads) heads over width \(hiddenSize) with \(numKeyValueHeads) key/value heads do not "
                    + "divide evenly (head width must be even)")
        }
        guard ropeTheta > 0, rmsNormEps > 0 else { throw ModelError("\(path): rope base and RMS epsilon must be > 0") }
        guard maxPositions <= 1 << 20 else {
            throw ModelError("\(path): context length \(maxPositions) is beyond the 1,048,576 Rankwise supports")
        }
    }

    /// The config.json Hugging Face writes for this shape.
    public var json: [String: Any] {
        [
            "model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": vocabSize,
            "hidden_size": hiddenSize, "intermediate_size": intermediateSize, "num_hidden_layers": numLayers,
            "num_attention_heads": numHeads, "num_key_value_heads": numKeyValueHeads, "rope_theta": ropeTheta,
            "rms_norm_eps": rmsNormEps, "max_position_embeddings": maxPositions,
            "tie_word_embeddings": tieWordEmbeddings, "hidden_act": "silu",
        ]
    }
}
