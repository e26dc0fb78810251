import Foundation
import RankwiseCore

/// What a backbone's forward pass leaves for the task head. The pointers stay valid until the next forward.
public struct BackboneOutput {
    public let batch: Int
    public let seq: Int
    public let hidden: Int
    /// Where each sequence's rows are in `lastHidden`.
    public let layout: SequenceLayout
    /// `[layout.tokens, hidden]` (`[batch, seq, hidden]` when padded)
    public let lastHidden: UnsafeMutablePointer<Float>
    /// `[batch, hidden]`: one vector per sequence (BERT's tanh pooler on the first token), nil when the backbone has
    /// none.
    public let pooled: UnsafeMutablePointer<Float>?
    /// The batch's `TokenBatch.exampleKeys` (a head's dropout keys its rows by them).
    public let exampleKeys: [UInt64]

    public init(
        batch: Int, seq: Int, hidden: Int, layout: SequenceLayout, lastHidden: UnsafeMutablePointer<Float>,
        pooled: UnsafeMutablePointer<Float>?, exampleKeys: [UInt64]? = nil
    ) {
        self.exampleKeys = exampleKeys ?? (0..<batch).map { UInt64($0) }
        self.batch = batch
        self.seq = seq
        self.hidden = hidden
        self.layout = layout
        self.lastHidden = lastHidden
        self.pooled = pooled
    }
}

/// How a backbone's tensors are named in Hugging Face and PEFT files.
public struct HuggingFaceNames: Sendable, Equatable {
    /// The backbone's prefix inside a task model (`bert.`): PEFT saves `base_model.model.` + prefix + path.
    public let prefix: String
    /// The model class stem (`Bert`): a merged classifier is `BertForSequenceClassification`.
    public let classStem: String
    /// `model_type` in config.json.
    public let modelType: String

    public init(prefix: String, classStem: String, modelType: String) {
        self.prefix = prefix
        self.classStem = classStem
        self.modelType = modelType
    }
}

/// A pretrained transformer that turns token batches into hidden states: the part of the model that
/// methods adapt. Methods, the trainer, the formats and the reports see a model only through this
/// protocol (and a task head), never a model family. Forward stores what backward needs; backward
/// accumulates into the gradients of trainable parameters.
public protocol Backbone: AnyObject {
    /// Every parameter: the backbone's, and those of adapters and heads attached to it.
    var params: ParameterSet { get }
    /// Width of the hidden states.
    var hiddenSize: Int { get }
    /// The longest sequence the position encoding allows.
    var maxPositions: Int { get }
    /// Token ids run from 0 to this count (exclusive).
    var vocabularySize: Int { get }
    /// Number of transformer blocks.
    var layerCount: Int { get }
    /// True when `forward` returns one vector per sequence (`pooled`), which a classification head reads.
    var hasPooledOutput: Bool { get }
    /// Dropout Hugging Face applies to the pooled vector before a task head on this model.
    var headDropout: Float { get }
    /// The linear layers adapters may wrap, in model order; each knows its block (`layer`) and role (`kind`).
    var adaptableLinears: [Linear] { get }
    /// The module kinds of `adaptableLinears` in the order tables show them.
    var moduleKinds: [String] { get }
    /// PEFT `target_modules` when the user gives none: every adaptable linear.
    var defaultTargetModules: [String] { get }
    /// True when a token attends only to the tokens before it (decoders).
    var isCausal: Bool { get }
    /// Hugging Face and PEFT naming.
    var huggingFace: HuggingFaceNames { get }
    /// The model's config.json as Hugging Face writes it (for a merged model directory).
    var configJSON: [String: Any] { get }
    /// The sequences of the batch being run (set by `forward`, kept for backward), for adapters that work
    /// per sequence (Dynamic LoRA's input gate).
    var layout: SequenceLayout? { get }
    /// When set, each forward starts a new batch in it and backward fills it: per-example gradient norms.
    var perExample: PerExampleNorms? { get set }
    /// Checks a batch against the model (ids in the vocabulary, lengths within the positions); errors name row and
    /// position.
    func validate(_ batch: TokenBatch) throws
    /// Runs the model; with `training`, dropout masks come from `seed` and backward's inputs are kept.
    @discardableResult
    func forward(_ batch: TokenBatch, training: Bool, seed: UInt64) throws -> BackboneOutput
    /// Back-propagates gradients of the last forward's outputs (either may be nil). `inputGrad`, when given,
    /// receives the gradient with respect to the input embeddings.
    func backward(
        dLastHidden: UnsafePointer<Float>?, dPooled: UnsafePointer<Float>?, inputGrad: UnsafeMutablePointer<Float>?)
        throws
}

extension Backbone {
    /// Runs the model for inference.
    @discardableResult
    public func forward(_ batch: TokenBatch) throws -> BackboneOutput {
        try forward(batch, training: false, seed: 0)
    }

    public func backward(dLastHidden: UnsafePointer<Float>?, dPooled: UnsafePointer<Float>?) throws {
        try backward(dLastHidden: dLastHidden, dPooled: dPooled, inputGrad: nil)
    }

    /// The adaptable linear at `path`, if any.
    public func adaptableLinear(_ path: String) -> Linear? {
        adaptableLinears.first { $0.path == path }
    }
}

/// A backbone that predicts tokens: its last hidden states (after the final norm) times `outputProjection` are the
/// next-token logits. The causal-LM head computes its loss through it.
public protocol LanguageModelBackbone: Backbone {
    /// `[vocabularySize, hiddenSize]`: `lm_head.weight`, or the embedding when tied.
    var outputProjection: Param { get }
}

/// A backbone llama.cpp runs: its GGUF architecture, and the GGUF tensor of each adaptable linear with the row
/// order GGUF stores it in, so that adapters can be written for llama.cpp.
public protocol GGUFNamedBackbone: Backbone {
    /// `general.architecture` (`llama`).
    var ggufArchitecture: String { get }
    /// The GGUF tensor of the linear at `path` (`model.layers.3.self_attn.q_proj` → `blk.3.attn_q.weight`) and, when
    /// GGUF interleaves its rows' rotary halves (query and key projections), the number of heads to permute.
    func ggufTensor(forLinear path: String) -> (name: String, interleavedHeads: Int?)?
    /// The same for any parameter (`model.norm.weight` → `output_norm.weight`); nil when GGUF has no such tensor.
    func ggufTensor(forParameter name: String) -> (name: String, interleavedHeads: Int?)?
}

extension GGUFNamedBackbone {
    public func ggufTensor(forLinear path: String) -> (name: String, interleavedHeads: Int?)? {
        ggufTensor(forParameter: path + ".weight")
    }
}
