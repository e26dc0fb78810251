import Foundation
import RankwiseCore

/// The keys (after rotation) and values of every block for the tokens decoded so far: one sequence, up to
/// `capacity` tokens, preallocated so that a decoding step allocates nothing.
public final class KeyValueCache {
    public let capacity: Int
    /// Tokens cached so far (the position of the next token).
    public private(set) var length = 0
    let width: Int
    let keys: [UnsafeMutablePointer<Float>]
    let values: [UnsafeMutablePointer<Float>]

    public init(layers: Int, keyValueWidth: Int, capacity: Int) {
        self.capacity = capacity
        width = keyValueWidth
        keys = (0..<layers).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: capacity * keyValueWidth) }
        values = (0..<layers).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: capacity * keyValueWidth) }
    }

    deinit {
        for pointer in keys + values { pointer.deallocate() }
    }

    /// Bytes the cache holds.
    public var bytes: Int { 2 * keys.count * capacity * width * 4 }

    /// Forgets every token (a new conversation reuses the memory).
    public func reset() { length = 0 }

    func advance(by count: Int) { length += count }
}

/// Scratch rows of one decoding call, reused between calls (grown only when a longer chunk comes).
final class DecodingScratch {
    var stream = Scratch()
    var normed = Scratch()
    var rstd = Scratch()
    var query = Scratch()
    var context = Scratch()
    var projected = Scratch()
    var gate = Scratch()
    var up = Scratch()
    var scores = Scratch()
    var newKeys = Scratch()
    var newValues = Scratch()
}

extension LlamaModel {
    /// A cache for this model's shape holding up to `capacity` tokens (default 4,096; at most the context length,
    /// at least one).
    public func makeCache(capacity: Int? = nil) -> KeyValueCache {
        KeyValueCache(
            layers: config.numLayers, keyValueWidth: config.numKeyValueHeads * config.headDim,
            capacity: max(1, min(capacity ?? 4096, config.maxPositions)))
    }

    /// Runs `ids` as the next tokens of the cached sequence (a whole prompt at once, or one generated token) and
    /// returns the logits of the last one. Inference only: adapters apply, nothing is kept for backward.
    public func decode(_ ids: [Int32], cache: KeyValueCache) throws -> [Float] {
        let count = ids.count
        guard count > 0 else { throw ModelError("decode: no tokens") }
        guard cache.length + count <= cache.capacity else {
            throw ModelError(
                "decode: \(cache.length) cached + \(count) new tokens exceed the cache's \(cache.capacity) (context "
                    + "length \(config.maxPositions))")
        }
        for id in ids where id < 0 || Int(id) >= config.vocabSize {
            throw ModelError("decode: token id \(id) is outside the vocabulary (size \(config.vocabSize))")
        }
        ensurePositions(cache.length + count)
        let hidden = config.hiddenSize
        let headDim = config.headDim
        let keyValueWidth = config.numKeyValueHeads * headDim
        let group = config.numHeads / config.numKeyValueHeads
        let total = cache.length + count
        let scores = decodingScratch.scores.get(count * total)
        let scale = 1 / Float(headDim).squareRoot()
        let stream = decodeBlocks(
            ids, positions: (0..<count).map { Int32(cache.length + $0) },
            keyValueRows: { layer in
                (cache.keys[layer] + cache.length * keyValueWidth, cache.values[layer] + cache.length * keyValueWidth)
            },
            attend: { layer, query, context in
                let keys = cache.keys[layer]
                let values = cache.values[layer]
                for head in 0..<config.numHeads {
                    let keyValueOffset = (head / group) * headDim
                    BLAS.sgemm(
                        transB: true, m: count, n: total, k: headDim, alpha: scale, a: query + head * headDim,
                        lda: hidden, b: keys + keyValueOffset, ldb: keyValueWidth, c: scores, ldc: total)
                    for row in 0..<count {
                        // Token `row` of the chunk sees the cached tokens and the chunk's tokens up to itself.
                        let visible = cache.length + row + 1
                        let rowScores = scores + row * total
                        Ops.softmaxRows(rowScores, rows: 1, d: visible, keyMask: nil)
                        (rowScores + visible).update(repeating: 0, count: total - visible)
                    }
                    BLAS.sgemm(
                        m: count, n: headDim, k: total, a: scores, lda: total, b: values + keyValueOffset,
                        ldb: keyValueWidth, c: context + head * headDim, ldc: hidden)
                }
            })
        let normed = decodingScratch.normed.get(count * hidden)
        let rstd = decodingScratch.rstd.get(count)
        cache.advance(by: count)
        let last = stream + (count - 1) * hidden
        Ops.rmsNormForward(
            x: last, weight: finalNorm.value.data, y: normed, rstd: rstd, n: 1, d: hidden, eps: config.rmsNormEps)
        if useQuantizedDecoding, !outputProjection.trainable, let output = quantizedWeights["output"] {
            var logits = [Float](repeating: 0, count: config.vocabSize)
            logits.withUnsafeMutableBufferPointer { output.multiply(normed, into: $0.baseAddress!) }
            return logits
        }
        return logits(normed, rows: 1)
    }

