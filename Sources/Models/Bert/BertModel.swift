import Foundation
import RankwiseCore
import SafeTensors

/// One transformer block's parameters (Hugging Face names under `encoder.layer.N.`).
public struct BertLayerParams {
    public let query, key, value, attnOut, intermediate, output: Linear
    public let ln1, ln2: LayerNormParams
    public var linears: [(String, Linear)] {
        [
            ("attention.self.query", query), ("attention.self.key", key), ("attention.self.value", value),
            ("attention.output.dense", attnOut), ("intermediate.dense", intermediate), ("output.dense", output),
        ]
    }
}

/// The BERT encoder (embeddings, N transformer blocks, optional tanh pooler) with a hand-written
/// backward pass in the style of llm.c: `forward` stores what `backward` needs in one workspace.
public final class BertModel: Backbone, @unchecked Sendable {
    public let config: BertConfig
    public let params = ParameterSet()
    public let wordEmb, posEmb, typeEmb: Param
    public let embLN: LayerNormParams
    public let layers: [BertLayerParams]
    public let pooler: Linear?

    private let activationScratch = Scratch()
    /// The dropout keys of the last training forward's token rows.
    private let rowKeys = RowKeyScratch()
    private let gradientScratch = Scratch()
    private var state: State?
    /// The sequences of the batch being run (set by `forward`; backward runs on the same batch), for
    /// adapters that work per sequence rather than per token (Dynamic LoRA's input gate).
    public private(set) var layout: SequenceLayout?
    /// When set, each forward starts a new batch in it and backward passes fill it (adapters and the
    /// classifier add their parts): per-example gradient norms for data-quality methods.
    public var perExample: PerExampleNorms? {
        didSet { for l in linears { l.adapter?.perExample = perExample } }
    }

    /// Builds the model from a weight source. `withPooler` loads `pooler.dense` (an error if missing).
    public init(config: BertConfig, weights: WeightSource, withPooler: Bool? = nil) throws {
        self.config = config
        let H = config.hiddenSize
        let I = config.intermediateSize
        let ps = params
        func p(_ name: String, _ shape: [Int], role: ParamRole = .weight) throws -> Param {
            let x = Param(name: name, value: try weights.tensor(name, shape: shape, role: role), role: role)
            ps.add(x)
            return x
        }
        func lin(_ name: String, _ out: Int, _ inn: Int, layer: Int? = nil, kind: String? = nil) throws -> Linear {
            Linear(
                path: name, weight: try p(name + ".weight", [out, inn]),
                bias: try p(name + ".bias", [out], role: .bias),
                layer: layer, kind: kind)
        }
        func ln(_ name: String) throws -> LayerNormParams {
            LayerNormParams(
                gamma: try p(name + ".weight", [H], role: .normScale), beta: try p(name + ".bias", [H], role: .bias))
        }
        wordEmb = try p("embeddings.word_embeddings.weight", [config.vocabSize, H])
        posEmb = try p("embeddings.position_embeddings.weight", [config.maxPositions, H])
        typeEmb = try p("embeddings.token_type_embeddings.weight", [config.typeVocabSize, H])
        embLN = try ln("embeddings.LayerNorm")
        var ls: [BertLayerParams] = []
        for l in 0..<config.numLayers {
            let pre = "encoder.layer.\(l)."
            func block(_ module: Int, _ out: Int, _ inn: Int) throws -> Linear {
                let (name, kind) = Self.modules[module]
                return try lin(pre + name, out, inn, layer: l, kind: kind)
            }
            ls.append(
                BertLayerParams(
                    query: try block(0, H, H), key: try block(1, H, H), value: try block(2, H, H),
                    attnOut: try block(3, H, H),
                    intermediate: try block(4, I, H), output: try block(5, H, I),
                    ln1: try ln(pre + "attention.output.LayerNorm"), ln2: try ln(pre + "output.LayerNorm")))
        }
        layers = ls
        let wantPooler = withPooler ?? weights.has("pooler.dense.weight")
        pooler = wantPooler ? try lin("pooler.dense", H, H) : nil
    }

    /// Every linear layer of the encoder (not the pooler), in order.
    public var linears: [Linear] { layers.flatMap { $0.linears.map(\.1) } }

