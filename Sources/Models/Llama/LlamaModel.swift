import Foundation
import GGUF
import RankwiseCore

/// One decoder block's parameters (Hugging Face names under `model.layers.N.`).
public struct LlamaLayerParams {
    public let query, key, value, attentionOutput, gate, up, down: Linear
    public let inputNorm, postAttentionNorm: Param
    public var linears: [Linear] { [query, key, value, attentionOutput, gate, up, down] }
}

/// A LLaMA-family decoder (token embedding, pre-norm blocks of grouped-query causal attention with rotary
/// positions and a SwiGLU MLP, final RMS norm) with a hand-written backward in the style of llm.c: `forward`
/// keeps what `backward` needs in one workspace. `logits` applies the output projection (tied to the embedding
/// when the model has no `lm_head`).
public final class LlamaModel: LanguageModelBackbone, GGUFNamedBackbone, @unchecked Sendable {
    public let config: LlamaConfig
    public let params = ParameterSet()
    public let embedding: Param
    public let layers: [LlamaLayerParams]
    public let finalNorm: Param
    /// The output projection `[vocab, hidden]`: `lm_head.weight`, or the embedding when tied.
    public let outputProjection: Param
    /// Rotation tables for the positions used so far (grown on demand up to the context length).
    private(set) var rotary: RotaryEmbedding

    private let activationScratch = Scratch()
    private let gradientScratch = Scratch()
    /// Each core's attention matrices (`Attention.recomputeScratchCount`): no layer keeps its probabilities.
    private let attentionScratch = Scratch()
    /// Buffers of `decode` (KV-cache inference), kept between calls.
    let decodingScratch = DecodingScratch()
    /// The dropout keys of the last training forward's token rows.
    private let rowKeys = RowKeyScratch()
    /// The GGUF file's quantised blocks of each linear (by path) and of the output projection ("output"), which
    /// `decode` multiplies one token at a time instead of the float32 weights (`useQuantizedDecoding`).
    public internal(set) var quantizedWeights: [String: QuantizedMatrix] = [:]
    /// Decode single tokens from the quantised blocks when the file has them (false: float32 weights).
    public var useQuantizedDecoding = true
    private var state: State?
    public private(set) var layout: SequenceLayout?
    public var perExample: PerExampleNorms? {
        didSet { for linear in adaptableLinears { linear.adapter?.perExample = perExample } }
    }

    /// Each block's linear layers: path below `model.layers.N.` and the kind tables show.
    static let modules: [(path: String, kind: String)] = [
        ("self_attn.q_proj", "q_proj"), ("self_attn.k_proj", "k_proj"), ("self_attn.v_proj", "v_proj"),
        ("self_attn.o_proj", "o_proj"), ("mlp.gate_proj", "gate_proj"), ("mlp.up_proj", "up_proj"),
        ("mlp.down_proj", "down_proj"),
    ]

    public init(config: LlamaConfig, weights: WeightSource) throws {
        self.config = config
        let hidden = config.hiddenSize
        let inner = config.intermediateSize
        let keyValueWidth = config.numKeyValueHeads * config.headDim
        let parameters = params
        func parameter(_ name: String, _ shape: [Int], role: ParamRole = .weight) throws -> Param {
            let created = Param(name: name, value: try weights.tensor(name, shape: shape, role: role), role: role)
            parameters.add(created)
            return created
        }
        embedding = try parameter("model.embed_tokens.weight", [config.vocabSize, hidden])
        var blocks: [LlamaLayerParams] = []
        for layer in 0..<config.numLayers {
            let prefix = "model.layers.\(layer)."
            func linear(_ module: Int, _ out: Int, _ inputs: Int) throws -> Linear {
                let (path, kind) = Self.modules[module]
                let weight = try parameter(prefix + path + ".weight", [out, inputs])
                return Linear(path: prefix + path, weight: weight, bias: nil, layer: layer, kind: kind)
            }
            blocks.append(
                LlamaLayerParams(
                    query: try linear(0, hidden, hidden), key: try linear(1, keyValueWidth, hidden),
                    value: try linear(2, keyValueWidth, hidden), attentionOutput: try linear(3, hidden, hidden),
                    gate: try linear(4, inner, hidden), up: try linear(5, inner, hidden),
                    down: try linear(6, hidden, inner),
                    inputNorm: try parameter(prefix + "input_layernorm.weight", [hidden], role: .normScale),
                    postAttentionNorm: try parameter(
                        prefix + "post_attention_layernorm.weight", [hidden], role: .normScale)))
        }
        layers = blocks
        finalNorm = try parameter("model.norm.weight", [hidden], role: .normScale)
        outputProjection =
            config.tieWordEmbeddings ? embedding : try parameter("lm_head.weight", [config.vocabSize, hidden])
        rotary = RotaryEmbedding(
            headDim: config.headDim, base: config.ropeTheta, maxPositions: min(config.maxPositions, 4096))
    }

