import Foundation

/// The third stage: turns one word into token ids. A BPE model (LLaMA-family tokenizers) is another
/// conformance to this protocol.
public protocol TokenizerModel: Sendable {
    func tokenize(word: String) -> [Int]
    func id(of token: String) -> Int?
    func token(of id: Int) -> String?
    var vocabularySize: Int { get }
}

/// Greedy longest-match-first WordPiece, as Hugging Face's `WordPiece` model.
public struct WordPiece: TokenizerModel {
    public let vocab: [String: Int]
    public let idToToken: [String]
    public let unkToken: String
    public let unkId: Int
    public let prefix: String
    public let maxInputCharsPerWord: Int

    public init(
        vocab: [String: Int], unkToken: String = "[UNK]", prefix: String = "##", maxInputCharsPerWord: Int = 100
    ) throws {
        guard let u = vocab[unkToken] else {
            throw TokenizerError.invalid("WordPiece vocabulary has no unknown token \"\(unkToken)\"")
        }
        if let bad = vocab.first(where: { $0.value < 0 || $0.value >= 2 * vocab.count + 1024 }) {
            throw TokenizerError.invalid(
                "WordPiece vocabulary: token \"\(bad.key)\" has id \(bad.value), outside 0..<\(2 * vocab.count + 1024)")
        }
        self.vocab = vocab
        var inv = [String](repeating: "", count: (vocab.values.max() ?? -1) + 1)
        for (k, v) in vocab where v >= 0 { inv[v] = k }
        idToToken = inv
        self.unkToken = unkToken
        unkId = u
        self.prefix = prefix
        self.maxInputCharsPerWord = maxInputCharsPerWord
    }

    public var vocabularySize: Int { idToToken.count }
    public func id(of token: String) -> Int? { vocab[token] }
    public func token(of id: Int) -> String? { id >= 0 && id < idToToken.count ? idToToken[id] : nil }

    public func tokenize(word: String) -> [Int] {
        let chars = Array(word.unicodeScalars)
        if chars.count > maxInputCharsPerWord { return [unkId] }
        var ids: [Int] = []
        var start = 0
        while start < chars.count {
            var end = chars.count
            var found: Int? = nil
            while start < end {
                var piece = start > 0 ? prefix : ""
                piece.unicodeScalars.append(contentsOf: chars[start..<end])
                if let id = vocab[piece] {
                    found = id
                    break
                }
                end -= 1
            }
            guard let id = found else { return [unkId] }
            ids.append(id)
            start = end
        }
        return ids
    }
}

extension WordPiece {
    /// The WordPiece model of a tokenizer.json.
    init(json: [String: Any], _ config: StageConfig) throws {
        guard let entries = json["vocab"] as? [String: Any] else { throw config.bad("WordPiece model has no vocab") }
        let vocab = try denseVocabulary(entries, config)
        try self.init(
            vocab: vocab, unkToken: json["unk_token"] as? String ?? "[UNK]",
            prefix: json["continuing_subword_prefix"] as? String ?? "##",
            maxInputCharsPerWord: (json["max_input_chars_per_word"] as? NSNumber)?.intValue ?? 100)
    }
}

/// A tokenizer.json vocabulary (token → id) with its ids checked: integers, and dense enough (0..<count in real
/// vocabularies) that a table indexed by id does not allocate a hostile file's idea of a size.
func denseVocabulary(_ entries: [String: Any], _ config: StageConfig) throws -> [String: Int] {
    var vocab: [String: Int] = [:]
    vocab.reserveCapacity(entries.count)
    for (token, value) in entries {
        guard let id = (value as? NSNumber)?.intValue else {
            throw config.bad("vocab entry \"\(token)\" is not an integer")
        }
        guard id >= 0, id < 2 * entries.count + 1024 else {
            throw config.bad(
                "vocab entry \"\(token)\" has id \(id), outside 0..<\(2 * entries.count + 1024) for \(entries.count) "
                    + "entries"
            )
        }
        vocab[token] = id
    }
    return vocab
}
