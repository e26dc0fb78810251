import Foundation

/// Byte-pair encoding by merge rank, as Hugging Face's `BPE` model and llama.cpp's byte-level vocabularies: a word
/// starts as its characters and the adjacent pair whose merge ranks first is merged (leftmost on a tie) until no
/// adjacent pair has a merge.
public struct BPE: TokenizerModel {
    public let vocabulary: [String: Int]
    public let tokens: [String]
    /// (left id << 32 | right id) → (rank, merged id).
    let merges: [UInt64: (rank: Int, merged: Int)]
    /// The id of an unknown character, when the vocabulary has one (byte-level vocabularies need none).
    public let unknownId: Int?
    /// A word that is a token of its own is that token, merges or not (`ignore_merges` of LLaMA-3's tokenizer).
    public let ignoreMerges: Bool

    /// `tokens[i]` is token i's text; `merges` are "left right" pairs, best first. A merge whose parts or result is
    /// not in the vocabulary is an error naming it.
    public init(tokens: [String], merges mergeLines: [String], unknownToken: String? = nil) throws {
        var pairs: [(String, String)] = []
        pairs.reserveCapacity(mergeLines.count)
        for (rank, line) in mergeLines.enumerated() {
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2 else {
                throw TokenizerError.invalid("merge \(rank) \"\(line)\" is not two tokens separated by one space")
            }
            pairs.append((String(parts[0]), String(parts[1])))
        }
        try self.init(tokens: tokens, mergePairs: pairs, unknownToken: unknownToken)
    }

    /// The same from (left, right) pairs, best first.
    public init(
        tokens: [String], mergePairs: [(String, String)], unknownToken: String? = nil, ignoreMerges: Bool = false
    ) throws {
        var vocabulary: [String: Int] = [:]
        vocabulary.reserveCapacity(tokens.count)
        for (id, token) in tokens.enumerated() where vocabulary[token] == nil { vocabulary[token] = id }
        var merges: [UInt64: (rank: Int, merged: Int)] = [:]
        merges.reserveCapacity(mergePairs.count)
        for (rank, (left, right)) in mergePairs.enumerated() {
            guard let leftId = vocabulary[left], let rightId = vocabulary[right],
                let mergedId = vocabulary[left + right]
            else {
                throw TokenizerError.invalid(
                    "merge \(rank) \"\(left) \(right)\" names a token the vocabulary does not have")
            }
            let key = UInt64(leftId) << 32 | UInt64(rightId)
            if merges[key] == nil { merges[key] = (rank, mergedId) }
        }
        self.vocabulary = vocabulary
        self.tokens = tokens
        self.merges = merges
        self.ignoreMerges = ignoreMerges
        unknownId = unknownToken.flatMap { vocabulary[$0] }
    }

    public var vocabularySize: Int { tokens.count }
    public func id(of token: String) -> Int? { vocabulary[token] }
    public func token(of id: Int) -> String? { id >= 0 && id < tokens.count ? tokens[id] : nil }

    public func tokenize(word: String) -> [Int] {
        if let whole = vocabulary[word], ignoreMerges || word.unicodeScalars.count == 1 { return [whole] }
        var symbols: [Int] = []
        for character in word.unicodeScalars {
            if let id = vocabulary[String(character)] {
                symbols.append(id)
            } else if let unknownId {
                symbols.append(unknownId)
            }
        }
        guard symbols.count > 1 else { return symbols }
        // Symbols form a linked list; candidate merges wait in a heap ordered by (rank, position), so the lowest rank
        // merges first and the leftmost on a tie, in n log n steps (a rescan after every merge costs n²).
        var next = Array(1...symbols.count)
        next[symbols.count - 1] = -1
        var previous = Array(-1..<(symbols.count - 1))
        var alive = [Bool](repeating: true, count: symbols.count)
        var candidates = MergeHeap()
        func offer(_ left: Int) {
            let right = next[left]
            guard left >= 0, right >= 0 else { return }
            if let merge = merges[UInt64(symbols[left]) << 32 | UInt64(symbols[right])] {
                candidates.push(
                    MergeCandidate(rank: merge.rank, position: left, left: symbols[left], right: symbols[right]))
            }
        }
        for position in 0..<(symbols.count - 1) { offer(position) }
        while let candidate = candidates.pop() {
            let left = candidate.position
            let right = next[left]
            // A candidate is stale when either symbol has merged since it was offered.
            guard alive[left], right >= 0, symbols[left] == candidate.left, symbols[right] == candidate.right else {
                continue
            }
            symbols[left] = merges[UInt64(candidate.left) << 32 | UInt64(candidate.right)]!.merged
            alive[right] = false
            next[left] = next[right]
            if next[right] >= 0 { previous[next[right]] = left }
            offer(left)
            if previous[left] >= 0 { offer(previous[left]) }
        }
        var ids: [Int] = []
        var position = 0
        while position >= 0 {
            ids.append(symbols[position])
            position = next[position]
        }
        return ids
    }
}

