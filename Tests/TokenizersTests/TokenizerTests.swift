import Foundation
import Testing
import TestSupport
@testable import Tokenizers

@Suite struct TokenizerFixtureTests {
    @Test func matchesEveryReferenceCase() throws {
        guard let dir = Fixtures.modelDir() else { return }
        let tok = try Tokenizer(path: dir)
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.minilm + "/tokenizer_cases.json"))
        let root = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let cases = root["cases"] as! [[String: Any]]
        #expect(cases.count >= 20)
        for c in cases {
            let text = c["text"] as! String
            let pair = c["text_pair"] as? String
            let maxLen = (c["max_length"] as? NSNumber)?.intValue
            let enc = tok.encode(text, pair: pair, maxLength: maxLen)
            let ids = (c["input_ids"] as! [NSNumber]).map(\.intValue)
            let types = (c["token_type_ids"] as! [NSNumber]).map(\.intValue)
            #expect(enc.ids == ids, "ids for \(text.debugDescription) pair \(pair.debugDescription)")
            #expect(enc.typeIds == types, "type ids for \(text.debugDescription)")
        }
    }
}

@Suite struct TokenizerUnitTests {
    func tiny() throws -> Tokenizer {
        let vocab = ["[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "un": 4, "##aff": 5, "##able": 6, "cafe": 7, "!": 8, "a": 9, "b": 10, "c": 11]
        let post = TemplateProcessing(
            single: [.special(ids: [2], typeId: 0), .sequence(first: true, typeId: 0), .special(ids: [3], typeId: 0)],
            pair: [.special(ids: [2], typeId: 0), .sequence(first: true, typeId: 0), .special(ids: [3], typeId: 0),
                   .sequence(first: false, typeId: 1), .special(ids: [3], typeId: 1)])
        return Tokenizer(normalizer: BertNormalizer(), preTokenizer: BertPreTokenizer(),
                         model: try WordPiece(vocab: vocab), postProcessor: post,
                         addedTokens: [("[CLS]", 2), ("[SEP]", 3)])
    }

    @Test func wordPieceGreedyLongestMatch() throws {
        let t = try tiny()
        #expect(t.tokenize("unaffable") == [4, 5, 6])
        #expect(t.tokenize("unaffablex") == [1])  // one unknown piece makes the whole word [UNK]
        #expect(t.tokenize("Café!") == [7, 8])      // accents stripped, lowercased, punctuation split
    }

    @Test func addedTokensMatchVerbatim() throws {
        let t = try tiny()
        #expect(t.tokenize("a[SEP]b") == [9, 3, 10])
    }

    @Test func pairTruncationLongestFirst() throws {
        var a = Array(0..<10), b = Array(0..<3)
        Tokenizer.truncatePair(&a, &b, 8)
        #expect(a.count == 5 && b.count == 3)
        a = Array(0..<10); b = Array(0..<10)
        Tokenizer.truncatePair(&a, &b, 7)
        #expect(a.count == 3 && b.count == 4)
        let t = try tiny()
        let e = t.encode("a b c a b c", pair: "a b", maxLength: 7)
        #expect(e.ids == [2, 9, 10, 3, 9, 10, 3])
        #expect(e.typeIds == [0, 0, 0, 0, 1, 1, 1])
    }

    @Test func paddingBuildsMask() throws {
        let t = try tiny()
        let b = t.pad([t.encode("a"), t.encode("a b c")])
        #expect(b.seqLen == 5)
        #expect(b.ids == [2, 9, 3, 0, 0, 2, 9, 10, 11, 3])
        #expect(b.attentionMask == [1, 1, 1, 0, 0, 1, 1, 1, 1, 1])
    }

    @Test func normalizerCleansControlAndCJK() {
        let n = BertNormalizer()
        #expect(n.normalize("a\u{200B}b\u{00A0}c\u{0000}") == "ab c")
        #expect(n.normalize("東京") == " 東  京 ")
        #expect(n.normalize("ÀÉ") == "ae")
    }
}