    /// Runs one next token of each of several cached sequences (`ids[i]` continues `caches[i]`) in one pass: the
    /// products read the weights once for all rows, each row attends to its own cache. Returns `[rows, vocab]`
    /// logits. One row is `decode`. Inference only, as `decode`.
    public func decodeStep(_ ids: [Int32], caches: [KeyValueCache]) throws -> [Float] {
        let rows = ids.count
        guard rows > 0, caches.count == rows else {
            throw ModelError("decode: \(rows) tokens for \(caches.count) caches")
        }
        if rows == 1 { return try decode(ids, cache: caches[0]) }
        guard Set(caches.map(ObjectIdentifier.init)).count == rows else {
            throw ModelError("decode: a cache is repeated")
        }
        for (row, cache) in caches.enumerated() where cache.length >= cache.capacity {
            throw ModelError("decode: sequence \(row) fills its cache of \(cache.capacity) tokens")
        }
        for id in ids where id < 0 || Int(id) >= config.vocabSize {
            throw ModelError("decode: token id \(id) is outside the vocabulary (size \(config.vocabSize))")
        }
        let positions = caches.map { Int32($0.length) }
        let longest = Int(positions.max()!) + 1
        ensurePositions(longest)
        let hidden = config.hiddenSize
        let headDim = config.headDim
        let keyValueWidth = config.numKeyValueHeads * headDim
        let group = config.numHeads / config.numKeyValueHeads
        let newKeys = decodingScratch.newKeys.get(rows * keyValueWidth)
        let newValues = decodingScratch.newValues.get(rows * keyValueWidth)
        let scores = decodingScratch.scores.get(longest)
        let scale = 1 / Float(headDim).squareRoot()
        let stream = decodeBlocks(
            ids, positions: positions, keyValueRows: { _ in (newKeys, newValues) },
            attend: { layer, query, context in
                for (row, cache) in caches.enumerated() {
                    let keys = cache.keys[layer]
                    let values = cache.values[layer]
                    let length = cache.length
                    (keys + length * keyValueWidth).update(from: newKeys + row * keyValueWidth, count: keyValueWidth)
                    (values + length * keyValueWidth).update(
                        from: newValues + row * keyValueWidth, count: keyValueWidth)
                    let visible = length + 1
                    for head in 0..<config.numHeads {
                        let keyValueOffset = (head / group) * headDim
                        BLAS.sgemm(
                            transB: true, m: 1, n: visible, k: headDim, alpha: scale,
                            a: query + row * hidden + head * headDim, lda: hidden, b: keys + keyValueOffset,
                            ldb: keyValueWidth, c: scores, ldc: visible)
                        Ops.softmaxRows(scores, rows: 1, d: visible, keyMask: nil)
                        BLAS.sgemm(
                            m: 1, n: headDim, k: visible, a: scores, lda: visible, b: values + keyValueOffset,
                            ldb: keyValueWidth, c: context + row * hidden + head * headDim, ldc: hidden)
                    }
                }
            })
        let normed = decodingScratch.normed.get(rows * hidden)
        let rstd = decodingScratch.rstd.get(rows)
        for cache in caches { cache.advance(by: 1) }
        Ops.rmsNormForward(
            x: stream, weight: finalNorm.value.data, y: normed, rstd: rstd, n: rows, d: hidden, eps: config.rmsNormEps)
        return logits(normed, rows: rows)
    }

