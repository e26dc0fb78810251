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

    /// The GGUF tokenizer written as Hugging Face files (what `merge` puts next to a model merged from a GGUF base)
    /// reads back as the same tokenizer: the golden set and its chats encode and decode alike, specials included.
    @Test func ggufTokenizerAsHuggingFaceFilesReadsBackTheSame() throws {
        guard let model = Fixtures.smollm2() else { return }
        let file = try GGUFFile(path: model)
        let (tokenizer, specials) = try Tokenizer.gguf(file)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rankwise-gguf-tok-\(getpid())")
        try? FileManager.default.removeItem(at: directory)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let files = try GGUFTokenizerFiles.files(file)
        #expect(Set(files.keys) == ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"])
        for (name, contents) in files { try contents.write(to: directory.appendingPathComponent(name)) }
        let (written, writtenSpecials) = try Tokenizer.huggingFace(directory: directory.path)
        #expect(writtenSpecials.bos == specials.bos && writtenSpecials.eos == specials.eos)
        #expect(writtenSpecials.addBOS == specials.addBOS && writtenSpecials.chatTemplate == specials.chatTemplate)
        let golden = try Self.golden()
        for entry in golden.texts {
            #expect(written.encode(entry.text).ids == tokenizer.encode(entry.text).ids, "\(entry.text.debugDescription)")
            #expect(written.decode(entry.ids, skipSpecial: false) == entry.decoded)
            #expect(written.decode(entry.ids) == entry.decoded_skip_special)
        }
        for chat in golden.chats { #expect(written.encode(chat.text).ids == chat.ids) }
        // ASCII digits one by one and other numerals left to the byte-level split, as the GGUF reading has them.
        for text in ["x 2024 y", "a ½ ² Ⅻ 12 ٣"] { #expect(written.encode(text).ids == tokenizer.encode(text).ids) }
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