    /// Each block's linear layers: path below `encoder.layer.N.` and the kind label tables show.
    static let modules: [(path: String, kind: String)] = [
        ("attention.self.query", "query"), ("attention.self.key", "key"), ("attention.self.value", "value"),
        ("attention.output.dense", "attn.out"), ("intermediate.dense", "inter"), ("output.dense", "output"),
    ]

    // MARK: Backbone

    public var hiddenSize: Int { config.hiddenSize }
    public var maxPositions: Int { config.maxPositions }
    public var vocabularySize: Int { config.vocabSize }
    public var layerCount: Int { config.numLayers }
    public var hasPooledOutput: Bool { pooler != nil }
    public var headDropout: Float { config.hiddenDropout }
    public var adaptableLinears: [Linear] { linears }
    public var moduleKinds: [String] { Self.modules.map(\.1) }
    /// PEFT's default for BERT names the attention projections only; Rankwise adapts every block linear, as the papers
    /// do.
    public var defaultTargetModules: [String] {
        ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"]
    }
    public var isCausal: Bool { false }
    public var huggingFace: HuggingFaceNames { HuggingFaceNames(prefix: "bert.", classStem: "Bert", modelType: "bert") }
    public var configJSON: [String: Any] { config.json }

    /// The BERT family: BERT and the encoders that share its layout.
    public static let family = BackboneFamily(
        name: "bert", modelTypes: BertConfig.modelTypes, tensorPrefixes: ["bert.", "roberta."], moduleKinds: modules
    ) { directory, pooled in
        try BertModel.load(directory: directory, withPooler: pooled)
    }

    /// The prefix of a BERT checkpoint's tensors (`bert.` in a `BertForSequenceClassification` file, none in a
    /// `BertModel` one).
    static func weightPrefix(in file: SafeTensorsFile) throws -> String {
        let probe = "embeddings.word_embeddings.weight"
        guard let prefix = ["", "bert.", "model.", "encoder.", "roberta."].first(where: { file.contains($0 + probe) })
        else {
            throw ModelError(
                "\(file.path): no tensor \"\(probe)\" (with or without a \"bert.\" prefix): not a BERT checkpoint?")
        }
        return prefix
    }

    /// Loads `config.json` and `model.safetensors` from a Hugging Face model directory.
    public static func load(directory: String, withPooler: Bool? = nil) throws -> BertModel {
        let config = try BertConfig(path: directory)
        let file = (directory as NSString).appendingPathComponent("model.safetensors")
        guard FileManager.default.fileExists(atPath: file) else {
            throw ModelError("\(directory): no model.safetensors (only safetensors weights are supported)")
        }
        let st: SafeTensorsFile
        do { st = try SafeTensorsFile(path: file) } catch { throw ModelError("\(error)") }
        let weights = SafeTensorsWeights(file: st, prefix: try weightPrefix(in: st))
        return try BertModel(config: config, weights: weights, withPooler: withPooler)
    }

    // MARK: Workspace

    /// Offsets of every saved activation for one batch shape.
    struct State {
        var B = 0, N = 0
        var layout = SequenceLayout.packed(lengths: [])
        var training = false
        var seed: UInt64 = 0
        var ids: [Int32] = [], types: [Int32] = [], positions: [Int32] = []
        // offsets into activationScratch
        var embSum = 0, embMean = 0, embRstd = 0, embMask = 0, x0 = 0
        var layer: [LayerOffsets] = []
        var pooledPre = 0, pooled = 0
        var total = 0
    }

    struct LayerOffsets {
        var q = 0, k = 0, v = 0, probs = 0, probsDrop = 0, probsMask = 0, ctx = 0
        var res1 = 0, mask1 = 0, ln1 = 0, mean1 = 0, rstd1 = 0
        var h1 = 0, g = 0, res2 = 0, mask2 = 0, ln2 = 0, mean2 = 0, rstd2 = 0
    }

