import Foundation

public enum TokenizerError: Error, CustomStringConvertible {
    case invalid(String)
    public var description: String {
        if case .invalid(let m) = self { return m }
        return ""
    }
}

/// One encoded text (or text pair).
public struct Encoding: Sendable, Equatable {
    public var ids: [Int]
    public var typeIds: [Int]
    public var attentionMask: [Int]
    public var specialTokensMask: [Int]
}

/// A padded batch, flattened row-major `[batch, seqLen]`.
public struct EncodedBatch: Sendable {
    public var batch: Int
    public var seqLen: Int
    public var ids: [Int32]
    public var typeIds: [Int32]
    public var attentionMask: [Float]
}

/// A tokenizer assembled from a Hugging Face `tokenizer.json`: normalizer → pre-tokenizer → model →
/// post-processor, plus added (special) tokens matched verbatim before normalisation.
public struct Tokenizer: Sendable {
    public var normalizer: Normalizer?
    public var preTokenizer: PreTokenizer
    public var model: TokenizerModel
    public var postProcessor: PostProcessor?
    /// Added tokens that are matched in raw text (content → id), longest first.
    public var addedTokens: [(String, Int)]
    public var padId: Int
    public var padTypeId: Int
    /// How ids become text again.
    public var decoder: TokenDecoder
    /// The added tokens `decode` drops when asked to skip special tokens (default: every added token).
    public var specialTokenIds: Set<Int>

    public init(
        normalizer: Normalizer?, preTokenizer: PreTokenizer, model: TokenizerModel,
        postProcessor: PostProcessor?, addedTokens: [(String, Int)] = [], padId: Int = 0, padTypeId: Int = 0,
        decoder: TokenDecoder = .wordPiece(prefix: "##"), specialTokenIds: Set<Int>? = nil
    ) {
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.model = model
        self.postProcessor = postProcessor
        // An empty added token would match everywhere (and cannot be matched scalar by scalar): it is dropped.
        let nonEmpty = addedTokens.filter { !$0.0.isEmpty }
        self.addedTokens = nonEmpty.sorted { $0.0.unicodeScalars.count > $1.0.unicodeScalars.count }
        self.specialTokenIds = specialTokenIds ?? Set(nonEmpty.map(\.1))
        self.padId = padId
        self.padTypeId = padTypeId
        self.decoder = decoder
    }

