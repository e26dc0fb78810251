/// GPT-2's byte-level alphabet: every byte is spelled as one printable character (printable Latin-1 bytes as
/// themselves, the others shifted to U+0100 and up), so a byte-level vocabulary is a set of ordinary strings.
public enum ByteLevelAlphabet {
    /// The character of every byte (0-255).
    public static let characters: [Unicode.Scalar] = {
        let printable = Array(33...126) + Array(161...172) + Array(174...255)
        var characterOf = [Unicode.Scalar](repeating: " ", count: 256)
        var next = 256
        for byte in 0..<256 {
            if printable.contains(byte) {
                characterOf[byte] = Unicode.Scalar(UInt32(byte))!
            } else {
                characterOf[byte] = Unicode.Scalar(UInt32(next))!
                next += 1
            }
        }
        return characterOf
    }()

    /// The byte of every alphabet character.
    public static let bytes: [Unicode.Scalar: UInt8] = {
        var byteOf: [Unicode.Scalar: UInt8] = [:]
        for (byte, character) in characters.enumerated() { byteOf[character] = UInt8(byte) }
        return byteOf
    }()

    /// `text`'s UTF-8 bytes spelled in the alphabet.
    public static func spell(_ text: String) -> String {
        var spelled = String.UnicodeScalarView()
        for byte in text.utf8 { spelled.append(characters[Int(byte)]) }
        return String(spelled)
    }

    /// The bytes a spelled token stands for (characters outside the alphabet, which no spelled token has, as their
    /// UTF-8).
    public static func unspell(_ token: String, into output: inout [UInt8]) {
        for character in token.unicodeScalars {
            if let byte = bytes[character] {
                output.append(byte)
            } else {
                output.append(contentsOf: Array(String(character).utf8))
            }
        }
    }
}

/// How byte-level text is cut into words before BPE, by the name a GGUF file (`tokenizer.ggml.pre`) or a
/// `tokenizer.json` declares.
public enum ByteLevelSplit: String, Sendable, CaseIterable {
    /// GPT-2's pattern: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
    case gpt2
    /// SmolLM's: every ASCII digit a word of its own, then GPT-2's pattern (what transformers makes of a GGUF file's
    /// `smollm`, checked on the golden set). SmolLM2's own tokenizer.json (`Digits(individual_digits)`, which splits
    /// off every numeric character) and llama.cpp's `smollm` (every `\p{N}`) differ from it on numerals such as "½"
    /// or "²" only; the vocabulary has no merge of two ASCII digits, so on those every reading agrees.
    case smollm
    /// No split: the whole text is one word (`ByteLevel` with `use_regex` false, after a `Split` of its own).
    case whole

    /// The split a GGUF file's `tokenizer.ggml.pre` names.
    public init(ggufName: String) throws {
        switch ggufName {
        case "gpt-2", "gpt2", "default": self = .gpt2
        case "smollm": self = .smollm
        default:
            throw TokenizerError.invalid(
                "pre-tokenizer \"\(ggufName)\" is not supported yet (supported: gpt-2, default, smollm)")
        }
    }
}

/// Byte-level pre-tokenizer: splits the text as `split` says, then spells each word's bytes in the alphabet.
public struct ByteLevelPreTokenizer: PreTokenizer {
    public var split: ByteLevelSplit
    /// Prepend a space to a text that does not start with one (`add_prefix_space`).
    public var addPrefixSpace: Bool

    public init(split: ByteLevelSplit, addPrefixSpace: Bool = false) {
        self.split = split
        self.addPrefixSpace = addPrefixSpace
    }

    public func split(_ text: String) -> [String] {
        var scalars = Array(text.unicodeScalars)
        if addPrefixSpace, let first = scalars.first, first != " " { scalars.insert(" ", at: 0) }
        var words: [String] = []
        switch split {
        case .gpt2:
            for range in Self.gpt2Words(scalars) { words.append(spelled(scalars[range])) }
        case .whole:
            if !scalars.isEmpty { words.append(spelled(scalars[...])) }
        case .smollm:
            var start = 0
            for (position, scalar) in scalars.enumerated() where ("0"..."9").contains(scalar) {
                for range in Self.gpt2Words(Array(scalars[start..<position])) {
                    words.append(spelled(scalars[(range.lowerBound + start)..<(range.upperBound + start)]))
                }
                words.append(spelled(scalars[position...position]))
                start = position + 1
            }
            for range in Self.gpt2Words(Array(scalars[start...])) {
                words.append(spelled(scalars[(range.lowerBound + start)..<(range.upperBound + start)]))
            }
        }
        return words
    }

    private func spelled(_ scalars: ArraySlice<Unicode.Scalar>) -> String {
        var text = String.UnicodeScalarView()
        text.append(contentsOf: scalars)
        return ByteLevelAlphabet.spell(String(text))
    }

    /// The word ranges GPT-2's pattern finds in `text`, alternatives tried in the pattern's order.
    static func gpt2Words(_ text: [Unicode.Scalar]) -> [Range<Int>] {
        var words: [Range<Int>] = []
        var start = 0
        let end = text.count
        func run(from position: Int, while test: (Unicode.Scalar) -> Bool) -> Int {
            var stop = position
            while stop < end && test(text[stop]) { stop += 1 }
            return stop
        }
        let isOther = { (scalar: Unicode.Scalar) in !isWhitespace(scalar) && !isLetter(scalar) && !isNumber(scalar) }
        while start < end {
            let scalar = text[start]
            let next: Unicode.Scalar? = start + 1 < end ? text[start + 1] : nil
            var stop = start
            if scalar == "'", let suffix = contractionLength(text, start + 1) {
                stop = start + 1 + suffix
            } else if isLetter(scalar) || (scalar == " " && next.map(isLetter) == true) {
                stop = run(from: scalar == " " ? start + 1 : start, while: isLetter)
            } else if isNumber(scalar) || (scalar == " " && next.map(isNumber) == true) {
                stop = run(from: scalar == " " ? start + 1 : start, while: isNumber)
            } else if isOther(scalar) || (scalar == " " && next.map(isOther) == true) {
                stop = run(from: scalar == " " ? start + 1 : start, while: isOther)
            } else {
                // Whitespace: `\s+(?!\S)` leaves the last one for the word after it, then `\s+`.
                let runEnd = run(from: start, while: isWhitespace)
                stop = runEnd == end || runEnd - start == 1 ? runEnd : runEnd - 1
            }
            words.append(start..<stop)
            start = stop
        }
        return words
    }

    /// 1 or 2 when `'s`, `'t`, `'m`, `'d` or `'re`, `'ve`, `'ll` starts at `position` (after the apostrophe).
    static func contractionLength(_ text: [Unicode.Scalar], _ position: Int) -> Int? {
        guard position < text.count else { return nil }
        let first = text[position]
        if "stmd".unicodeScalars.contains(first) { return 1 }
        guard position + 1 < text.count else { return nil }
        let pair = String(String.UnicodeScalarView([first, text[position + 1]]))
        return ["re", "ve", "ll"].contains(pair) ? 2 : nil
    }
}

func isLetter(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar.properties.generalCategory {
    case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: true
    default: false
    }
}

func isNumber(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar.properties.generalCategory {
    case .decimalNumber, .letterNumber, .otherNumber: true
    default: false
    }
}

func isWhitespace(_ scalar: Unicode.Scalar) -> Bool { scalar.properties.isWhitespace }
