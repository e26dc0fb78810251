import Foundation
import Testing
import TestSupport
import Tokenizers

/// Byte-level BPE tokenizers read from tokenizer.json against transformers on the same files
/// (Tests/Fixtures/hf-llama, scripts/make_hf_llama_fixture.py): SmolLM2's layout (Digits + ByteLevel, merges as
/// pairs, ChatML) and LLaMA-3's (NFC, a Split regex, ByteLevel without regex, ignore_merges, BOS added by a
/// TemplateProcessing inside a Sequence).
@Suite struct HuggingFaceTokenizerTests {
    struct Reference: Decodable {
        struct Entry: Decodable {
            var ids: [Int]
            var ids_with_special: [Int]
            var decoded: String
            var decoded_skip_special: String
        }
        var texts: [String]
        var smollm: [Entry]
        var llama3: [Entry]
        var chats: [BPETests.Golden.Chat]
    }

    static let root = Fixtures.packageRoot.path + "/Tests/Fixtures/hf-llama"

    static func reference() throws -> Reference {
        try JSONDecoder().decode(Reference.self, from: try Data(contentsOf: URL(fileURLWithPath: root + "/reference.json")))
    }

    func check(_ tokenizer: Tokenizer, _ entries: [Reference.Entry], texts: [String]) {
        #expect(entries.count == texts.count && texts.count >= 10)
        for (text, entry) in zip(texts, entries) {
            #expect(tokenizer.encode(text, addSpecialTokens: false).ids == entry.ids, "\(text.debugDescription)")
            #expect(tokenizer.encode(text).ids == entry.ids_with_special, "\(text.debugDescription) with specials")
            #expect(tokenizer.decode(entry.ids, skipSpecial: false) == entry.decoded, "\(text.debugDescription)")
            #expect(tokenizer.decode(entry.ids) == entry.decoded_skip_special, "\(text.debugDescription)")
        }
    }

    @Test func smolLMLayoutMatchesTransformers() throws {
        let reference = try Self.reference()
        let (tokenizer, specials) = try Tokenizer.huggingFace(directory: Self.root + "/model")
        check(tokenizer, reference.smollm, texts: reference.texts)
        #expect(specials.bos == 1 && specials.eos == 2 && specials.pad == 2 && !specials.addBOS && !specials.addEOS)
        // transformers 5 writes the template to chat_template.jinja; it is SmolLM2's ChatML with its system prompt.
        let template = try ChatTemplate(jinja: try #require(specials.chatTemplate))
        #expect(template == .chatML(defaultSystem: "You are a helpful AI assistant named SmolLM, trained by Hugging Face"))
        for chat in reference.chats {
            #expect(template.render(chat.messages) == chat.text)
            #expect(tokenizer.encode(chat.text).ids == chat.ids)
        }
    }

    @Test func llama3LayoutMatchesTransformers() throws {
        let reference = try Self.reference()
        let tokenizer = try Tokenizer(path: Self.root + "/llama3-tokenizer.json")
        check(tokenizer, reference.llama3, texts: reference.texts)
        // NFC: the decomposed and the precomposed "é" encode alike.
        #expect(tokenizer.encode("e\u{301}", addSpecialTokens: false).ids == tokenizer.encode("é", addSpecialTokens: false).ids)
    }

    @Test func splitBehaviours() throws {
        let text = "a1b22c"
        func words(_ behavior: RegexSplit.Behavior, invert: Bool = false) throws -> [String] {
            try RegexSplit(pattern: "[0-9]", behavior: behavior, invert: invert).split(text)
        }
        #expect(try words(.isolated) == ["a", "1", "b", "2", "2", "c"])
        #expect(try words(.removed) == ["a", "b", "c"])
        // As the tokenizers crate: the second match of a run stays a word of its own.
        #expect(try words(.mergedWithPrevious) == ["a1", "b2", "2", "c"])
        #expect(try words(.mergedWithNext) == ["a", "1b", "2", "2c"])
        #expect(try words(.contiguous) == ["a", "1", "b", "22", "c"])
        #expect(try words(.removed, invert: true) == ["1", "2", "2"])
        #expect(DigitsPreTokenizer(individualDigits: false).split("ab12c3") == ["ab", "12", "c", "3"])
        #expect(DigitsPreTokenizer(individualDigits: true).split("ab12c3") == ["ab", "1", "2", "c", "3"])
        // Every numeric character, as the tokenizers crate's `Digits` (`char::is_numeric`) splits "a ½ ² Ⅻ 12 ٣".
        #expect(
            DigitsPreTokenizer(individualDigits: true).split("a ½ ² Ⅻ 12 ٣")
                == ["a ", "½", " ", "²", " ", "Ⅻ", " ", "1", "2", " ", "٣"])
        // The emoji and the astral-plane letters survive the UTF-16 ranges NSRegularExpression works in.
        #expect(try RegexSplit(pattern: "\\p{L}+", behavior: .isolated).split("😀𝒜𝒞 x") == ["😀", "𝒜𝒞", " ", "x"])
    }

    @Test func unsupportedPartsAreRefusedByName() throws {
        func failure(_ json: String) -> String {
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("tokenizer-\(UUID()).json").path
            FileManager.default.createFile(atPath: file, contents: Data(json.utf8))
            defer { try? FileManager.default.removeItem(atPath: file) }
            do {
                _ = try Tokenizer(path: file)
                return "no error"
            } catch {
                #expect("\(error)".hasPrefix(file), "\(error)")
                return "\(error)"
            }
        }
        let bpe = #""model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"]]"#
        #expect(failure("{\(bpe), \"byte_fallback\": true}}").contains("byte_fallback"))
        #expect(failure("{\(bpe)}, \"pre_tokenizer\": {\"type\": \"Metaspace\"}}").contains("pre_tokenizer \"Metaspace\""))
        #expect(failure("{\(bpe)}, \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"}}}").contains("regular expression"))
        #expect(failure("{\(bpe)}, \"decoder\": {\"type\": \"Metaspace\"}}").contains("decoder \"Metaspace\""))
        #expect(failure(#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}"#).contains("merge 0"))
        #expect(failure(#"{"model": {"type": "Unigram"}}"#).contains("\"Unigram\" is not supported"))
    }
}