    /// Loads `tokenizer.json` from a file or from a model directory containing one.
    public init(path: String) throws {
        var isDir: ObjCBool = false
        var file = path
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            file = (path as NSString).appendingPathComponent("tokenizer.json")
        }
        guard let data = FileManager.default.contents(atPath: file) else {
            throw TokenizerError.invalid("\(file): cannot read tokenizer.json")
        }
        let root: [String: Any]
        do {
            guard let r = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw TokenizerError.invalid("\(file): not a JSON object")
            }
            root = r
        } catch let e as TokenizerError { throw e } catch {
            throw TokenizerError.invalid("\(file): invalid JSON: \(error.localizedDescription)")
        }
        try self.init(json: root, file: file)
    }

    init(json root: [String: Any], file: String) throws {
        let config = StageConfig(file: file)
        guard let modelJSON = root["model"] as? [String: Any] else { throw config.bad("missing \"model\"") }
        var added: [(String, Int)] = []
        var special = Set<Int>()
        for (index, entry) in (root["added_tokens"] as? [[String: Any]] ?? []).enumerated() {
            guard let content = entry["content"] as? String, let id = (entry["id"] as? NSNumber)?.intValue else {
                throw config.bad("added_tokens[\(index)] has no content or id")
            }
            guard id >= 0 && id < 1 << 24 else { throw config.bad("added_tokens[\(index)] has id \(id)") }
            added.append((content, id))
            if entry["special"] as? Bool ?? true { special.insert(id) }
        }
        let modelType = modelJSON["type"] as? String ?? "WordPiece"
        let model: TokenizerModel
        var decoder = TokenDecoder.wordPiece(prefix: "##")
        switch modelType {
        case "WordPiece":
            model = try WordPiece(json: modelJSON, config)
            decoder = .wordPiece(prefix: modelJSON["continuing_subword_prefix"] as? String ?? "##")
        case "BPE":
            model = try BPE(json: modelJSON, addedTokens: added, config)
            decoder = .byteLevel
        default:
            throw config.bad("tokenizer model \"\(modelType)\" is not supported yet (supported: WordPiece, BPE)")
        }
        if let decoderJSON = root["decoder"] as? [String: Any] {
            decoder = try TokenDecoder(json: decoderJSON, config)
        }
        let normalizer = try (root["normalizer"] as? [String: Any]).map { try normalizerStage($0, config) }
        let preTokenizer = try (root["pre_tokenizer"] as? [String: Any]).map { try preTokenizerStage($0, config) }
        let post = try (root["post_processor"] as? [String: Any]).flatMap { try postProcessorStage($0, config) }
        var padId = model.id(of: "[PAD]") ?? 0
        var padType = 0
        if let pad = root["padding"] as? [String: Any] {
            padId = (pad["pad_id"] as? NSNumber)?.intValue ?? padId
            padType = (pad["pad_type_id"] as? NSNumber)?.intValue ?? 0
        }
        self.init(
            normalizer: normalizer, preTokenizer: preTokenizer ?? BertPreTokenizer(), model: model,
            postProcessor: post, addedTokens: added, padId: padId, padTypeId: padType, decoder: decoder,
            specialTokenIds: special)
    }

    /// Token ids of one text without special tokens.
    public func tokenize(_ text: String) -> [Int] {
        var ids: [Int] = []
        for segment in splitAdded(text) {
            switch segment {
            case .added(let id): ids.append(id)
            case .text(let t):
                let norm = normalizer?.normalize(t) ?? t
                for w in preTokenizer.split(norm) { ids += model.tokenize(word: w) }
            }
        }
        return ids
    }

    enum Segment { case text(String), added(Int) }

    /// Splits raw text around added tokens (matched verbatim, longest first).
    func splitAdded(_ text: String) -> [Segment] {
        if addedTokens.isEmpty || !addedTokens.contains(where: { text.contains($0.0) }) { return [.text(text)] }
        let s = Array(text.unicodeScalars)
        let toks = addedTokens.map { (Array($0.0.unicodeScalars), $0.1) }
        var out: [Segment] = []
        var cur = String.UnicodeScalarView()
        var i = 0
        outer: while i < s.count {
            for (t, id) in toks where i + t.count <= s.count && s[i] == t[0] {
                if s[i..<(i + t.count)].elementsEqual(t) {
                    if !cur.isEmpty {
                        out.append(.text(String(cur)))
                        cur = .init()
                    }
                    out.append(.added(id))
                    i += t.count
                    continue outer
                }
            }
            cur.append(s[i])
            i += 1
        }
        if !cur.isEmpty { out.append(.text(String(cur))) }
        return out
    }

    /// Encodes a text or a pair, truncating to `maxLength` tokens in total (special tokens included)
    /// with the longest-first strategy of Hugging Face tokenizers.
    public func encode(
        _ text: String, pair: String? = nil, maxLength: Int? = nil, addSpecialTokens: Bool = true
    ) -> Encoding {
        var a = tokenize(text)
        var b = pair.map { tokenize($0) }
        if let maxLength {
            let added = addSpecialTokens ? (postProcessor?.addedTokens(pair: b != nil) ?? 0) : 0
            let budget = max(0, maxLength - added)
            if var bb = b {
                Self.truncatePair(&a, &bb, budget)
                b = bb
            } else if a.count > budget {
                a.removeLast(a.count - budget)
            }
        }
        let (ids, types, special): ([Int], [Int], [Bool])
        if addSpecialTokens, let post = postProcessor {
            (ids, types, special) = post.process(a, b)
        } else {
            ids = a + (b ?? [])
            types = Array(repeating: 0, count: a.count) + Array(repeating: 1, count: b?.count ?? 0)
            special = Array(repeating: false, count: ids.count)
        }
        return Encoding(
            ids: ids, typeIds: types, attentionMask: Array(repeating: 1, count: ids.count),
            specialTokensMask: special.map { $0 ? 1 : 0 })
    }

    /// Longest-first pair truncation as in Hugging Face tokenizers: the shorter sequence keeps
    /// what it can up to half the budget, the longer one gets the rest.
    static func truncatePair(_ a: inout [Int], _ b: inout [Int], _ budget: Int) {
        guard a.count + b.count > budget else { return }
        var n1 = a.count
        var n2 = b.count
        let swap = n1 > n2
        if swap { Swift.swap(&n1, &n2) }
        if n1 > budget { n2 = n1 } else { n2 = max(n1, budget - n1) }
        if n1 + n2 > budget {
            n1 = budget / 2
            n2 = n1 + budget % 2
        }
        if swap { Swift.swap(&n1, &n2) }
        if a.count > n1 { a.removeLast(a.count - n1) }
        if b.count > n2 { b.removeLast(b.count - n2) }
    }

    /// Pads encodings to the longest one (or to `padTo`, or a multiple of `multiple`) as a flat batch.
    public func pad(_ encs: [Encoding], padTo: Int? = nil, multiple: Int = 1) -> EncodedBatch {
        var len = padTo ?? (encs.map(\.ids.count).max() ?? 0)
        if multiple > 1 { len = (len + multiple - 1) / multiple * multiple }
        var ids = [Int32](repeating: Int32(padId), count: encs.count * len)
        var types = [Int32](repeating: Int32(padTypeId), count: encs.count * len)
        var mask = [Float](repeating: 0, count: encs.count * len)
        for (r, e) in encs.enumerated() {
            for (j, id) in e.ids.prefix(len).enumerated() {
                ids[r * len + j] = Int32(id)
                types[r * len + j] = Int32(e.typeIds[j])
                mask[r * len + j] = 1
            }
        }
        return EncodedBatch(batch: encs.count, seqLen: len, ids: ids, typeIds: types, attentionMask: mask)
    }

    /// Decodes ids to text, dropping special tokens unless `skipSpecial` is false.
    public func decode(_ ids: [Int], skipSpecial: Bool = true) -> String {
        let kept = ids.filter { !(skipSpecial && specialTokenIds.contains($0)) }.compactMap { model.token(of: $0) }
        return decoder.decode(kept)
    }
}

