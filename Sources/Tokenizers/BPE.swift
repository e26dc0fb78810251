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

    /// `tokens[i]` is token i's text; `merges` are "left right" pairs, best first. A merge whose parts or result is
    /// not in the vocabulary is an error naming it.
    public init(tokens: [String], merges mergeLines: [String], unknownToken: String? = nil) throws {
        var vocabulary: [String: Int] = [:]
        vocabulary.reserveCapacity(tokens.count)
        for (id, token) in tokens.enumerated() where vocabulary[token] == nil { vocabulary[token] = id }
        var merges: [UInt64: (rank: Int, merged: Int)] = [:]
        merges.reserveCapacity(mergeLines.count)
        for (rank, line) in mergeLines.enumerated() {
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2 else {
                throw TokenizerError.invalid("merge \(rank) \"\(line)\" is not two tokens separated by one space")
            }
            let left = String(parts[0])
            let right = String(parts[1])
            guard let leftId = vocabulary[left], let rightId = vocabulary[right],
                let mergedId = vocabulary[left + right]
            else {
                throw TokenizerError.invalid("merge \(rank) \"\(line)\" names a token the vocabulary does not have")
            }
            let key = UInt64(leftId) << 32 | UInt64(rightId)
            if merges[key] == nil { merges[key] = (rank, mergedId) }
        }
        self.vocabulary = vocabulary
        self.tokens = tokens
        self.merges = merges
        unknownId = unknownToken.flatMap { vocabulary[$0] }
    }

    public var vocabularySize: Int { tokens.count }
    public func id(of token: String) -> Int? { vocabulary[token] }
    public func token(of id: Int) -> String? { id >= 0 && id < tokens.count ? tokens[id] : nil }

    public func tokenize(word: String) -> [Int] {
        if let whole = vocabulary[word], word.unicodeScalars.count == 1 { return [whole] }
        var symbols: [Int] = []
        for character in word.unicodeScalars {
            if let id = vocabulary[String(character)] {
                symbols.append(id)
            } else if let unknownId {
                symbols.append(unknownId)
            }
        }
        while symbols.count > 1 {
            var best: (position: Int, rank: Int, merged: Int)? = nil
            for position in 0..<(symbols.count - 1) {
                let key = UInt64(symbols[position]) << 32 | UInt64(symbols[position + 1])
                if let merge = merges[key], merge.rank < (best?.rank ?? Int.max) {
                    best = (position, merge.rank, merge.merged)
                }
            }
            guard let best else { break }
            symbols[best.position] = best.merged
            symbols.remove(at: best.position + 1)
        }
        return symbols
    }
}
