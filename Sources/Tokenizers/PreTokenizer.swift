/// The second stage: splits normalised text into words.
public protocol PreTokenizer: Sendable {
    func split(_ text: String) -> [String]
}

/// Hugging Face's `BertPreTokenizer`: split on whitespace, and make every punctuation character a word of its own.
public struct BertPreTokenizer: PreTokenizer {
    public init() {}
    public func split(_ text: String) -> [String] {
        var words: [String] = []
        var cur = String.UnicodeScalarView()
        func flush() {
            if !cur.isEmpty {
                words.append(String(cur))
                cur = .init()
            }
        }
        for c in text.unicodeScalars {
            if c.properties.isWhitespace {
                flush()
            } else if isBertPunctuation(c) {
                flush()
                words.append(String(c))
            } else {
                cur.append(c)
            }
        }
        flush()
        return words
    }
}

/// Splits on whitespace only (`WhitespaceSplit`).
public struct WhitespaceSplit: PreTokenizer {
    public init() {}
    public func split(_ text: String) -> [String] {
        text.unicodeScalars.split(whereSeparator: { $0.properties.isWhitespace }).map {
            String(String.UnicodeScalarView($0))
        }
    }
}

/// The pre-tokenizer a tokenizer.json declares.
func preTokenizerStage(_ json: [String: Any], _ config: StageConfig) throws -> PreTokenizer {
    let type = json["type"] as? String
    switch type {
    case "BertPreTokenizer": return BertPreTokenizer()
    case "WhitespaceSplit": return WhitespaceSplit()
    case "ByteLevel":
        return ByteLevelPreTokenizer(
            split: json["use_regex"] as? Bool ?? true ? .gpt2 : .whole,
            addPrefixSpace: json["add_prefix_space"] as? Bool ?? true)
    case "Digits": return DigitsPreTokenizer(individualDigits: json["individual_digits"] as? Bool ?? false)
    case "Split":
        let pattern = json["pattern"] as? [String: Any] ?? [:]
        let behaviorName = json["behavior"] as? String ?? "Isolated"
        guard let behavior = RegexSplit.Behavior(rawValue: behaviorName) else {
            throw config.bad("Split behavior \"\(behaviorName)\" is not one Rankwise knows")
        }
        let regex = pattern["Regex"] as? String
        guard let text = regex ?? pattern["String"] as? String else { throw config.bad("Split without a pattern") }
        do {
            return try RegexSplit(
                pattern: text, literal: regex == nil, behavior: behavior, invert: json["invert"] as? Bool ?? false)
        } catch {
            throw config.bad("\(error)")
        }
    case "Sequence":
        let stages = json["pretokenizers"] as? [[String: Any]] ?? []
        return SequencePreTokenizer(try stages.map { try preTokenizerStage($0, config) })
    default:
        throw config.bad(
            "pre_tokenizer \"\(type ?? "?")\" is not supported yet (supported: BertPreTokenizer, WhitespaceSplit, "
                + "ByteLevel, Digits, Split, Sequence)")
    }
}
