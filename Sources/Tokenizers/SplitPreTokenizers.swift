import Foundation

/// Hugging Face's `Sequence` pre-tokenizer: each stage splits every word the stage before it gave.
public struct SequencePreTokenizer: PreTokenizer {
    public var stages: [PreTokenizer]

    public init(_ stages: [PreTokenizer]) { self.stages = stages }

    public func split(_ text: String) -> [String] {
        var words = [text]
        for stage in stages { words = words.flatMap { stage.split($0) } }
        return words
    }
}

/// Hugging Face's `Digits`: every numeric character a word of its own (`individual_digits`), or each run of them one
/// word. Numeric is Rust's `char::is_numeric`, as the tokenizers crate has it: general category Nd, Nl or No, so
/// "½", "²" and "Ⅻ" are split off like "7".
public struct DigitsPreTokenizer: PreTokenizer {
    public var individualDigits: Bool

    public init(individualDigits: Bool) { self.individualDigits = individualDigits }

    public func split(_ text: String) -> [String] {
        var words: [String] = []
        var word = String.UnicodeScalarView()
        var wordIsDigits = false
        for scalar in text.unicodeScalars {
            let isDigit = [.decimalNumber, .letterNumber, .otherNumber].contains(scalar.properties.generalCategory)
            if !word.isEmpty && (isDigit != wordIsDigits || (isDigit && individualDigits)) {
                words.append(String(word))
                word = .init()
            }
            word.append(scalar)
            wordIsDigits = isDigit
        }
        if !word.isEmpty { words.append(String(word)) }
        return words
    }
}

/// Hugging Face's `Split` with a regular expression (ICU syntax here, Oniguruma there: the patterns models ship,
/// with `\p{L}`, `\p{N}`, `(?i:…)` and look-ahead, read the same in both) or a literal string.
public struct RegexSplit: PreTokenizer, @unchecked Sendable {
    /// What happens to the matches (`behavior`): their own words, dropped, or joined to a neighbour.
    public enum Behavior: String, Sendable {
        case isolated = "Isolated"
        case removed = "Removed"
        case mergedWithPrevious = "MergedWithPrevious"
        case mergedWithNext = "MergedWithNext"
        case contiguous = "Contiguous"
    }

    let expression: NSRegularExpression
    public let behavior: Behavior
    /// The pattern matches the words, not the delimiters.
    public let invert: Bool

    public init(pattern: String, literal: Bool = false, behavior: Behavior, invert: Bool = false) throws {
        do {
            expression = try NSRegularExpression(
                pattern: literal ? NSRegularExpression.escapedPattern(for: pattern) : pattern)
        } catch {
            throw TokenizerError.invalid(
                "Split pattern \(pattern.debugDescription) is not a regular expression Rankwise "
                    + "can read: \(error.localizedDescription)")
        }
        self.behavior = behavior
        self.invert = invert
    }

    public func split(_ text: String) -> [String] {
        let string = text as NSString
        // Pieces in order: the matches and the gaps between them, each marked.
        var pieces: [(range: NSRange, isMatch: Bool)] = []
        var cursor = 0
        for match in expression.matches(in: text, range: NSRange(location: 0, length: string.length))
        where match.range.length > 0 {
            if match.range.location > cursor {
                pieces.append((NSRange(location: cursor, length: match.range.location - cursor), invert))
            }
            pieces.append((match.range, !invert))
            cursor = match.range.location + match.range.length
        }
        if cursor < string.length { pieces.append((NSRange(location: cursor, length: string.length - cursor), invert)) }
        var words: [NSRange] = []
        switch behavior {
        case .isolated:
            words = pieces.map(\.range)
        case .removed:
            words = pieces.filter { !$0.isMatch }.map(\.range)
        case .mergedWithPrevious:
            words = Self.mergeMatches(into: pieces)
        case .mergedWithNext:
            words = Self.mergeMatches(into: pieces.reversed()).reversed()
        case .contiguous:
            var previousWasMatch = false
            for (range, isMatch) in pieces {
                if isMatch && previousWasMatch, let last = words.last {
                    words[words.count - 1] = NSRange(location: last.location, length: last.length + range.length)
                } else {
                    words.append(range)
                }
                previousWasMatch = isMatch
            }
        }
        return words.map { string.substring(with: $0) }
    }

    /// Each match joins the word before it in `pieces`' order, unless that word is itself a match (Hugging Face's
    /// rule: a run of matches keeps all but its first as words of their own).
    static func mergeMatches(into pieces: some Sequence<(range: NSRange, isMatch: Bool)>) -> [NSRange] {
        var words: [NSRange] = []
        var previousWasMatch = false
        for (range, isMatch) in pieces {
            if isMatch && !previousWasMatch, let last = words.last {
                let start = min(last.location, range.location)
                words[words.count - 1] = NSRange(location: start, length: last.length + range.length)
            } else {
                words.append(range)
            }
            previousWasMatch = isMatch
        }
        return words
    }
}

/// Unicode normal forms (`NFC`, `NFD`, `NFKC`, `NFKD` normalizers).
public struct UnicodeNormalizer: Normalizer {
    public enum Form: String, Sendable { case nfc = "NFC", nfd = "NFD", nfkc = "NFKC", nfkd = "NFKD" }
    public var form: Form

    public init(_ form: Form) { self.form = form }

    public func normalize(_ text: String) -> String {
        switch form {
        case .nfc: text.precomposedStringWithCanonicalMapping
        case .nfd: text.decomposedStringWithCanonicalMapping
        case .nfkc: text.precomposedStringWithCompatibilityMapping
        case .nfkd: text.decomposedStringWithCompatibilityMapping
        }
    }
}

/// Normalizers applied in turn (`Sequence`).
public struct SequenceNormalizer: Normalizer {
    public var stages: [Normalizer]

    public init(_ stages: [Normalizer]) { self.stages = stages }

    public func normalize(_ text: String) -> String { stages.reduce(text) { $1.normalize($0) } }
}