    private func plan(_ layout: SequenceLayout, training: Bool) -> State {
        var s = State()
        let B = layout.count
        s.B = B
        s.N = layout.tokens
        s.layout = layout
        s.training = training
        let N = s.N
        let H = config.hiddenSize
        let I = config.intermediateSize
        let P = layout.probCount(heads: config.numHeads)
        var workspace = WorkspaceLayout()
        func take(_ n: Int) -> Int { workspace.take(n) }
        let hd = training && config.hiddenDropout > 0
        let ad = training && config.attentionDropout > 0
        s.embSum = take(N * H)
        s.embMean = take(N)
        s.embRstd = take(N)
        s.x0 = take(N * H)
        s.embMask = hd ? take(N * H) : -1
        for _ in 0..<config.numLayers {
            var offsets = LayerOffsets()
            offsets.q = take(N * H)
            offsets.k = take(N * H)
            offsets.v = take(N * H)
            offsets.probs = take(P)
            offsets.probsDrop = ad ? take(P) : offsets.probs
            offsets.probsMask = ad ? take(P) : -1
            offsets.ctx = take(N * H)
            offsets.res1 = take(N * H)
            offsets.mask1 = hd ? take(N * H) : -1
            offsets.ln1 = take(N * H)
            offsets.mean1 = take(N)
            offsets.rstd1 = take(N)
            offsets.h1 = take(N * I)
            offsets.g = take(N * I)
            offsets.res2 = take(N * H)
            offsets.mask2 = hd ? take(N * H) : -1
            offsets.ln2 = take(N * H)
            offsets.mean2 = take(N)
            offsets.rstd2 = take(N)
            s.layer.append(offsets)
        }
        s.pooledPre = take(B * H)
        s.pooled = take(B * H)
        s.total = workspace.total
        return s
    }

    /// Bytes of activation memory a forward pass of this shape keeps for backward.
    public func activationBytes(batch: Int, seq: Int, training: Bool) -> Int {
        plan(.padded(batch: batch, seq: seq, mask: []), training: training).total * 4
    }

    // MARK: Forward

    /// Checks ids, type ids, mask length and sequence length; the error names the row and position.
    public func validate(_ input: TokenBatch) throws {
        let n = input.layout.tokens
        let lay = input.layout
        guard input.ids.count == n, input.typeIds.count == n, input.mask.count == n, lay.count == input.batch else {
            throw ModelError(
                "input: ids/typeIds/mask have \(input.ids.count)/\(input.typeIds.count)/\(input.mask.count) entries, "
                    + "expected \(n) tokens of \(input.batch) sequences"
            )
        }
        guard lay.maxLength <= config.maxPositions else {
            throw ModelError(
                "input: sequence length \(lay.maxLength) exceeds max_position_embeddings \(config.maxPositions)")
        }
        for b in 0..<lay.count {
            for t in 0..<lay.lengths[b] {
                let i = lay.starts[b] + t
                if input.ids[i] < 0 || Int(input.ids[i]) >= config.vocabSize {
                    throw ModelError(
                        "input: token id \(input.ids[i]) at row \(b), position \(t) is outside the vocabulary (size "
                            + "\(config.vocabSize))"
                    )
                }
                if input.typeIds[i] < 0 || Int(input.typeIds[i]) >= config.typeVocabSize {
                    throw ModelError(
                        "input: token type id \(input.typeIds[i]) at row \(b), position \(t) is outside "
                            + "type_vocab_size \(config.typeVocabSize)"
                    )
                }
            }
        }
    }

