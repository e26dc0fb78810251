/// The last stage: adds special tokens and token type ids around one or two sequences.
public protocol PostProcessor: Sendable {
    /// Number of special tokens added for a single text (`pair == false`) or a pair.
    func addedTokens(pair: Bool) -> Int
    func process(_ a: [Int], _ b: [Int]?) -> (ids: [Int], typeIds: [Int], special: [Bool])
}

/// Hugging Face's `TemplateProcessing` (for BERT: `[CLS] $A [SEP]` and `[CLS] $A [SEP] $B:1 [SEP]:1`).
public struct TemplateProcessing: PostProcessor {
    public enum Piece: Sendable {
        case special(ids: [Int], typeId: Int)
        case sequence(first: Bool, typeId: Int)
    }
    public var single: [Piece]
    public var pair: [Piece]

    public init(single: [Piece], pair: [Piece]) {
        self.single = single
        self.pair = pair
    }

    public func addedTokens(pair isPair: Bool) -> Int {
        (isPair ? pair : single).reduce(0) { n, p in
            if case .special(let ids, _) = p { return n + ids.count }
            return n
        }
    }

    public func process(_ a: [Int], _ b: [Int]?) -> (ids: [Int], typeIds: [Int], special: [Bool]) {
        var ids: [Int] = []
        var types: [Int] = []
        var special: [Bool] = []
        for p in (b == nil ? single : pair) {
            switch p {
            case .special(let s, let t):
                ids += s
                types += Array(repeating: t, count: s.count)
                special += Array(repeating: true, count: s.count)
            case .sequence(let first, let t):
                let seq = first ? a : (b ?? [])
                ids += seq
                types += Array(repeating: t, count: seq.count)
                special += Array(repeating: false, count: seq.count)
            }
        }
        return (ids, types, special)
    }
}
