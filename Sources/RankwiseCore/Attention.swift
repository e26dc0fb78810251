/// Where each sequence of a batch lives in a token matrix `[tokens, hidden]`.
///
/// Padded: `batch` rows of `seq` tokens each, padding included (a key mask hides it from attention).
/// Packed: the sequences' real tokens back to back, no padding anywhere (variable-length attention).
public struct SequenceLayout: Sendable, Equatable {
    /// First token row of each sequence.
    public let starts: [Int]
    /// Token rows of each sequence (padding included in the padded layout).
    public let lengths: [Int]
    /// Padded layout only: `[tokens]`, 1 for real tokens and 0 for padding.
    public let keyMask: [Float]?
    /// Offset of each sequence's attention matrices (`heads` of `length²`) in a probabilities buffer, per head.
    public let probStarts: [Int]
    public let tokens: Int
    public let maxLength: Int

    public var count: Int { starts.count }
    public var isPacked: Bool { keyMask == nil }

    init(starts: [Int], lengths: [Int], keyMask: [Float]?) {
        self.starts = starts
        self.lengths = lengths
        self.keyMask = keyMask
        var p = [Int]()
        var acc = 0
        for l in lengths {
            p.append(acc)
            acc += l * l
        }
        probStarts = p
        tokens = (starts.last ?? 0) + (lengths.last ?? 0)
        maxLength = lengths.max() ?? 0
    }

    /// `batch` sequences of `seq` rows; `mask` (`[batch·seq]`) marks the real tokens.
    public static func padded(batch: Int, seq: Int, mask: [Float]) -> SequenceLayout {
        SequenceLayout(
            starts: (0..<batch).map { $0 * seq }, lengths: [Int](repeating: seq, count: batch), keyMask: mask)
    }

    /// Sequences of the given lengths, back to back.
    public static func packed(lengths: [Int]) -> SequenceLayout {
        var s = [Int]()
        var acc = 0
        for l in lengths {
            s.append(acc)
            acc += l
        }
        return SequenceLayout(starts: s, lengths: lengths, keyMask: nil)
    }

    /// Floats of attention probabilities for `heads` heads: `heads · Σ length²`.
    public func probCount(heads: Int) -> Int { heads * lengths.reduce(0) { $0 + $1 * $1 } }

    /// Calls `body(b, length, offset, probOffset, index, chunk)` for every non-empty (sequence, head) pair:
    /// `offset` is the head's first element in a `[tokens, heads·headDim]` activation, `probOffset` its
    /// probabilities', `chunk` (below `headChunkCount(heads:)`) the index of the core's share of the pairs.
    /// The pairs are independent: they are split over the cores, one BLAS thread each.
    func forEachHead(
        heads: Int, headDim: Int,
        _ body: (_ b: Int, _ length: Int, _ offset: Int, _ probOffset: Int, _ index: Int, _ chunk: Int) -> Void
    ) {
        BLAS.singleThreaded {
            parallelChunks(count * heads, minChunk: Self.headsPerChunk) { chunk, range in
                for bh in range {
                    let b = bh / heads
                    let hd = bh % heads
                    let L = lengths[b]
                    if L > 0 {
                        let offset = starts[b] * heads * headDim + hd * headDim
                        body(b, L, offset, probOffset(b, head: hd, heads: heads), bh, chunk)
                    }
                }
            }
        }
    }

    static let headsPerChunk = 4

    /// How many shares `forEachHead(heads:)` splits the (sequence, head) pairs into.
    public func headChunkCount(heads: Int) -> Int { parallelChunkCount(count * heads, minChunk: Self.headsPerChunk) }

    /// Where head `head` of sequence `b` keeps its `length²` probabilities.
    @inline(__always) public func probOffset(_ b: Int, head: Int, heads: Int) -> Int {
        heads * probStarts[b] + head * lengths[b] * lengths[b]
    }
}

