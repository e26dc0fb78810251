import Foundation
import GGUF
import Testing
import TestSupport
import Tokenizers

/// SmolLM2's byte-level BPE tokenizer, built from the GGUF file's metadata, against transformers' tokenizer loaded
/// from the same file (Tests/Fixtures/bpe/smollm2-golden.json, scripts/make_bpe_reference.py).
@Suite struct BPETests {
    struct Golden: Decodable {
        struct Text: Decodable {
            var text: String
            var ids: [Int]
            var decoded: String
            var decoded_skip_special: String
        }
        struct Chat: Decodable {
            var messages: [ChatMessage]
            var text: String
            var ids: [Int]
        }
        var texts: [Text]
        var chats: [Chat]
    }

    static func golden() throws -> Golden {
        let path = Fixtures.packageRoot.path + "/Tests/Fixtures/bpe/smollm2-golden.json"
        return try JSONDecoder().decode(Golden.self, from: try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    @Test func encodeAndDecodeMatchTransformersOnTheGoldenSet() throws {
        guard let model = Fixtures.smollm2() else { return }
        let (tokenizer, specials) = try Tokenizer.gguf(try GGUFFile(path: model))
        #expect(specials.bos == 1 && specials.eos == 2 && !specials.addBOS)
        let golden = try Self.golden()
        #expect(golden.texts.count >= 20)
        for entry in golden.texts {
            let ids = tokenizer.encode(entry.text).ids
            #expect(ids == entry.ids, "\(entry.text.debugDescription)")
            #expect(tokenizer.decode(entry.ids, skipSpecial: false) == entry.decoded, "\(entry.text.debugDescription)")
            #expect(tokenizer.decode(entry.ids) == entry.decoded_skip_special, "\(entry.text.debugDescription)")
        }
    }

    /// A 100,000-character word (one pre-token) encodes in n log n merges and decodes back.
    @Test func aVeryLongWordEncodesAndDecodesBack() throws {
        guard let model = Fixtures.smollm2() else { return }
        let (tokenizer, _) = try Tokenizer.gguf(try GGUFFile(path: model))
        let word = String(repeating: "abcdefghij", count: 10_000)
        let ids = tokenizer.encode(word).ids
        #expect(ids.count < word.count / 2)
        #expect(tokenizer.decode(ids) == word)
    }

    @Test func chatMLWithTheDefaultSystemPromptMatchesTransformers() throws {
        guard let model = Fixtures.smollm2() else { return }
        let (tokenizer, specials) = try Tokenizer.gguf(try GGUFFile(path: model))
        let template = try ChatTemplate(jinja: try #require(specials.chatTemplate))
        #expect(template == .chatML(defaultSystem: "You are a helpful AI assistant named SmolLM, trained by Hugging Face"))
        for chat in try Self.golden().chats {
            let text = template.render(chat.messages)
            #expect(text == chat.text)
            #expect(tokenizer.encode(text).ids == chat.ids)
        }
        #expect { try ChatTemplate(jinja: "{{ bos_token }}{% for m in messages %}[INST] {{ m.content }}{% endfor %}") } throws: {
            "\($0)".contains("not one Rankwise knows")
        }
    }

    /// An empty added token is ignored (it used to trap), a non-special added token survives skipSpecial, and a
    /// token outside the byte alphabet decodes as its own text.
    @Test func addedTokensEdgeCases() throws {
        let tokens = ["H", "i", "<s>", "é→", ""]
        let model = try BPE(tokens: tokens, merges: [])
        let tokenizer = Tokenizer(
            normalizer: nil, preTokenizer: ByteLevelPreTokenizer(split: .gpt2), model: model, postProcessor: nil,
            addedTokens: [("<s>", 2), ("é→", 3), ("", 4)], decoder: .byteLevel, specialTokenIds: [2])
        #expect(tokenizer.encode("Hi<s>Hié→").ids == [0, 1, 2, 0, 1, 3])
        #expect(tokenizer.decode([0, 1, 2, 3]) == "Hié→")
        #expect(tokenizer.decode([0, 1, 2, 3], skipSpecial: false) == "Hi<s>é→")
    }

    /// GPT-2's split on its own: contractions, letters, numbers, other, and the whitespace rule.
    @Test func gpt2SplitFollowsThePattern() {
        let split = ByteLevelPreTokenizer(split: .gpt2)
        let words = split.split("I'm  a test\n\n x123!!").map { word in
            var bytes: [UInt8] = []
            ByteLevelAlphabet.unspell(word, into: &bytes)
            return String(decoding: bytes, as: UTF8.self)
        }
        #expect(words == ["I", "'m", " ", " a", " test", "\n\n", " x", "123", "!!"])
        let smollm = ByteLevelPreTokenizer(split: .smollm).split("ab12")
        #expect(smollm == ["ab", "1", "2"])
        #expect(ByteLevelAlphabet.spell(" \n") == "Ġ\u{10A}")
    }
}