    /// Runs the encoder. With `training`, dropout is applied with masks drawn from `seed`, and
    /// everything backward needs is kept.
    @discardableResult
    public func forward(_ input: TokenBatch, training: Bool, seed: UInt64) throws -> BackboneOutput {
        try validate(input)
        layout = input.layout
        perExample?.reset(layout: input.layout)
        var s = plan(input.layout, training: training)
        s.seed = seed
        s.ids = input.ids
        s.types = input.typeIds
        s.positions = [Int32](repeating: 0, count: s.N)
        for b in 0..<s.B { for t in 0..<s.layout.lengths[b] { s.positions[s.layout.starts[b] + t] = Int32(t) } }
        let w = activationScratch.get(s.total)
        let N = s.N
        let H = config.hiddenSize
        let I = config.intermediateSize
        let B = s.B
        let nh = config.numHeads
        let hdim = config.headDim
        let eps = config.layerNormEps
        var seedCounter: UInt64 = 0
        func nextSeed() -> UInt64 {
            seedCounter += 1
            return seed &* 0x9E37_79B9_7F4A_7C15 &+ seedCounter
        }
        // Every dropout mask keyed by its row's example and position (`DropoutKeys`).
        let keys = training ? rowKeys.set(DropoutKeys.tokenRows(s.layout, exampleKeys: input.exampleKeys)) : nil
        let exampleKeys = input.exampleKeys

        // Embeddings
        let sum = w + s.embSum
        input.ids.withUnsafeBufferPointer { ids in
            Ops.embeddingForward(ids: ids.baseAddress!, table: wordEmb.value.data, y: sum, n: N, d: H)
        }
        for t in 0..<N {
            let row = sum + t * H
            let pos = posEmb.value.data + Int(s.positions[t]) * H
            let typ = typeEmb.value.data + Int(input.typeIds[t]) * H
            for j in 0..<H { row[j] += pos[j] + typ[j] }
        }
        Ops.layerNormForward(
            x: sum, gamma: embLN.gamma.value.data, beta: embLN.beta.value.data, y: w + s.x0,
            mean: w + s.embMean, rstd: w + s.embRstd, n: N, d: H, eps: eps)
        if s.embMask >= 0 {
            Ops.dropoutRowsForward(
                x: w + s.x0, y: w + s.x0, mask: w + s.embMask, rows: N, width: H, p: config.hiddenDropout,
                seed: nextSeed()
            ) { keys![$0] }
        }
        /// The end of each half of a block: hidden dropout on the sub-layer's output (in place, at scratch offset
        /// `sublayer`), the residual added, then the layer norm into `output` (offsets into the scratch).
        func closeSublayer(
            _ sublayer: Int, mask: Int, residual: UnsafeMutablePointer<Float>, norm: LayerNormParams, output: Int,
            mean: Int, rstd: Int
        ) {
            if mask >= 0 {
                Ops.dropoutRowsForward(
                    x: w + sublayer, y: w + sublayer, mask: w + mask, rows: N, width: H, p: config.hiddenDropout,
                    seed: nextSeed()
                ) { keys![$0] }
            }
            Profiler.section("residual+layernorm") {
                Ops.add(w + sublayer, residual, w + sublayer, count: N * H)
                Ops.layerNormForward(
                    x: w + sublayer, gamma: norm.gamma.value.data, beta: norm.beta.value.data, y: w + output,
                    mean: w + mean, rstd: w + rstd, n: N, d: H, eps: eps)
            }
        }
        // Blocks
        var x = w + s.x0
        do {
            for (l, L) in layers.enumerated() {
                let at = s.layer[l]
                Profiler.section("qkv") {
                    L.query.forward(x, w + at.q, n: N, training: training, seed: nextSeed(), rowKeys: keys)
                    L.key.forward(x, w + at.k, n: N, training: training, seed: nextSeed(), rowKeys: keys)
                    L.value.forward(x, w + at.v, n: N, training: training, seed: nextSeed(), rowKeys: keys)
                }
                Profiler.section("attention") {
                    Attention.forward(
                        q: w + at.q, k: w + at.k, v: w + at.v, layout: s.layout, probs: w + at.probs,
                        ctx: w + at.ctx, heads: nh, headDim: hdim,
                        dropout: at.probsMask >= 0
                            ? (
                                p: config.attentionDropout, seed: nextSeed(), mask: w + at.probsMask,
                                dropped: w + at.probsDrop, exampleKeys: exampleKeys
                            ) : nil)
                }
                Profiler.section("attn.out") {
                    L.attnOut.forward(
                        w + at.ctx, w + at.res1, n: N, training: training, seed: nextSeed(), rowKeys: keys)
                }
                closeSublayer(
                    at.res1, mask: at.mask1, residual: x, norm: L.ln1, output: at.ln1, mean: at.mean1, rstd: at.rstd1)
                Profiler.section("intermediate") {
                    L.intermediate.forward(
                        w + at.ln1, w + at.h1, n: N, training: training, seed: nextSeed(), rowKeys: keys)
                }
                Profiler.section("gelu") { activationForward(w + at.h1, w + at.g, count: N * I) }
                Profiler.section("output") {
                    L.output.forward(w + at.g, w + at.res2, n: N, training: training, seed: nextSeed(), rowKeys: keys)
                }
                closeSublayer(
                    at.res2, mask: at.mask2, residual: w + at.ln1, norm: L.ln2, output: at.ln2, mean: at.mean2,
                    rstd: at.rstd2)
                x = w + at.ln2
            }
        }
        // Pooler on the first token of each row
        var pooled: UnsafeMutablePointer<Float>? = nil
        if let pooler {
            let cls = w + s.pooledPre  // gather first tokens, then dense + tanh
            for b in 0..<B { (cls + b * H).update(from: x + s.layout.starts[b] * H, count: H) }
            let out = w + s.pooled
            pooler.forward(cls, out, n: B)
            Ops.tanhForward(out, out, count: B * H)
            pooled = out
        }
        state = s
        return BackboneOutput(
            batch: B, seq: input.seq, hidden: H, layout: s.layout, lastHidden: x, pooled: pooled,
            exampleKeys: input.exampleKeys)
    }