/// The last stage backwards: token texts to one string.
public enum TokenDecoder: Sendable {
    /// WordPiece: tokens joined by spaces, continuations (`##ing`) glued to the token before.
    case wordPiece(prefix: String)
    /// Byte-level BPE: each token's alphabet characters back to bytes, the bytes read as UTF-8 (an invalid
    /// sequence, such as a character cut between two tokens, becomes U+FFFD as in Hugging Face).
    case byteLevel

    /// The decoder a tokenizer.json declares.
    init(json: [String: Any], _ config: StageConfig) throws {
        switch json["type"] as? String {
        case "ByteLevel": self = .byteLevel
        case "WordPiece": self = .wordPiece(prefix: json["prefix"] as? String ?? "##")
        case let other:
            throw config.bad("decoder \"\(other ?? "?")\" is not supported yet (supported: ByteLevel, WordPiece)")
        }
    }

    public func decode(_ tokens: [String]) -> String {
        switch self {
        case .wordPiece(let prefix):
            var text = ""
            for token in tokens {
                if token.hasPrefix(prefix) {
                    text += token.dropFirst(prefix.count)
                } else {
                    text += (text.isEmpty ? "" : " ") + token
                }
            }
            return text
        case .byteLevel:
            var bytes: [UInt8] = []
            for token in tokens {
                // A token with a character outside the alphabet (an added token such as "é→") is its own text.
                if token.unicodeScalars.allSatisfy({ ByteLevelAlphabet.bytes[$0] != nil }) {
                    ByteLevelAlphabet.unspell(token, into: &bytes)
                } else {
                    bytes.append(contentsOf: Array(token.utf8))
                }
            }
            return String(decoding: bytes, as: UTF8.self)
        }
    }
}

/// Where a tokenizer.json's stages come from, for their error messages.
struct StageConfig {
    let file: String
    func bad(_ message: String) -> TokenizerError { .invalid("\(file): \(message)") }
}
