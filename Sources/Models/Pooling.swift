import Foundation
import RankwiseCore
import Tokenizers

/// How token states become one sentence vector.
public enum Pooling: String, Sendable, CaseIterable {
    /// Mask-weighted mean of the last hidden states (sentence-transformers' default).
    case mean
    /// The first ([CLS]) token's last hidden state.
    case cls

    /// Pools `[batch, seq, hidden]` into `[batch, hidden]` (row-major), optionally L2-normalised.
    public func apply(
        _ hidden: UnsafePointer<Float>, mask: [Float], batch: Int, seq: Int, dim: Int, normalize: Bool
    ) -> [Float] {
        apply(hidden, layout: .padded(batch: batch, seq: seq, mask: mask), dim: dim, normalize: normalize)
    }

    /// Pools each sequence's rows of `hidden` (`[layout.tokens, dim]`, padded or packed) into `[count, dim]`.
    public func apply(_ hidden: UnsafePointer<Float>, layout: SequenceLayout, dim: Int, normalize: Bool) -> [Float] {
        var out = [Float](repeating: 0, count: layout.count * dim)
        for b in 0..<layout.count {
            let first = layout.starts[b]
            switch self {
            case .cls:
                for j in 0..<dim { out[b * dim + j] = hidden[first * dim + j] }
            case .mean:
                var n: Float = 0
                for t in first..<(first + layout.lengths[b]) {
                    let m = layout.keyMask?[t] ?? 1
                    if m == 0 { continue }
                    n += m
                    let row = hidden + t * dim
                    for j in 0..<dim { out[b * dim + j] += m * row[j] }
                }
                let inv = 1 / max(n, 1e-9)
                for j in 0..<dim { out[b * dim + j] *= inv }
            }
            if normalize {
                var ss: Float = 0
                for j in 0..<dim { ss += out[b * dim + j] * out[b * dim + j] }
                let inv = 1 / max(ss.squareRoot(), 1e-12)
                for j in 0..<dim { out[b * dim + j] *= inv }
            }
        }
        return out
    }
}

/// Sentence embeddings from a model directory: tokenizer + encoder + pooling.
public final class SentenceEmbedder {
    public let model: any Backbone
    public let tokenizer: Tokenizer
    public let maxLength: Int
    public let pooling: Pooling
    public let normalize: Bool

    /// `maxLength` defaults to sentence-transformers' `max_seq_length` when the directory has
    /// `sentence_bert_config.json`, else to the model's position limit.
    public init(
        directory: String, pooling: Pooling = .mean, normalize: Bool = true, maxLength requested: Int? = nil
    ) throws {
        model = try BackboneFamilies.load(directory: directory, pooled: false)
        do { tokenizer = try Tokenizer(path: directory) } catch { throw ModelError("\(error)") }
        var ml = model.maxPositions
        let sbert = (directory as NSString).appendingPathComponent("sentence_bert_config.json")
        if let d = FileManager.default.contents(atPath: sbert),
            let o = (try? JSONSerialization.jsonObject(with: d)) as? [String: Any],
            let m = (o["max_seq_length"] as? NSNumber)?.intValue
        {
            ml = min(ml, m)
        }
        maxLength = min(requested ?? ml, model.maxPositions)
        self.pooling = pooling
        self.normalize = normalize
    }

    /// Embeds texts in one batch, `[texts.count][hidden]` flattened row-major.
    public func embed(_ texts: [String]) throws -> [Float] {
        if texts.isEmpty { return [] }
        let encs = texts.map { tokenizer.encode($0, maxLength: maxLength) }
        let out = try model.forward(
            TokenBatch(packed: encs.map { $0.ids.map(Int32.init) }, typeIds: encs.map { $0.typeIds.map(Int32.init) }))
        return pooling.apply(out.lastHidden, layout: out.layout, dim: out.hidden, normalize: normalize)
    }
}
