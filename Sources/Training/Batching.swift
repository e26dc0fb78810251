import Data
import Foundation
import RankwiseCore
import Models
import Tokenizers

/// A dataset turned into token ids once.
public struct TokenizedSet: Sendable {
    public var ids: [[Int32]]
    public var types: [[Int32]]
    public var labels: [Int32]
    public var targets: [Float]
    public var regression: Bool
    /// Causal language modelling: each example's next-token target at each position (-1: none); empty otherwise.
    public var tokenTargets: [[Int32]] = []
    public var count: Int { ids.count }
    /// True for a causal-LM set (next-token targets instead of one label per example).
    public var isLanguageModel: Bool { !tokenTargets.isEmpty }

    public init(ids: [[Int32]], types: [[Int32]], labels: [Int32], targets: [Float], regression: Bool) {
        self.ids = ids
        self.types = types
        self.labels = labels
        self.targets = targets
        self.regression = regression
    }

    public init(_ ds: Dataset, tokenizer: Tokenizer, maxLength: Int) {
        var ids: [[Int32]] = []
        var types: [[Int32]] = []
        ids.reserveCapacity(ds.examples.count)
        types.reserveCapacity(ds.examples.count)
        for e in ds.examples {
            let enc = tokenizer.encode(e.text, pair: e.pair, maxLength: maxLength)
            ids.append(enc.ids.map(Int32.init))
            types.append(enc.typeIds.map(Int32.init))
        }
        self.ids = ids
        self.types = types
        labels = ds.examples.map { Int32($0.label) }
        targets = ds.examples.map(\.target)
        regression = ds.regression
    }

    /// A causal-LM set of examples' token ids and which tokens are learnt (`isTarget[e][i]`: token `i` counts in
    /// the loss, predicted from position `i - 1`).
    public init(languageModel ids: [[Int32]], isTarget: [[Bool]]) {
        precondition(ids.count == isTarget.count && zip(ids, isTarget).allSatisfy { $0.count == $1.count })
        self.ids = ids
        types = ids.map { [Int32](repeating: 0, count: $0.count) }
        labels = [Int32](repeating: 0, count: ids.count)
        targets = [Float](repeating: 0, count: ids.count)
        regression = false
        tokenTargets = zip(ids, isTarget).map { exampleIds, learnt in
            exampleIds.indices.map { position in
                position + 1 < exampleIds.count && learnt[position + 1] ? exampleIds[position + 1] : -1
            }
        }
    }

    /// Target tokens over the whole set (causal LM).
    public var targetTokenCount: Int { tokenTargets.reduce(0) { $0 + $1.filter { $0 >= 0 }.count } }

    /// Token-count percentiles (p50, p90, p99, max).
    public var lengthPercentiles: [Int] {
        let l = ids.map(\.count).sorted()
        guard !l.isEmpty else { return [0, 0, 0, 0] }
        return [0.5, 0.9, 0.99].map { l[min(l.count - 1, Int(Double(l.count) * $0))] } + [l.last!]
    }

    /// A batch of the given example indices: packed (no padding, variable-length attention) or
    /// padded to the longest.
    /// The examples `idx` as one batch; each sequence's dropout key is its example's index here.
    public func batch(_ idx: [Int], packed: Bool = false, padId: Int32 = 0) -> LabelledBatch {
        if packed {
            var input = TokenBatch(packed: idx.map { ids[$0] }, typeIds: idx.map { types[$0] })
            input.exampleKeys = idx.map { UInt64($0) }
            return LabelledBatch(
                tokens: input, labels: idx.map { labels[$0] }, targets: idx.map { targets[$0] },
                tokenTargets: isLanguageModel ? idx.flatMap { tokenTargets[$0] } : [], realTokens: input.ids.count)
        }
        let T = idx.map { ids[$0].count }.max() ?? 0
        var bid = [Int32](repeating: padId, count: idx.count * T)
        var bt = [Int32](repeating: 0, count: idx.count * T)
        var mask = [Float](repeating: 0, count: idx.count * T)
        var paddedTargets = [Int32](repeating: -1, count: isLanguageModel ? idx.count * T : 0)
        var real = 0
        for (r, i) in idx.enumerated() {
            for (j, t) in ids[i].enumerated() {
                bid[r * T + j] = t
                bt[r * T + j] = types[i][j]
                mask[r * T + j] = 1
                if isLanguageModel { paddedTargets[r * T + j] = tokenTargets[i][j] }
            }
            real += ids[i].count
        }
        var input = TokenBatch(batch: idx.count, seq: T, ids: bid, typeIds: bt, mask: mask)
        input.exampleKeys = idx.map { UInt64($0) }
        return LabelledBatch(
            tokens: input, labels: idx.map { labels[$0] }, targets: idx.map { targets[$0] },
            tokenTargets: paddedTargets,
            realTokens: real)
    }
}

/// Seeded, length-bucketed batch order: each epoch shuffles the examples with (seed, epoch), sorts
/// windows of `bucket` batches by length so a batch pads little, and shuffles the batch order.
/// The plan depends only on (seed, epoch), so a resumed run replays it exactly.
public enum BatchPlan {
    public static func epoch(
        count n: Int, lengths: [Int], batchSize: Int, seed: UInt64, epoch: Int, bucket: Int = 50, shuffle: Bool = true
    ) -> [[Int]] {
        var order = Array(0..<n)
        var rng = SplitMix64(seed: seed &* 0x2545_F491_4F6C_DD1D &+ UInt64(epoch) &+ 1)
        if shuffle { rng.shuffle(&order) }
        var batches: [[Int]] = []
        let window = max(1, batchSize * bucket)
        for start in stride(from: 0, to: n, by: window) {
            let chunk = order[start..<min(n, start + window)].sorted {
                lengths[$0] < lengths[$1] || (lengths[$0] == lengths[$1] && $0 < $1)
            }
            for b in stride(from: 0, to: chunk.count, by: batchSize) {
                batches.append(Array(chunk[b..<min(chunk.count, b + batchSize)]))
            }
        }
        if shuffle { rng.shuffle(&batches) }
        return batches
    }
}
