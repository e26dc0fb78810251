import Foundation

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

/// The post-processor a tokenizer.json declares; nil for one that adds no tokens (`ByteLevel` only trims offsets).
func postProcessorStage(_ json: [String: Any], _ config: StageConfig) throws -> PostProcessor? {
    let type = json["type"] as? String
    switch type {
    case "TemplateProcessing":
        let specials = json["special_tokens"] as? [String: Any] ?? [:]
        func pieces(_ key: String) throws -> [TemplateProcessing.Piece] {
            guard let items = json[key] as? [[String: Any]] else {
                throw config.bad("TemplateProcessing has no \"\(key)\" template")
            }
            return try items.map { item in
                if let token = item["SpecialToken"] as? [String: Any] {
                    let name = token["id"] as? String ?? ""
                    guard let entry = specials[name] as? [String: Any], let ids = entry["ids"] as? [NSNumber] else {
                        throw config.bad("template names special token \"\(name)\" that special_tokens does not define")
                    }
                    return .special(ids: ids.map(\.intValue), typeId: (token["type_id"] as? NSNumber)?.intValue ?? 0)
                }
                if let sequence = item["Sequence"] as? [String: Any] {
                    return .sequence(
                        first: (sequence["id"] as? String ?? "A") == "A",
                        typeId: (sequence["type_id"] as? NSNumber)?.intValue ?? 0)
                }
                throw config.bad("unknown template piece \(item)")
            }
        }
        return TemplateProcessing(single: try pieces("single"), pair: try pieces("pair"))
    case "BertProcessing":
        guard let cls = json["cls"] as? [Any], let sep = json["sep"] as? [Any],
            let clsId = (cls.last as? NSNumber)?.intValue, let sepId = (sep.last as? NSNumber)?.intValue
        else {
            throw config.bad("BertProcessing without cls/sep")
        }
        return TemplateProcessing(
            single: [
                .special(ids: [clsId], typeId: 0), .sequence(first: true, typeId: 0), .special(ids: [sepId], typeId: 0),
            ],
            pair: [
                .special(ids: [clsId], typeId: 0), .sequence(first: true, typeId: 0), .special(ids: [sepId], typeId: 0),
                .sequence(first: false, typeId: 1), .special(ids: [sepId], typeId: 1),
            ])
    case "ByteLevel":
        return nil
    case "Sequence":
        let stages = try (json["processors"] as? [[String: Any]] ?? []).compactMap {
            try postProcessorStage($0, config)
        }
        guard stages.count <= 1 else {
            throw config.bad("a post_processor Sequence with \(stages.count) token-adding stages is not supported yet")
        }
        return stages.first
    default:
        throw config.bad(
            "post_processor \"\(type ?? "?")\" is not supported yet (supported: TemplateProcessing, BertProcessing, "
                + "ByteLevel, Sequence)")
    }
}