/// A merge waiting to happen: its rank, the position of its left symbol, and the two ids it joins.
struct MergeCandidate {
    var rank: Int
    var position: Int
    var left: Int
    var right: Int

    func comesBefore(_ other: MergeCandidate) -> Bool {
        rank != other.rank ? rank < other.rank : position < other.position
    }
}

/// A binary min-heap of merge candidates.
struct MergeHeap {
    private var items: [MergeCandidate] = []

    mutating func push(_ item: MergeCandidate) {
        items.append(item)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child].comesBefore(items[parent]) else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> MergeCandidate? {
        guard let first = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1
                let right = left + 1
                var smallest = parent
                if left < items.count && items[left].comesBefore(items[smallest]) { smallest = left }
                if right < items.count && items[right].comesBefore(items[smallest]) { smallest = right }
                guard smallest != parent else { break }
                items.swapAt(parent, smallest)
                parent = smallest
            }
        }
        return first
    }
}

extension BPE {
    /// The BPE model of a tokenizer.json: `vocab` (token → id), `merges` as "left right" strings or [left, right]
    /// pairs, `ignore_merges`, `unk_token`. Added tokens beyond the vocabulary get their ids' slots, so `decode`
    /// finds them. Byte fallback, dropout and subword affixes (SentencePiece-style BPE) are refused by name.
    init(json: [String: Any], addedTokens: [(String, Int)], _ config: StageConfig) throws {
        guard let entries = json["vocab"] as? [String: Any] else { throw config.bad("BPE model has no vocab") }
        if json["byte_fallback"] as? Bool ?? false {
            throw config.bad("BPE with byte_fallback (SentencePiece-style, LLaMA-2) is not supported yet")
        }
        // Absent, null or "" (as transformers writes them) mean none.
        for key in ["continuing_subword_prefix", "end_of_word_suffix", "dropout"] {
            guard let value = json[key], !(value is NSNull), (value as? String)?.isEmpty != true else { continue }
            throw config.bad("BPE option \(key) \(value) is not supported yet")
        }
        let vocab = try denseVocabulary(entries, config)
        let count = max((vocab.values.max() ?? -1) + 1, (addedTokens.map(\.1).max() ?? -1) + 1)
        var tokens = [String](repeating: "", count: count)
        for (token, id) in vocab { tokens[id] = token }
        for (token, id) in addedTokens where tokens[id].isEmpty { tokens[id] = token }
        var pairs: [(String, String)] = []
        for (rank, merge) in (json["merges"] as? [Any] ?? []).enumerated() {
            if let line = merge as? String {
                let parts = line.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else {
                    throw config.bad("merge \(rank) \"\(line)\" is not two tokens separated by one space")
                }
                pairs.append((String(parts[0]), String(parts[1])))
            } else if let pair = merge as? [String], pair.count == 2 {
                pairs.append((pair[0], pair[1]))
            } else {
                throw config.bad("merge \(rank) is neither \"left right\" nor [left, right]")
            }
        }
        do {
            try self.init(
                tokens: tokens, mergePairs: pairs, unknownToken: json["unk_token"] as? String,
                ignoreMerges: json["ignore_merges"] as? Bool ?? false)
        } catch let error as TokenizerError {
            throw config.bad("\(error)")
        }
    }
}