/// Multi-head scaled dot-product attention over the sequences of a `SequenceLayout`, on
/// `[tokens, heads·headDim]` activations without permuting: each head is a strided view (leading
/// dimension = hidden size) handed to BLAS, and each sequence attends only within its own rows.
///
/// Keys and values may have fewer heads than queries (grouped-query attention): `kvHeads` divides
/// `heads`, K and V are `[tokens, kvHeads·headDim]`, and query head `h` reads key/value head
/// `h / (heads / kvHeads)`. With `causal`, a token attends to itself and the tokens before it only.
public enum Attention {
    /// Per sequence and head: `probs = softmax(scale · Q Kᵀ + mask)`, `ctx = probs · V`. Every head's
    /// probabilities stay in `probs` (`layout.probCount(heads:)` floats) for `backward`.
    public static func forward(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, layout: SequenceLayout,
        probs: UnsafeMutablePointer<Float>, ctx: UnsafeMutablePointer<Float>, heads: Int, headDim: Int,
        kvHeads: Int? = nil, causal: Bool = false,
        dropout: (
            p: Float, seed: UInt64, mask: UnsafeMutablePointer<Float>, dropped: UnsafeMutablePointer<Float>,
            exampleKeys: [UInt64]
        )? = nil
    ) {
        let shape = geometry(heads: heads, headDim: headDim, kvHeads: kvHeads)
        layout.keyMask.withOptionalPointer { keyMask in
            layout.forEachHead(heads: heads, headDim: headDim) { b, L, off, po, bh, _ in
                let kvOffset = layout.starts[b] * shape.kvWidth + (bh % heads) / shape.group * headDim
                let p = probs + po
                probabilities(
                    q: q + off, k: k + kvOffset, into: p, length: L, headDim: headDim, shape: shape,
                    keyMask: keyMask.map { $0 + layout.starts[b] }, causal: causal)
                var used = UnsafePointer(p)
                if let dropout {
                    // Row q of head h of example b keyed by (example, head, q): masks independent of the batch.
                    let example = dropout.exampleKeys[b]
                    let head = bh % heads
                    Ops.dropoutRowsForward(
                        x: p, y: dropout.dropped + po, mask: dropout.mask + po, rows: L, width: L, p: dropout.p,
                        seed: dropout.seed, parallel: false
                    ) { DropoutKeys.attention(example: example, head: head, query: $0) }
                    used = UnsafePointer(dropout.dropped + po)
                }
                BLAS.sgemm(
                    m: L, n: headDim, k: L, a: used, lda: L, b: v + kvOffset, ldb: shape.kvWidth, c: ctx + off,
                    ldc: shape.queryWidth)
            }
        }
    }

    /// `forward` without dropout that keeps no probabilities: each core computes a head's `length²` matrix in its
    /// share of `scratch` (`recomputeScratchCount` floats), and `backwardRecomputing` computes it again. Memory
    /// grows with the longest sequence squared times the cores, not times the heads, sequences and layers.
    public static func forwardRecomputing(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, layout: SequenceLayout,
        ctx: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, heads: Int, headDim: Int,
        kvHeads: Int? = nil, causal: Bool = false
    ) {
        let shape = geometry(heads: heads, headDim: headDim, kvHeads: kvHeads)
        let share = 2 * layout.maxLength * layout.maxLength
        layout.keyMask.withOptionalPointer { keyMask in
            layout.forEachHead(heads: heads, headDim: headDim) { b, L, off, _, bh, chunk in
                let kvOffset = layout.starts[b] * shape.kvWidth + (bh % heads) / shape.group * headDim
                let p = scratch + chunk * share
                probabilities(
                    q: q + off, k: k + kvOffset, into: p, length: L, headDim: headDim, shape: shape,
                    keyMask: keyMask.map { $0 + layout.starts[b] }, causal: causal)
                BLAS.sgemm(
                    m: L, n: headDim, k: L, a: p, lda: L, b: v + kvOffset, ldb: shape.kvWidth, c: ctx + off,
                    ldc: shape.queryWidth)
            }
        }
    }

    /// Floats of scratch `forwardRecomputing` and `backwardRecomputing` use: two `maxLength²` matrices per core.
    public static func recomputeScratchCount(layout: SequenceLayout, heads: Int) -> Int {
        layout.headChunkCount(heads: heads) * 2 * layout.maxLength * layout.maxLength
    }

