import Foundation

/// The first stage of the pipeline: rewrites the raw text before it is split.
public protocol Normalizer: Sendable {
    func normalize(_ text: String) -> String
}

/// Hugging Face's `BertNormalizer`: clean control characters, isolate CJK ideographs, strip accents
/// (NFD, drop non-spacing marks), lowercase character by character.
public struct BertNormalizer: Normalizer {
    public var cleanText = true
    public var handleChineseChars = true
    /// nil follows `lowercase`, as in Hugging Face.
    public var stripAccents: Bool? = nil
    public var lowercase = true

    public init(
        cleanText: Bool = true, handleChineseChars: Bool = true, stripAccents: Bool? = nil, lowercase: Bool = true
    ) {
        self.cleanText = cleanText
        self.handleChineseChars = handleChineseChars
        self.stripAccents = stripAccents
        self.lowercase = lowercase
    }

    public func normalize(_ text: String) -> String {
        var scalars = String.UnicodeScalarView()
        for c in text.unicodeScalars {
            if cleanText {
                if c.value == 0 || c.value == 0xFFFD || isControl(c) { continue }
                if isBertWhitespace(c) {
                    scalars.append(" ")
                    continue
                }
            }
            if handleChineseChars && isChineseChar(c) {
                scalars.append(" ")
                scalars.append(c)
                scalars.append(" ")
                continue
            }
            scalars.append(c)
        }
        var s = String(scalars)
        if stripAccents ?? lowercase {
            var out = String.UnicodeScalarView()
            for c in s.decomposedStringWithCanonicalMapping.unicodeScalars
            where c.properties.generalCategory != .nonspacingMark {
                out.append(c)
            }
            s = String(out)
        }
        if lowercase {
            var out = String.UnicodeScalarView()
            for c in s.unicodeScalars {
                if c.properties.changesWhenLowercased {
                    out.append(contentsOf: c.properties.lowercaseMapping.unicodeScalars)
                } else {
                    out.append(c)
                }
            }
            s = String(out)
        }
        return s
    }
}

/// The normalizer a tokenizer.json declares.
func normalizerStage(_ json: [String: Any], _ config: StageConfig) throws -> Normalizer {
    let type = json["type"] as? String
    switch type {
    case "BertNormalizer":
        return BertNormalizer(
            cleanText: json["clean_text"] as? Bool ?? true,
            handleChineseChars: json["handle_chinese_chars"] as? Bool ?? true,
            stripAccents: json["strip_accents"] as? Bool, lowercase: json["lowercase"] as? Bool ?? true)
    case "NFC", "NFD", "NFKC", "NFKD":
        return UnicodeNormalizer(UnicodeNormalizer.Form(rawValue: type!)!)
    case "Sequence":
        let stages = json["normalizers"] as? [[String: Any]] ?? []
        return SequenceNormalizer(try stages.map { try normalizerStage($0, config) })
    default:
        throw config.bad(
            "normalizer \"\(type ?? "?")\" is not supported yet (supported: BertNormalizer, NFC, NFD, NFKC, NFKD, "
                + "Sequence)")
    }
}

/// Tab, newline and carriage return, plus Unicode White_Space.
@inline(__always) func isBertWhitespace(_ c: Unicode.Scalar) -> Bool {
    c == "\t" || c == "\n" || c == "\r" || c.properties.isWhitespace
}

/// Control, format, unassigned and private-use characters, except tab, newline and carriage return.
@inline(__always) func isControl(_ c: Unicode.Scalar) -> Bool {
    if c == "\t" || c == "\n" || c == "\r" { return false }
    switch c.properties.generalCategory {
    case .control, .format, .unassigned, .privateUse: return true
    default: return false
    }
}

/// CJK Unified Ideographs blocks as BERT defines them.
@inline(__always) func isChineseChar(_ c: Unicode.Scalar) -> Bool {
    switch c.value {
    case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F,
        0x2B820...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
        return true
    default: return false
    }
}

/// ASCII punctuation or any Unicode punctuation category (P*).
@inline(__always) func isBertPunctuation(_ c: Unicode.Scalar) -> Bool {
    let v = c.value
    if (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) {
        return true
    }
    switch c.properties.generalCategory {
    case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
        .initialPunctuation, .finalPunctuation, .otherPunctuation:
        return true
    default: return false
    }
}
