import Foundation

/// The fields of a Hugging Face BERT-family `config.json` that the encoder needs.
public struct BertConfig: Sendable, Equatable {
    public var hiddenSize: Int
    public var numHeads: Int
    public var numLayers: Int
    public var intermediateSize: Int
    public var hiddenAct: String
    public var layerNormEps: Float
    public var vocabSize: Int
    public var maxPositions: Int
    public var typeVocabSize: Int
    public var hiddenDropout: Float
    public var attentionDropout: Float
    public var padTokenId: Int

    public init(
        hiddenSize: Int, numHeads: Int, numLayers: Int, intermediateSize: Int, hiddenAct: String = "gelu",
        layerNormEps: Float = 1e-12, vocabSize: Int, maxPositions: Int = 512, typeVocabSize: Int = 2,
        hiddenDropout: Float = 0.1, attentionDropout: Float = 0.1, padTokenId: Int = 0
    ) {
        self.hiddenSize = hiddenSize
        self.numHeads = numHeads
        self.numLayers = numLayers
        self.intermediateSize = intermediateSize
        self.hiddenAct = hiddenAct
        self.layerNormEps = layerNormEps
        self.vocabSize = vocabSize
        self.maxPositions = maxPositions
        self.typeVocabSize = typeVocabSize
        self.hiddenDropout = hiddenDropout
        self.attentionDropout = attentionDropout
        self.padTokenId = padTokenId
    }

    public var headDim: Int { hiddenSize / numHeads }

    /// config.json `model_type`s whose checkpoints have BERT's layout.
    public static let modelTypes = ["bert", "roberta", "xlm-roberta", "camembert", "distilbert_as_bert"]

    /// Activations the encoder implements.
    public static let supportedActivations: Set<String> = ["gelu", "relu"]

    /// Reads `config.json` (a file or a model directory holding one).
    public init(path: String) throws {
        var file = path
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            file = (path as NSString).appendingPathComponent("config.json")
        }
        guard let data = FileManager.default.contents(atPath: file) else {
            throw ModelError("\(file): cannot read config.json")
        }
        guard let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ModelError("\(file): not a JSON object")
        }
        try self.init(json: obj, file: file)
    }

    public init(json o: [String: Any], file: String = "config.json") throws {
        func int(_ k: String, _ def: Int? = nil) throws -> Int {
            if let n = o[k] as? NSNumber, n.doubleValue == n.doubleValue.rounded(),
                n.intValue > 0 || (k == "pad_token_id" && n.intValue >= 0)
            {
                return n.intValue
            }
            if o[k] == nil, let def { return def }
            throw ModelError("\(file): \"\(k)\" is \(o[k] == nil ? "missing" : "not a positive integer: \(o[k]!)")")
        }
        func float(_ k: String, _ def: Float) throws -> Float {
            guard let v = o[k] else { return def }
            guard let n = v as? NSNumber else { throw ModelError("\(file): \"\(k)\" is not a number: \(v)") }
            return n.floatValue
        }
        if let t = o["model_type"] as? String, !Self.modelTypes.contains(t) {
            throw ModelError("\(file): model_type \"\(t)\" is not a BERT-family encoder")
        }
        if let p = o["position_embedding_type"] as? String, p != "absolute" {
            throw ModelError("\(file): position_embedding_type \"\(p)\" is not supported (only \"absolute\")")
        }
        let act = o["hidden_act"] as? String ?? "gelu"
        guard Self.supportedActivations.contains(act) else {
            throw ModelError(
                "\(file): hidden_act \"\(act)\" is not supported (supported: "
                    + "\(Self.supportedActivations.sorted().joined(separator: ", ")))"
            )
        }
        self.init(
            hiddenSize: try int("hidden_size"), numHeads: try int("num_attention_heads"),
            numLayers: try int("num_hidden_layers"),
            intermediateSize: try int("intermediate_size"), hiddenAct: act,
            layerNormEps: try float("layer_norm_eps", 1e-12),
            vocabSize: try int("vocab_size"), maxPositions: try int("max_position_embeddings", 512),
            typeVocabSize: try int("type_vocab_size", 2), hiddenDropout: try float("hidden_dropout_prob", 0.1),
            attentionDropout: try float("attention_probs_dropout_prob", 0.1), padTokenId: try int("pad_token_id", 0))
        guard hiddenSize % numHeads == 0 else {
            throw ModelError("\(file): hidden_size \(hiddenSize) is not a multiple of num_attention_heads \(numHeads)")
        }
    }

    /// JSON for writing a config back (merge, tiny test models).
    public var json: [String: Any] {
        [
            "architectures": ["BertModel"], "model_type": "bert", "hidden_size": hiddenSize,
            "num_attention_heads": numHeads,
            "num_hidden_layers": numLayers, "intermediate_size": intermediateSize, "hidden_act": hiddenAct,
            "layer_norm_eps": Double(layerNormEps), "vocab_size": vocabSize, "max_position_embeddings": maxPositions,
            "type_vocab_size": typeVocabSize, "hidden_dropout_prob": Double(hiddenDropout),
            "attention_probs_dropout_prob": Double(attentionDropout), "pad_token_id": padTokenId,
            "position_embedding_type": "absolute",
        ]
    }
}
