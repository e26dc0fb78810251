import Foundation
import RankwiseCore

/// A token batch and what each example is trained toward: a class id (classification), a value (regression) or
/// the next token at each position (causal language modelling). The task head reads the one it learns.
public struct LabelledBatch: Sendable {
    public var tokens: TokenBatch
    public var labels: [Int32]
    public var targets: [Float]
    /// `[tokens.ids.count]`: the next-token target of each token row (-1: none); empty for sequence tasks.
    public var tokenTargets: [Int32]
    /// Tokens that are not padding.
    public var realTokens: Int

    public init(tokens: TokenBatch, labels: [Int32], targets: [Float], tokenTargets: [Int32] = [], realTokens: Int) {
        self.tokens = tokens
        self.labels = labels
        self.targets = targets
        self.tokenTargets = tokenTargets
        self.realTokens = realTokens
    }

    /// Every target the batch has, for whichever head runs on it.
    public var headTargets: HeadTargets {
        HeadTargets(classes: labels, values: targets, tokens: tokenTargets.isEmpty ? nil : tokenTargets)
    }
}

/// A batch of token ids for a backbone: padded (`[batch, seq]` row-major, a mask marking real
/// tokens) or packed (the sequences' tokens back to back, no padding; see `SequenceLayout`).
public struct TokenBatch: Sendable {
    /// Sequences in the batch.
    public var batch: Int
    /// Padded: tokens per row. Packed: the longest sequence.
    public var seq: Int
    /// `[layout.tokens]`
    public var ids: [Int32]
    public var typeIds: [Int32]
    /// `[layout.tokens]`: 1 for real tokens, 0 for padding (all 1 when packed).
    public var mask: [Float]
    public var layout: SequenceLayout
    /// One key per sequence for its dropout masks (`DropoutKeys`): the example's index in its data set when the
    /// batch comes from one, so that an example's masks do not depend on the batch it is in; else 0, 1, 2, ...
    public var exampleKeys: [UInt64]

    /// A padded batch.
    public init(batch: Int, seq: Int, ids: [Int32], typeIds: [Int32]? = nil, mask: [Float]? = nil) {
        self.batch = batch
        self.seq = seq
        self.ids = ids
        self.typeIds = typeIds ?? [Int32](repeating: 0, count: ids.count)
        self.mask = mask ?? [Float](repeating: 1, count: ids.count)
        layout = .padded(batch: batch, seq: seq, mask: self.mask)
        exampleKeys = (0..<batch).map { UInt64($0) }
    }

    /// A packed batch: no padding, each sequence attends over its own tokens only.
    public init(packed ids: [[Int32]], typeIds: [[Int32]]? = nil) {
        layout = .packed(lengths: ids.map(\.count))
        batch = ids.count
        seq = layout.maxLength
        self.ids = ids.flatMap { $0 }
        self.typeIds = typeIds.map { $0.flatMap { $0 } } ?? [Int32](repeating: 0, count: self.ids.count)
        mask = [Float](repeating: 1, count: self.ids.count)
        exampleKeys = (0..<batch).map { UInt64($0) }
    }

    /// The same sequences without their padding (a packed batch stays as it is).
    public func unpadded() -> TokenBatch {
        if layout.isPacked { return self }
        let rows = (0..<batch).map { b in (0..<seq).filter { mask[b * seq + $0] != 0 }.map { b * seq + $0 } }
        var packed = TokenBatch(packed: rows.map { $0.map { ids[$0] } }, typeIds: rows.map { $0.map { typeIds[$0] } })
        packed.exampleKeys = exampleKeys
        return packed
    }
}
