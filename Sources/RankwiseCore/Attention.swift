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

    /// Calls `body(length, offset, probOffset)` for every non-empty (sequence, head) pair: `offset` is the
    /// head's first element in a `[tokens, heads·headDim]` activation, `probOffset` its probabilities'.
    /// The pairs are independent: they are split over the cores, one BLAS thread each.
    func forEachHead(
        heads: Int, headDim: Int,
        _ body: (_ b: Int, _ length: Int, _ offset: Int, _ probOffset: Int, _ index: Int) -> Void
    ) {
        BLAS.singleThreaded {
            parallelFor(count * heads, minChunk: 4) { range in
                for bh in range {
                    let b = bh / heads
                    let hd = bh % heads
                    let L = lengths[b]
                    if L > 0 {
                        body(
                            b, L, starts[b] * heads * headDim + hd * headDim, probOffset(b, head: hd, heads: heads), bh)
                    }
                }
            }
        }
    }

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
    /// Per sequence and head: `probs = softmax(scale · Q Kᵀ + mask)`, `ctx = probs · V`.
    public static func forward(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, layout: SequenceLayout,
        probs: UnsafeMutablePointer<Float>, ctx: UnsafeMutablePointer<Float>, heads: Int, headDim: Int,
        kvHeads: Int? = nil, causal: Bool = false,
        dropout: (p: Float, seed: UInt64, mask: UnsafeMutablePointer<Float>, dropped: UnsafeMutablePointer<Float>)? =
            nil
    ) {
        let (queryWidth, kvHeadCount, kvWidth, group, scale) = shape(heads: heads, headDim: headDim, kvHeads: kvHeads)
        layout.keyMask.withOptionalPointer { keyMask in
            layout.forEachHead(heads: heads, headDim: headDim) { b, L, off, po, bh in
                let kvOffset = layout.starts[b] * kvWidth + (bh % heads) / group * headDim
                let p = probs + po
                BLAS.sgemm(
                    transB: true, m: L, n: L, k: headDim, alpha: scale, a: q + off, lda: queryWidth,
                    b: k + kvOffset, ldb: kvWidth, c: p, ldc: L)
                let sequenceMask = keyMask.map { $0 + layout.starts[b] }
                if causal {
                    causalSoftmax(p, length: L, keyMask: sequenceMask)
                } else {
                    Ops.softmaxRows(p, rows: L, d: L, keyMask: sequenceMask)
                }
                var used = UnsafePointer(p)
                if let dropout {
                    Ops.dropoutForward(
                        x: p, y: dropout.dropped + po, mask: dropout.mask + po, count: L * L, p: dropout.p,
                        seed: dropout.seed &+ UInt64(bh) &* 0x9E37_79B9)
                    used = UnsafePointer(dropout.dropped + po)
                }
                BLAS.sgemm(
                    m: L, n: headDim, k: L, a: used, lda: L, b: v + kvOffset, ldb: kvWidth, c: ctx + off,
                    ldc: queryWidth)
            }
        }
    }

    /// Row widths of Q and of K/V, key/value heads, query heads per key/value head and the score scale.
    static func shape(
        heads: Int, headDim: Int, kvHeads: Int?
    )
        -> (queryWidth: Int, kvHeadCount: Int, kvWidth: Int, group: Int, scale: Float)
    {
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
        let (queryWidth, kvHeadCount, kvWidth, group, scale) = shape(heads: heads, headDim: headDim, kvHeads: kvHeads)
        let used = dropout?.dropped ?? probs
        // One task per (sequence, key/value head): the group's query heads run in turn, so no two tasks write
        // the same rows of dk and dv.
        layout.forEachHead(heads: kvHeadCount, headDim: headDim) { b, L, kvOffset, _, _ in
            let kvHead = (kvOffset - layout.starts[b] * kvWidth) / headDim
            for member in 0..<group {
                let head = kvHead * group + member
                let off = layout.starts[b] * queryWidth + head * headDim
                let po = layout.probOffset(b, head: head, heads: heads)
                let p = used + po
                let dp = scratch + po
                let accumulate: Float = member == 0 ? 0 : 1
                // dP = dctx · Vᵀ ; dV (+)= Pᵀ · dctx
                BLAS.sgemm(
                    transB: true, m: L, n: L, k: headDim, a: dctx + off, lda: queryWidth, b: v + kvOffset, ldb: kvWidth,
                    c: dp, ldc: L)
                BLAS.sgemm(
                    transA: true, m: L, n: headDim, k: L, a: p, lda: L, b: dctx + off, ldb: queryWidth,
                    beta: accumulate, c: dv + kvOffset, ldc: kvWidth)
                if let dropout { Ops.dropoutBackward(dy: dp, mask: dropout.mask + po, dx: dp, count: L * L) }
                Ops.softmaxBackwardRows(p: probs + po, dp: dp, dx: dp, rows: L, d: L)
                // dQ = scale · dS · K ; dK (+)= scale · dSᵀ · Q
                BLAS.sgemm(
                    m: L, n: headDim, k: L, alpha: scale, a: dp, lda: L, b: k + kvOffset, ldb: kvWidth,
                    c: dq + off, ldc: queryWidth)
                BLAS.sgemm(
                    transA: true, m: L, n: headDim, k: L, alpha: scale, a: dp, lda: L, b: q + off, ldb: queryWidth,
                    beta: accumulate, c: dk + kvOffset, ldc: kvWidth)
            }
        }
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