    /// The pass `decode` and `decodeStep` share over `ids` (one row each) at `positions`: the embeddings, then each
    /// block's norm, query/key/value projections (keys and values into `keyValueRows(layer)`), rotary embeddings,
    /// `attend(layer, queries, context)`, the output projection, MLP and residuals. Returns the last hidden rows
    /// (valid until the next decoding call).
    private func decodeBlocks(
        _ ids: [Int32], positions: [Int32],
        keyValueRows: (Int) -> (keys: UnsafeMutablePointer<Float>, values: UnsafeMutablePointer<Float>),
        attend: (Int, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void
    ) -> UnsafeMutablePointer<Float> {
        let count = ids.count
        let hidden = config.hiddenSize
        let inner = config.intermediateSize
        let scratch = decodingScratch
        let stream = scratch.stream.get(count * hidden)
        let normed = scratch.normed.get(count * hidden)
        let query = scratch.query.get(count * hidden)
        let context = scratch.context.get(count * hidden)
        let projected = scratch.projected.get(count * hidden)
        let gate = scratch.gate.get(count * inner)
        let up = scratch.up.get(count * inner)
        let rstd = scratch.rstd.get(count)
        ids.withUnsafeBufferPointer {
            Ops.embeddingForward(ids: $0.baseAddress!, table: embedding.value.data, y: stream, n: count, d: hidden)
        }
        for (index, block) in layers.enumerated() {
            let (newKeys, newValues) = keyValueRows(index)
            Ops.rmsNormForward(
                x: stream, weight: block.inputNorm.value.data, y: normed, rstd: rstd, n: count, d: hidden,
                eps: config.rmsNormEps)
            project(block.query, normed, query, count)
            project(block.key, normed, newKeys, count)
            project(block.value, normed, newValues, count)
            positions.withUnsafeBufferPointer { positionPointer in
                rotary.apply(query, positions: positionPointer.baseAddress!, rows: count, heads: config.numHeads)
                rotary.apply(
                    newKeys, positions: positionPointer.baseAddress!, rows: count, heads: config.numKeyValueHeads)
            }
            attend(index, query, context)
            project(block.attentionOutput, context, projected, count)
            Ops.add(stream, projected, stream, count: count * hidden)
            Ops.rmsNormForward(
                x: stream, weight: block.postAttentionNorm.value.data, y: normed, rstd: rstd, n: count, d: hidden,
                eps: config.rmsNormEps)
            project(block.gate, normed, gate, count)
            project(block.up, normed, up, count)
            Ops.swigluForward(gate: gate, up: up, y: gate, count: count * inner)
            project(block.down, gate, projected, count)
            Ops.add(stream, projected, stream, count: count * hidden)
        }
        return stream
    }

    /// `linear`'s output for `count` rows: one row from the quantised blocks when kept, else the float32 weights;
    /// the adapter, if any, adds its part either way.
    private func project(
        _ linear: Linear, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ count: Int
    ) {
        guard count == 1, useQuantizedDecoding, !linear.weight.trainable, let quantized = quantizedWeights[linear.path]
        else {
            linear.forward(x, y, n: count)
            return
        }
        quantized.multiply(x, into: y)
        linear.adapter?.forward(x: x, y: y, n: count, training: false, seed: 0)
    }
}