    /// Loads a GGUF file of architecture `llama` (weights dequantised to float32).
    public static func load(gguf path: String) throws -> LlamaModel {
        let file: GGUFFile
        do { file = try GGUFFile(path: path) } catch { throw ModelError("\(error)") }
        return try load(gguf: file)
    }

    /// The same from an open GGUF file (whose tokenizer the caller may read too).
    public static func load(gguf file: GGUFFile) throws -> LlamaModel {
        let config = try LlamaConfig(gguf: file)
        let model = try LlamaModel(config: config, weights: GGUFWeights(file: file, config: config))
        try model.keepQuantizedWeights(of: file)
        return model
    }

    /// Loads a Hugging Face LLaMA-family directory: config.json and safetensors weights (one file or shards) under
    /// `LlamaForCausalLM`'s names.
    public static func load(directory: String) throws -> LlamaModel {
        let configPath = (directory as NSString).appendingPathComponent("config.json")
        guard let data = FileManager.default.contents(atPath: configPath) else {
            throw ModelError("\(configPath): cannot read config.json")
        }
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ModelError("\(configPath): not a JSON object")
        }
        let config = try LlamaConfig(json: json, path: configPath)
        let weights = try DirectoryWeights(directory: directory)
        guard weights.has("model.embed_tokens.weight") else {
            throw ModelError(
                "\(directory): no tensor \"model.embed_tokens.weight\": not a LlamaForCausalLM checkpoint")
        }
        return try LlamaModel(config: config, weights: weights)
    }

    /// The LLaMA family: decoders with LLaMA's layout (LLaMA, Mistral without sliding windows, SmolLM).
    public static let family = BackboneFamily(
        name: "llama", modelTypes: LlamaConfig.modelTypes, tensorPrefixes: [""], moduleKinds: modules, isDecoder: true,
        ggufArchitectures: ["llama"], loadGGUF: { try LlamaModel.load(gguf: $0) }
    ) { directory, pooled in
        if pooled == true {
            throw ModelError("\(directory): a decoder has no pooled output for a head that needs one vector a sequence")
        }
        return try LlamaModel.load(directory: directory)
    }

    public var ggufArchitecture: String { "llama" }

    public func ggufTensor(forParameter name: String) -> (name: String, interleavedHeads: Int?)? {
        guard let ggufName = GGUFWeights.ggufName(name) else { return nil }
        let heads =
            name.hasSuffix("q_proj.weight")
            ? config.numHeads : name.hasSuffix("k_proj.weight") ? config.numKeyValueHeads : nil
        return (ggufName, heads)
    }

    /// Keeps the blocks of every quantised linear of `file` (and of the output projection) for `decode`.
    public func keepQuantizedWeights(of file: GGUFFile) throws {
        for linear in adaptableLinears {
            guard let name = GGUFWeights.ggufName(linear.path + ".weight") else { continue }
            let heads =
                linear.path.hasSuffix("q_proj")
                ? config.numHeads
                : linear.path.hasSuffix("k_proj") ? config.numKeyValueHeads : nil
            quantizedWeights[linear.path] = try QuantizedMatrix(file: file, tensor: name, headsToUnpermute: heads)
        }
        let output = config.tieWordEmbeddings ? "token_embd.weight" : "output.weight"
        quantizedWeights["output"] = try QuantizedMatrix(file: file, tensor: output)
    }

    /// Makes the rotation tables cover positions `0..<count` (at most the context length, checked by the callers).
    func ensurePositions(_ count: Int) {
        guard count > rotary.maxPositions else { return }
        rotary = RotaryEmbedding(
            headDim: config.headDim, base: config.ropeTheta,
            maxPositions: min(config.maxPositions, max(count, 2 * rotary.maxPositions)))
    }

    // MARK: Backbone

    public var hiddenSize: Int { config.hiddenSize }
    public var maxPositions: Int { config.maxPositions }
    public var vocabularySize: Int { config.vocabSize }
    public var layerCount: Int { config.numLayers }
    public var hasPooledOutput: Bool { false }
    public var headDropout: Float { 0 }
    public var adaptableLinears: [Linear] { layers.flatMap(\.linears) }
    public var moduleKinds: [String] { Self.modules.map(\.kind) }
    /// PEFT's LLaMA default is q_proj and v_proj; Rankwise adapts every block linear, as the papers do.
    public var defaultTargetModules: [String] { Self.modules.map(\.kind) }
    public var isCausal: Bool { true }
    public var huggingFace: HuggingFaceNames { HuggingFaceNames(prefix: "", classStem: "Llama", modelType: "llama") }
    public var configJSON: [String: Any] { config.json }

    // MARK: Workspace

    struct State {
        var layout = SequenceLayout.packed(lengths: [])
        var tokens = 0
        var ids: [Int32] = []
        var positions: [Int32] = []
        var layer: [LayerOffsets] = []
        var finalInput = 0, finalRstd = 0, output = 0
        var total = 0
    }

    /// Offsets of one block's saved activations: its input (the residual stream), the normed input and its rstd,
    /// rotated queries and keys, values, context (attention probabilities are recomputed in backward), the stream
    /// after attention, the normed stream and its rstd, gate and up projections and their SwiGLU product.
    struct LayerOffsets {
        var input = 0, normed = 0, rstd = 0, query = 0, key = 0, value = 0, context = 0
        var afterAttention = 0, normedAfterAttention = 0, rstdAfterAttention = 0, gate = 0, up = 0, product = 0
    }

    private func plan(_ layout: SequenceLayout) -> State { Self.plan(config, layout) }

    private static func plan(_ config: LlamaConfig, _ layout: SequenceLayout) -> State {
        var state = State()
        state.layout = layout
        state.tokens = layout.tokens
        let tokens = layout.tokens
        let hidden = config.hiddenSize
        let inner = config.intermediateSize
        let keyValueWidth = config.numKeyValueHeads * config.headDim
        var workspaceLayout = WorkspaceLayout()
        func take(_ count: Int) -> Int { workspaceLayout.take(count) }
        for _ in 0..<config.numLayers {
            var at = LayerOffsets()
            at.input = take(tokens * hidden)
            at.normed = take(tokens * hidden)
            at.rstd = take(tokens)
            at.query = take(tokens * hidden)
            at.key = take(tokens * keyValueWidth)
            at.value = take(tokens * keyValueWidth)
            at.context = take(tokens * hidden)
            at.afterAttention = take(tokens * hidden)
            at.normedAfterAttention = take(tokens * hidden)
            at.rstdAfterAttention = take(tokens)
            at.gate = take(tokens * inner)
            at.up = take(tokens * inner)
            at.product = take(tokens * inner)
            state.layer.append(at)
        }
        state.finalInput = take(tokens * hidden)
        state.finalRstd = take(tokens)
        state.output = take(tokens * hidden)
        state.total = workspaceLayout.total
        return state
    }

    // MARK: Forward

    /// Checks ids and lengths; the error names the row and position.
    public func validate(_ batch: TokenBatch) throws {
        let layout = batch.layout
        guard batch.ids.count == layout.tokens, layout.count == batch.batch else {
            throw ModelError(
                "input: \(batch.ids.count) ids for \(layout.tokens) tokens of \(batch.batch) sequences")
        }
        guard layout.maxLength <= config.maxPositions else {
            throw ModelError(
                "input: sequence length \(layout.maxLength) exceeds the context length \(config.maxPositions)")
        }
        for row in 0..<layout.count {
            for position in 0..<layout.lengths[row] {
                let id = batch.ids[layout.starts[row] + position]
                guard id >= 0 && Int(id) < config.vocabSize else {
                    throw ModelError(
                        "input: token id \(id) at row \(row), position \(position) is outside the vocabulary (size "
                            + "\(config.vocabSize))")
                }
            }
        }
    }

    /// Runs the decoder over packed (or padded) sequences, each attending causally within itself; positions restart
    /// at 0 in every sequence. Dropout: none (LLaMA has none).
    @discardableResult
    public func forward(_ batch: TokenBatch, training: Bool, seed: UInt64) throws -> BackboneOutput {
        try validate(batch)
        ensurePositions(batch.layout.maxLength)
        layout = batch.layout
        perExample?.reset(layout: batch.layout)
        var state = plan(batch.layout)
        state.ids = batch.ids
        state.positions = [Int32](repeating: 0, count: state.tokens)
        for row in 0..<state.layout.count {
            for position in 0..<state.layout.lengths[row] {
                state.positions[state.layout.starts[row] + position] = Int32(position)
            }
        }
        let workspace = activationScratch.get(state.total)
        let attention = attentionScratch.get(
            Attention.recomputeScratchCount(layout: state.layout, heads: config.numHeads))
        let tokens = state.tokens
        let hidden = config.hiddenSize
        let inner = config.intermediateSize
        var seedCounter: UInt64 = 0
        func nextSeed() -> UInt64 {
            seedCounter += 1
            return seed &* 0x9E37_79B9_7F4A_7C15 &+ seedCounter
        }
        // Each token's dropout masks (adapters' input dropout) keyed by its example and position.
        let keys = training ? rowKeys.set(DropoutKeys.tokenRows(state.layout, exampleKeys: batch.exampleKeys)) : nil
        let firstInput = state.layer.first.map { workspace + $0.input } ?? workspace + state.finalInput
        batch.ids.withUnsafeBufferPointer { ids in
            Ops.embeddingForward(
                ids: ids.baseAddress!, table: embedding.value.data, y: firstInput, n: tokens, d: hidden)
        }
        for (index, block) in layers.enumerated() {
            let at = state.layer[index]
            let stream = workspace + at.input
            Profiler.section("rms norm") {
                Ops.rmsNormForward(
                    x: stream, weight: block.inputNorm.value.data, y: workspace + at.normed, rstd: workspace + at.rstd,
                    n: tokens, d: hidden, eps: config.rmsNormEps)
            }
            Profiler.section("q/k/v_proj") {
                block.query.forward(
                    workspace + at.normed, workspace + at.query, n: tokens, training: training, seed: nextSeed(),
                    rowKeys: keys)
                block.key.forward(
                    workspace + at.normed, workspace + at.key, n: tokens, training: training, seed: nextSeed(),
                    rowKeys: keys)
                block.value.forward(
                    workspace + at.normed, workspace + at.value, n: tokens, training: training, seed: nextSeed(),
                    rowKeys: keys)
            }
            Profiler.section("rotary") {
                state.positions.withUnsafeBufferPointer { positions in
                    rotary.apply(
                        workspace + at.query, positions: positions.baseAddress!, rows: tokens, heads: config.numHeads)
                    rotary.apply(
                        workspace + at.key, positions: positions.baseAddress!, rows: tokens,
                        heads: config.numKeyValueHeads)
                }
            }
            Profiler.section("attention") {
                Attention.forwardRecomputing(
                    q: workspace + at.query, k: workspace + at.key, v: workspace + at.value, layout: state.layout,
                    ctx: workspace + at.context, scratch: attention, heads: config.numHeads, headDim: config.headDim,
                    kvHeads: config.numKeyValueHeads, causal: true)
            }
            let afterAttention = workspace + at.afterAttention
            Profiler.section("o_proj") {
                block.attentionOutput.forward(
                    workspace + at.context, afterAttention, n: tokens, training: training, seed: nextSeed(),
                    rowKeys: keys)
            }
            Ops.add(afterAttention, stream, afterAttention, count: tokens * hidden)
            Profiler.section("rms norm") {
                Ops.rmsNormForward(
                    x: afterAttention, weight: block.postAttentionNorm.value.data,
                    y: workspace + at.normedAfterAttention,
                    rstd: workspace + at.rstdAfterAttention, n: tokens, d: hidden, eps: config.rmsNormEps)
            }
            Profiler.section("gate/up_proj") {
                block.gate.forward(
                    workspace + at.normedAfterAttention, workspace + at.gate, n: tokens, training: training,
                    seed: nextSeed(), rowKeys: keys)
                block.up.forward(
                    workspace + at.normedAfterAttention, workspace + at.up, n: tokens, training: training,
                    seed: nextSeed(), rowKeys: keys)
            }
            Profiler.section("swiglu") {
                Ops.swigluForward(
                    gate: workspace + at.gate, up: workspace + at.up, y: workspace + at.product, count: tokens * inner)
            }
            let next =
                index + 1 < layers.count ? workspace + state.layer[index + 1].input : workspace + state.finalInput
            Profiler.section("down_proj") {
                block.down.forward(
                    workspace + at.product, next, n: tokens, training: training, seed: nextSeed(), rowKeys: keys)
            }
            Ops.add(next, afterAttention, next, count: tokens * hidden)
        }
        let output = workspace + state.output
        Ops.rmsNormForward(
            x: workspace + state.finalInput, weight: finalNorm.value.data, y: output, rstd: workspace + state.finalRstd,
            n: tokens, d: hidden, eps: config.rmsNormEps)
        self.state = state
        return BackboneOutput(
            batch: batch.batch, seq: batch.seq, hidden: hidden, layout: state.layout, lastHidden: output, pooled: nil,
            exampleKeys: batch.exampleKeys)
    }

    /// `[rows, vocab]` logits of `rows` hidden states (`hidden · outputProjectionᵀ`).
    public func logits(_ hiddenStates: UnsafePointer<Float>, rows: Int) -> [Float] {
        var logits = [Float](repeating: 0, count: rows * config.vocabSize)
        logits.withUnsafeMutableBufferPointer { output in
            Ops.linearForward(
                x: hiddenStates, w: outputProjection.value.data, b: nil, y: output.baseAddress!, n: rows,
                inDim: config.hiddenSize, outDim: config.vocabSize)
        }
        return logits
    }

    // MARK: Backward

    /// Offsets of backward's gradient buffers: the residual stream's, a branch's, the queries', keys' and values',
    /// and the MLP's gate and up projections'.
    struct GradientOffsets {
        let stream: Int, branch: Int, query: Int, key: Int, value: Int, gate: Int, up: Int, total: Int

        init(_ config: LlamaConfig, tokens: Int) {
            let hidden = config.hiddenSize
            let keyValueWidth = config.numKeyValueHeads * config.headDim
            var workspaceLayout = WorkspaceLayout()
            stream = workspaceLayout.take(tokens * hidden)
            branch = workspaceLayout.take(tokens * hidden)
            query = workspaceLayout.take(tokens * hidden)
            key = workspaceLayout.take(tokens * keyValueWidth)
            value = workspaceLayout.take(tokens * keyValueWidth)
            gate = workspaceLayout.take(tokens * config.intermediateSize)
            up = workspaceLayout.take(tokens * config.intermediateSize)
            total = workspaceLayout.total
        }
    }

    /// Bytes of a training step's workspaces for `layout`; attention grows with the longest sequence squared times
    /// the cores (`recomputed`), where keeping every head's probabilities for backward would take `stored`.
    public struct StepMemory: Sendable {
        public let activations: Int, gradients: Int, attention: Int, storedProbabilities: Int
    }

    public static func stepMemory(config: LlamaConfig, layout: SequenceLayout) -> StepMemory {
        let bytes = MemoryLayout<Float>.size
        return StepMemory(
            activations: plan(config, layout).total * bytes,
            gradients: GradientOffsets(config, tokens: layout.tokens).total * bytes,
            attention: Attention.recomputeScratchCount(layout: layout, heads: config.numHeads) * bytes,
            storedProbabilities: config.numLayers * layout.probCount(heads: config.numHeads) * bytes)
    }

    /// Back-propagates the gradient of the last forward's final hidden states. Accumulates into trainable
    /// parameters' gradients; `inputGrad` (`[tokens, hidden]`), when given, receives the gradient with respect to
    /// the input embeddings.
    public func backward(
        dLastHidden: UnsafePointer<Float>?, dPooled: UnsafePointer<Float>?, inputGrad: UnsafeMutablePointer<Float>?
    ) throws {
        guard let state else { throw ModelError("backward called before forward") }
        guard let dLastHidden else { return }
        let workspace = activationScratch.get(state.total)
        let tokens = state.tokens
        let hidden = config.hiddenSize
        let inner = config.intermediateSize
        let offsets = GradientOffsets(config, tokens: tokens)
        let attention = attentionScratch.get(
            Attention.recomputeScratchCount(layout: state.layout, heads: config.numHeads))
        let gradients = gradientScratch.get(offsets.total)
        let dStream = gradients + offsets.stream
        let dBranch = gradients + offsets.branch
        let dQuery = gradients + offsets.query
        let dKey = gradients + offsets.key
        let dValue = gradients + offsets.value
        let dGate = gradients + offsets.gate
        let dUp = gradients + offsets.up

        func blockTrainable(_ block: LlamaLayerParams) -> Bool {
            block.linears.contains(where: \.hasTrainable) || block.inputNorm.trainable
                || block.postAttentionNorm.trainable
        }
        let lowest =
            inputGrad != nil || embedding.trainable ? -1 : (layers.firstIndex(where: blockTrainable) ?? layers.count)
        Ops.rmsNormBackward(
            dy: dLastHidden, x: workspace + state.finalInput, weight: finalNorm.value.data,
            rstd: workspace + state.finalRstd, dx: dStream, dweight: finalNorm.grad?.data, n: tokens, d: hidden)
        if lowest >= layers.count { return }
        for index in stride(from: layers.count - 1, through: max(lowest, 0), by: -1) {
            let block = layers[index]
            let at = state.layer[index]
            // MLP: dStream is the gradient of the block's output, which is also the stream after attention's.
            Profiler.section("down_proj (backward)") {
                block.down.backward(dy: dStream, x: workspace + at.product, dx: dGate, n: tokens)
            }
            Profiler.section("swiglu (backward)") {
                Ops.swigluBackward(
                    dy: dGate, gate: workspace + at.gate, up: workspace + at.up, dgate: dGate, dup: dUp,
                    count: tokens * inner)
            }
            Profiler.section("gate/up_proj (backward)") {
                block.gate.backward(dy: dGate, x: workspace + at.normedAfterAttention, dx: dBranch, n: tokens)
                block.up.backward(
                    dy: dUp, x: workspace + at.normedAfterAttention, dx: dBranch, n: tokens, accumulate: true)
            }
            Profiler.section("rms norm (backward)") {
                Ops.rmsNormBackward(
                    dy: dBranch, x: workspace + at.afterAttention, weight: block.postAttentionNorm.value.data,
                    rstd: workspace + at.rstdAfterAttention, dx: dStream, dweight: block.postAttentionNorm.grad?.data,
                    n: tokens, d: hidden, accumulateDx: true)
            }
            // Attention: dStream is now the gradient of the stream after attention, also the block input's.
            Profiler.section("o_proj (backward)") {
                block.attentionOutput.backward(dy: dStream, x: workspace + at.context, dx: dBranch, n: tokens)
            }
            Profiler.section("attention (backward)") {
                Attention.backwardRecomputing(
                    dctx: dBranch, q: workspace + at.query, k: workspace + at.key, v: workspace + at.value, dq: dQuery,
                    dk: dKey, dv: dValue, scratch: attention, layout: state.layout, heads: config.numHeads,
                    headDim: config.headDim, kvHeads: config.numKeyValueHeads, causal: true)
            }
            Profiler.section("rotary (backward)") {
                state.positions.withUnsafeBufferPointer { positions in
                    rotary.apply(
                        dQuery, positions: positions.baseAddress!, rows: tokens, heads: config.numHeads, inverse: true)
                    rotary.apply(
                        dKey, positions: positions.baseAddress!, rows: tokens, heads: config.numKeyValueHeads,
                        inverse: true
                    )
                }
            }
            // The branch gradient is needed below this block, or for this block's input norm weight.
            let needBranch = index > lowest || block.inputNorm.trainable
            let normed = workspace + at.normed
            Profiler.section("q/k/v_proj (backward)") {
                block.query.backward(dy: dQuery, x: normed, dx: needBranch ? dBranch : nil, n: tokens)
                block.key.backward(dy: dKey, x: normed, dx: needBranch ? dBranch : nil, n: tokens, accumulate: true)
                block.value.backward(dy: dValue, x: normed, dx: needBranch ? dBranch : nil, n: tokens, accumulate: true)
            }
            if needBranch {
                Profiler.section("rms norm (backward)") {
                    Ops.rmsNormBackward(
                        dy: dBranch, x: workspace + at.input, weight: block.inputNorm.value.data,
                        rstd: workspace + at.rstd,
                        dx: dStream, dweight: block.inputNorm.grad?.data, n: tokens, d: hidden, accumulateDx: true)
                }
            }
        }
        guard lowest < 0 else { return }
        if let gradient = embedding.grad {
            state.ids.withUnsafeBufferPointer {
                Ops.embeddingBackward(ids: $0.baseAddress!, dy: dStream, dtable: gradient.data, n: tokens, d: hidden)
            }
        }
        inputGrad?.update(from: dStream, count: tokens * hidden)
    }
}
