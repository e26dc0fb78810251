/// Dropout masks drawn from what a row of activations is, not from where it sits in a batch: each row (a token of an
/// example, an example's pooled vector, a query row of one head's attention) has a key, and its mask is the first
/// draws of a SplitMix64 stream seeded from the layer's seed and that key. So an example gets the same masks packed
/// or padded, alone or among others, and in one process or in a rank's share of a batch under MPI.
public enum DropoutKeys {
    /// The key of token `position` of the example keyed `example`.
    @inline(__always)
    public static func token(example: UInt64, position: Int) -> UInt64 {
        mix(example &* 0x9E37_79B9_7F4A_7C15 ^ mix(UInt64(truncatingIfNeeded: position) &+ 0x5851_F42D_4C95_7F2D))
    }

    /// The key of an example's pooled row (a sequence head's input).
    public static func pooled(example: UInt64) -> UInt64 { token(example: example, position: -1) }

    /// The key of query row `query` of head `head` of an example's attention probabilities.
    public static func attention(example: UInt64, head: Int, query: Int) -> UInt64 {
        mix(token(example: example, position: query) ^ mix(UInt64(head) &+ 0xA076_1D64_78BD_642F))
    }

    /// The seed of one row's stream of draws under a layer's `seed`.
    @inline(__always)
    public static func rowSeed(_ seed: UInt64, key: UInt64) -> UInt64 { mix(seed ^ mix(key)) }

    /// The keys of every token row of a batch: row `starts[b] + t` is token t of sequence b, whose example is keyed
    /// `exampleKeys[b]` (padding rows get their position's key too; their activations are never used).
    public static func tokenRows(_ layout: SequenceLayout, exampleKeys: [UInt64]) -> [UInt64] {
        precondition(exampleKeys.count == layout.count, "one key per sequence")
        var keys = [UInt64](repeating: 0, count: layout.tokens)
        for sequence in 0..<layout.count {
            for position in 0..<layout.lengths[sequence] {
                keys[layout.starts[sequence] + position] = token(example: exampleKeys[sequence], position: position)
            }
        }
        return keys
    }

    /// SplitMix64's first output from `value` (its output function: a bijection with full avalanche).
    @inline(__always)
    static func mix(_ value: UInt64) -> UInt64 {
        var random = SplitMix64(seed: value)
        return random.next()
    }
}

extension Ops {
    /// Dropout over `rows` rows of `width` (`y` may be `x`): row r's mask is the first `width` draws of
    /// `SplitMix64(seed: DropoutKeys.rowSeed(seed, key: key(r)))`, element j kept when draw j's `nextFloat()` is at
    /// least p (the draws `InputDropout` makes for a row of the same key). `mask` receives 1/(1-p) or 0. Rows run on
    /// every core when `parallel`.
    public static func dropoutRowsForward(
        x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<Float>, rows: Int,
        width: Int, p: Float, seed: UInt64, parallel: Bool = true, key: (Int) -> UInt64
    ) {
        let scale: Float = p >= 1 ? 0 : 1 / (1 - p)
        func drop(_ range: Range<Int>) {
            for row in range {
                var random = SplitMix64(seed: DropoutKeys.rowSeed(seed, key: key(row)))
                let base = row * width
                for j in 0..<width {
                    let keep = random.nextFloat() >= p
                    mask[base + j] = keep ? scale : 0
                    y[base + j] = x[base + j] * mask[base + j]
                }
            }
        }
        if parallel {
            parallelFor(rows, minChunk: Swift.max(1, 4096 / Swift.max(width, 1))) { drop($0) }
        } else {
            drop(0..<rows)
        }
    }
}

/// A reusable buffer of row keys (`DropoutKeys`) for one forward pass: valid until the next `set`.
public final class RowKeyScratch: @unchecked Sendable {
    private var keys: UnsafeMutablePointer<UInt64>
    private var capacity = 1
    public init() { keys = UnsafeMutablePointer<UInt64>.allocate(capacity: 1) }
    deinit { keys.deallocate() }

    /// Stores `newKeys` and returns a pointer to them.
    public func set(_ newKeys: [UInt64]) -> UnsafePointer<UInt64> {
        if newKeys.count > capacity {
            keys.deallocate()
            keys = UnsafeMutablePointer<UInt64>.allocate(capacity: newKeys.count)
            capacity = newKeys.count
        }
        newKeys.withUnsafeBufferPointer { source in
            if let base = source.baseAddress { keys.update(from: base, count: source.count) }
        }
        return UnsafePointer(keys)
    }
}