    /// One head's `length x length` probabilities `softmax(scale · Q Kᵀ + mask)` into `p`; `q` and `k` point at
    /// the head's first element.
    @inline(__always)
    static func probabilities(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, into p: UnsafeMutablePointer<Float>, length L: Int,
        headDim: Int, shape: Shape, keyMask: UnsafePointer<Float>?, causal: Bool
    ) {
        BLAS.sgemm(
            transB: true, m: L, n: L, k: headDim, alpha: shape.scale, a: q, lda: shape.queryWidth, b: k,
            ldb: shape.kvWidth, c: p, ldc: L)
        if causal {
            causalSoftmax(p, length: L, keyMask: keyMask)
        } else {
            Ops.softmaxRows(p, rows: L, d: L, keyMask: keyMask)
        }
    }

    typealias Shape = (queryWidth: Int, kvHeadCount: Int, kvWidth: Int, group: Int, scale: Float)

    /// Row widths of Q and of K/V, key/value heads, query heads per key/value head and the score scale.
    static func geometry(
        heads: Int, headDim: Int, kvHeads: Int?
    ) -> Shape {
        let kvHeadCount = kvHeads ?? heads
        precondition(
            kvHeadCount > 0 && heads % kvHeadCount == 0,
            "attention: \(heads) query heads, \(kvHeadCount) key/value heads")
        let scale = 1 / Float(headDim).squareRoot()
        return (heads * headDim, kvHeadCount, kvHeadCount * headDim, heads / kvHeadCount, scale)
    }

    /// Row `i` of the `length x length` scores becomes a softmax over keys `0...i`; the keys after it get 0.
    static func causalSoftmax(_ scores: UnsafeMutablePointer<Float>, length: Int, keyMask: UnsafePointer<Float>?) {
        for row in 0..<length {
            let rowStart = scores + row * length
            Ops.softmaxRows(rowStart, rows: 1, d: row + 1, keyMask: keyMask)
            (rowStart + row + 1).update(repeating: 0, count: length - row - 1)
        }
    }

    /// Backward (with the same dropout mask and dropped probabilities as forward, if any): writes `dq`
    /// (`[tokens, heads·headDim]`), `dk` and `dv` (`[tokens, kvHeads·headDim]`) from `dctx`; `scratch` holds
    /// `layout.probCount(heads:)` floats. The query heads of a group add their parts to the group's `dk` and `dv`.
    public static func backward(
        dctx: UnsafePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
        probs: UnsafePointer<Float>, dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>,
        dv: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, layout: SequenceLayout, heads: Int,
        headDim: Int,
        kvHeads: Int? = nil, dropout: (mask: UnsafePointer<Float>, dropped: UnsafePointer<Float>)? = nil
    ) {
        let shape = geometry(heads: heads, headDim: headDim, kvHeads: kvHeads)
        let gradients = Gradients(dctx: dctx, q: q, k: k, v: v, dq: dq, dk: dk, dv: dv)
        forEachGroupMember(layout: layout, heads: heads, headDim: headDim, shape: shape) {
            b, L, off, kvOffset, head, _ in
            let po = layout.probOffset(b, head: head, heads: heads)
            let dp = scratch + po
            headBackward(
                gradients, probabilities: probs + po, used: (dropout?.dropped ?? probs) + po, dp: dp, length: L,
                offset: off, kvOffset: kvOffset, accumulate: head % shape.group != 0, headDim: headDim, shape: shape,
                dropoutMask: dropout.map { $0.mask + po })
        }
    }

    /// Backward of `forwardRecomputing` (same arguments, same `scratch` size): each head's probabilities are
    /// computed again, exactly as forward computed them, before its gradients.
    public static func backwardRecomputing(
        dctx: UnsafePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
        dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
        scratch: UnsafeMutablePointer<Float>, layout: SequenceLayout, heads: Int, headDim: Int, kvHeads: Int? = nil,
        causal: Bool = false
    ) {
        let shape = geometry(heads: heads, headDim: headDim, kvHeads: kvHeads)
        let gradients = Gradients(dctx: dctx, q: q, k: k, v: v, dq: dq, dk: dk, dv: dv)
        let share = 2 * layout.maxLength * layout.maxLength
        layout.keyMask.withOptionalPointer { keyMask in
            forEachGroupMember(layout: layout, heads: heads, headDim: headDim, shape: shape) {
                b, L, off, kvOffset, head, chunk in
                let p = scratch + chunk * share
                let dp = p + L * L
                probabilities(
                    q: q + off, k: k + kvOffset, into: p, length: L, headDim: headDim, shape: shape,
                    keyMask: keyMask.map { $0 + layout.starts[b] }, causal: causal)
                headBackward(
                    gradients, probabilities: p, used: p, dp: dp, length: L, offset: off, kvOffset: kvOffset,
                    accumulate: head % shape.group != 0, headDim: headDim, shape: shape, dropoutMask: nil)
            }
        }
    }

