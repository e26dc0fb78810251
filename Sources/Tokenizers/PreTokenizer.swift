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