    private func activationForward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        if config.hiddenAct == "relu" {
            for i in 0..<count { y[i] = max(0, x[i]) }
        } else {
            Ops.geluForward(x, y, count: count)
        }
    }

    private func activationBackward(
        x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, count: Int
    ) {
        if config.hiddenAct == "relu" {
            for i in 0..<count { dx[i] = x[i] > 0 ? dy[i] : 0 }
        } else {
            Ops.geluBackward(x: x, dy: dy, dx: dx, count: count)
        }
    }

    // MARK: Backward

    /// Back-propagates from gradients of the last forward's outputs. Accumulates into the gradients
    /// of trainable parameters. When `inputGrad` (`[batch, seq, hidden]`) is given it receives the
    /// gradient with respect to the summed input embeddings (word + position + type), which is the
    /// gradient with respect to `inputs_embeds`; otherwise back-propagation stops below the lowest
    /// trainable parameter.
    public func backward(
        dLastHidden: UnsafePointer<Float>?, dPooled: UnsafePointer<Float>?, inputGrad: UnsafeMutablePointer<Float>?
    ) throws {
        guard let s = state else { throw ModelError("backward called before forward") }
        let w = activationScratch.get(s.total)
        let N = s.N
        let H = config.hiddenSize
        let I = config.intermediateSize
        let B = s.B
        let nh = config.numHeads
        let hdim = config.headDim
        let P = s.layout.probCount(heads: nh)
        var gradientLayout = WorkspaceLayout()
        func take(_ n: Int) -> Int { gradientLayout.take(n) }
        let oDX = take(N * H)
        let oDA = take(N * H)
        let oDB = take(N * H)
        let oDQ = take(N * H)
        let oDK = take(N * H)
        let oDV = take(N * H)
        let oDI = take(N * I)
        let oDP = take(P)
        let oCls = take(B * H)
        let g = gradientScratch.get(gradientLayout.total)
        let dX = g + oDX
        let dA = g + oDA
        let dB = g + oDB
        let dQ = g + oDQ
        let dK = g + oDK
        let dV = g + oDV
        let dI = g + oDI

        // Which layers need work: the lowest layer holding a trainable parameter.
        func layerTrainable(_ L: BertLayerParams) -> Bool {
            L.linears.contains { $0.1.hasTrainable }
                || L.ln1.gamma.trainable || L.ln1.beta.trainable || L.ln2.gamma.trainable || L.ln2.beta.trainable
        }
        let embTrainable =
            wordEmb.trainable || posEmb.trainable || typeEmb.trainable || embLN.gamma.trainable || embLN.beta.trainable
        var lowest = layers.count
        if inputGrad != nil || embTrainable {
            lowest = -1
        } else if let i = layers.firstIndex(where: layerTrainable) {
            lowest = i
        }

        // Gradient of the last hidden state (plus the pooler's contribution on first tokens).
        if let d = dLastHidden { dX.update(from: d, count: N * H) } else { dX.update(repeating: 0, count: N * H) }
        let lastOut = s.layer.isEmpty ? w + s.x0 : w + s.layer[layers.count - 1].ln2
        if let pooler, let dPooled {
            let dpre = g + oCls
            Ops.tanhBackward(y: w + s.pooled, dy: dPooled, dx: dpre, count: B * H)
            let cls = w + s.pooledPre
            let dcls = dA  // temp [B, H]
            pooler.backward(dy: dpre, x: cls, dx: dcls, n: B)
            for b in 0..<B {
                let row = dX + s.layout.starts[b] * H
                let src = dcls + b * H
                for j in 0..<H { row[j] += src[j] }
            }
        }
        _ = lastOut
        if lowest >= layers.count { return }

        // Blocks, top to bottom. dX holds the gradient of the block's output.
        for l in stride(from: layers.count - 1, through: max(lowest, 0), by: -1) {
            let L = layers[l]
            let at = s.layer[l]
            let xIn = l == 0 ? w + s.x0 : w + s.layer[l - 1].ln2
            // Output layer norm -> dA = dRes2
            Ops.layerNormBackward(
                dy: dX, x: w + at.res2, gamma: L.ln2.gamma.value.data, mean: w + at.mean2, rstd: w + at.rstd2,
                dx: dA, dgamma: L.ln2.gamma.grad?.data, dbeta: L.ln2.beta.grad?.data, n: N, d: H)
            // residual: dLn1 (dB) = dRes2 ; dense2 output grad = dRes2 * mask2 (into dX as temp)
            dB.update(from: dA, count: N * H)
            if at.mask2 >= 0 { Ops.dropoutBackward(dy: dA, mask: w + at.mask2, dx: dA, count: N * H) }
            L.output.backward(dy: dA, x: w + at.g, dx: dI, n: N)
            activationBackward(x: w + at.h1, dy: dI, dx: dI, count: N * I)
            L.intermediate.backward(dy: dI, x: w + at.ln1, dx: dB, n: N, accumulate: true)
            // Attention layer norm -> dA = dRes1
            Ops.layerNormBackward(
                dy: dB, x: w + at.res1, gamma: L.ln1.gamma.value.data, mean: w + at.mean1, rstd: w + at.rstd1,
                dx: dA, dgamma: L.ln1.gamma.grad?.data, dbeta: L.ln1.beta.grad?.data, n: N, d: H)
            // residual into the block input: dX = dRes1
            dX.update(from: dA, count: N * H)
            if at.mask1 >= 0 { Ops.dropoutBackward(dy: dA, mask: w + at.mask1, dx: dA, count: N * H) }
            L.attnOut.backward(dy: dA, x: w + at.ctx, dx: dB, n: N)  // dB = dCtx
            Attention.backward(
                dctx: dB, q: w + at.q, k: w + at.k, v: w + at.v, probs: w + at.probs, dq: dQ, dk: dK, dv: dV,
                scratch: g + oDP, layout: s.layout, heads: nh, headDim: hdim,
                dropout: at.probsMask >= 0
                    ? (mask: UnsafePointer(w + at.probsMask), dropped: UnsafePointer(w + at.probsDrop)) : nil)
            let needDx = l > 0 ? l > lowest : lowest < 0
            L.query.backward(dy: dQ, x: xIn, dx: needDx ? dX : nil, n: N, accumulate: true)
            L.key.backward(dy: dK, x: xIn, dx: needDx ? dX : nil, n: N, accumulate: true)
            L.value.backward(dy: dV, x: xIn, dx: needDx ? dX : nil, n: N, accumulate: true)
        }
        guard lowest < 0 else { return }
        // Embeddings: dropout, layer norm, then the three tables.
        if s.embMask >= 0 { Ops.dropoutBackward(dy: dX, mask: w + s.embMask, dx: dX, count: N * H) }
        let dSum = inputGrad ?? dA
        Ops.layerNormBackward(
            dy: dX, x: w + s.embSum, gamma: embLN.gamma.value.data, mean: w + s.embMean, rstd: w + s.embRstd,
            dx: dSum, dgamma: embLN.gamma.grad?.data, dbeta: embLN.beta.grad?.data, n: N, d: H)
        if let gw = wordEmb.grad {
            s.ids.withUnsafeBufferPointer {
                Ops.embeddingBackward(ids: $0.baseAddress!, dy: dSum, dtable: gw.data, n: N, d: H)
            }
        }
        if let gp = posEmb.grad {
            for t in 0..<N {
                let row = gp.data + Int(s.positions[t]) * H
                let src = dSum + t * H
                for j in 0..<H { row[j] += src[j] }
            }
        }
        if let gt = typeEmb.grad {
            s.types.withUnsafeBufferPointer {
                Ops.embeddingBackward(ids: $0.baseAddress!, dy: dSum, dtable: gt.data, n: N, d: H)
            }
        }
    }
}