    /// The activations and gradients of a backward pass.
    struct Gradients {
        let dctx: UnsafePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>
        let dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>
    }

    /// Calls `body(b, length, queryOffset, kvOffset, head, chunk)` for every query head, one task per (sequence,
    /// key/value head) whose group's query heads run in turn, so no two tasks write the same rows of dk and dv.
    static func forEachGroupMember(
        layout: SequenceLayout, heads: Int, headDim: Int, shape: Shape,
        _ body: (_ b: Int, _ length: Int, _ offset: Int, _ kvOffset: Int, _ head: Int, _ chunk: Int) -> Void
    ) {
        layout.forEachHead(heads: shape.kvHeadCount, headDim: headDim) { b, L, kvOffset, _, _, chunk in
            let kvHead = (kvOffset - layout.starts[b] * shape.kvWidth) / headDim
            for member in 0..<shape.group {
                let head = kvHead * shape.group + member
                body(b, L, layout.starts[b] * shape.queryWidth + head * headDim, kvOffset, head, chunk)
            }
        }
    }

    /// One query head's part of the backward pass given its probabilities (`used`: after dropout) and a
    /// `length²` buffer `dp`; the first head of a group writes dk and dv, the others add to them.
    @inline(__always)
    static func headBackward(
        _ g: Gradients, probabilities: UnsafePointer<Float>, used: UnsafePointer<Float>,
        dp: UnsafeMutablePointer<Float>, length L: Int, offset off: Int, kvOffset: Int, accumulate: Bool,
        headDim: Int, shape: Shape, dropoutMask: UnsafePointer<Float>?
    ) {
        let beta: Float = accumulate ? 1 : 0
        // dP = dctx · Vᵀ ; dV (+)= Pᵀ · dctx
        BLAS.sgemm(
            transB: true, m: L, n: L, k: headDim, a: g.dctx + off, lda: shape.queryWidth, b: g.v + kvOffset,
            ldb: shape.kvWidth, c: dp, ldc: L)
        BLAS.sgemm(
            transA: true, m: L, n: headDim, k: L, a: used, lda: L, b: g.dctx + off, ldb: shape.queryWidth,
            beta: beta, c: g.dv + kvOffset, ldc: shape.kvWidth)
        if let dropoutMask { Ops.dropoutBackward(dy: dp, mask: dropoutMask, dx: dp, count: L * L) }
        Ops.softmaxBackwardRows(p: probabilities, dp: dp, dx: dp, rows: L, d: L)
        // dQ = scale · dS · K ; dK (+)= scale · dSᵀ · Q
        BLAS.sgemm(
            m: L, n: headDim, k: L, alpha: shape.scale, a: dp, lda: L, b: g.k + kvOffset, ldb: shape.kvWidth,
            c: g.dq + off, ldc: shape.queryWidth)
        BLAS.sgemm(
            transA: true, m: L, n: headDim, k: L, alpha: shape.scale, a: dp, lda: L, b: g.q + off,
            ldb: shape.queryWidth, beta: beta, c: g.dk + kvOffset, ldc: shape.kvWidth)
    }
}

extension Optional where Wrapped == [Float] {
    /// Calls `body` with a pointer to the array's elements, or nil.
    @inline(__always) func withOptionalPointer<R>(_ body: (UnsafePointer<Float>?) throws -> R) rethrows -> R {
        switch self {
        case .some(let a): return try a.withUnsafeBufferPointer { try body($0.baseAddress) }
        case .none: return try body(nil)
        }
    }
}
