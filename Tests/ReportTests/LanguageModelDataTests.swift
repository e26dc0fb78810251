import Foundation
import Testing
import TestSupport
import Tokenizers

@testable import FineTuning

/// Causal-LM data: the three JSONL shapes, errors that name the file and line, and tokenisation through the chat
/// template with the loss on the assistant's replies only (the tiny SmolLM2-layout tokenizer of
/// Tests/Fixtures/hf-llama).
@Suite struct LanguageModelDataTests {
    static let directory = Fixtures.packageRoot.path + "/Tests/Fixtures/hf-llama/model"

    @Test func readsEveryShapeWithLineNumbers() throws {
        let text = """
            {"prompt": "Hi", "completion": "Hello!"}

            {"prompt": "Name a colour.", "response": "Blue."}
            {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "A colour?"}, {"role": "assistant", "content": "Red."}]}
            {"text": "Plain text to learn."}
            """
        let examples = try LanguageModelData.read(Data(text.utf8), file: "train.jsonl")
        #expect(examples.map(\.line) == [1, 3, 4, 5])
        #expect(examples[0].example == .completion(prompt: "Hi", completion: "Hello!"))
        #expect(examples[1].example == .completion(prompt: "Name a colour.", completion: "Blue."))
        #expect(examples[3].example == .text("Plain text to learn."))
        func failure(_ text: String) -> String {
            do {
                _ = try LanguageModelData.read(Data(text.utf8), file: "bad.jsonl")
                return "no error"
            } catch { return "\(error)" }
        }
        #expect(failure("{\"text\": \"a\"}\n[1, 2]") == "bad.jsonl: line 2: not a JSON object")
        #expect(failure("{\"prompt\": \"a\"}").contains("line 1: \"prompt\" without \"completion\""))
        #expect(failure("{\"text\": 3}").contains("line 1: \"text\" is not a string"))
        #expect(failure("{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}]}").contains("no assistant message"))
        #expect(failure("{\"messages\": [{\"role\": \"bot\", \"content\": \"a\"}]}").contains("role \"bot\""))
        #expect(failure("{\"label\": 1}").contains("a labelled row (classification data)"))
        #expect(failure("{\"text\": \"fine\", \"label\": \"positive\"}").contains("classify with an encoder"))
        #expect(
            failure("{\"id\": 1}").contains("expected \"prompt\" + \"completion\", \"messages\" or \"text\"; found id"))
        #expect(failure("\n\n{\"messages\": []}").contains("line 3"))
    }

    @Test func chatTemplateAndResponseOnlyLoss() throws {
        let (tokenizer, specials) = try Tokenizer.huggingFace(directory: Self.directory)
        let template = try ChatTemplate(jinja: try #require(specials.chatTemplate))
        let messages = [
            ChatMessage(role: "user", content: "A colour?"), ChatMessage(role: "assistant", content: "Blue."),
            ChatMessage(role: "user", content: "Another?"), ChatMessage(role: "assistant", content: "Red, 12345."),
        ]
        let example = LanguageModelData.tokenize(
            .conversation(messages), tokenizer: tokenizer, specials: specials, template: template, maxLength: 512)
        // The pieces encode to what the whole rendered conversation encodes to.
        let whole = tokenizer.encode(template.render(messages, addGenerationPrompt: false), addSpecialTokens: false).ids
        #expect(example.ids == whole.map(Int32.init))
        // The targets are exactly the replies' tokens and their <|im_end|>.
        let targets = example.ids.indices.filter { example.isTarget[$0] }.map { Int(example.ids[$0]) }
        let imEnd = try #require(specials.eos)
        let replies =
            tokenizer.encode("Blue.", addSpecialTokens: false).ids + [imEnd]
            + tokenizer.encode("Red, 12345.", addSpecialTokens: false).ids + [imEnd]
        #expect(targets == replies)
        #expect(!example.truncated && example.line == 0)
        // Every token with trainOnPrompt (but the first, which nothing predicts).
        let all = LanguageModelData.tokenize(
            .conversation(messages), tokenizer: tokenizer, specials: specials, template: template, trainOnPrompt: true,
            maxLength: 512)
        #expect(all.ids == example.ids && all.targetCount == all.ids.count - 1)
        // A prompt/completion pair is one user turn and the reply.
        let pair = LanguageModelData.tokenize(
            .completion(prompt: "A colour?", completion: "Blue."), tokenizer: tokenizer, specials: specials,
            template: template, maxLength: 512)
        let firstTurn = LanguageModelData.tokenize(
            .conversation(Array(messages.prefix(2))), tokenizer: tokenizer, specials: specials, template: template,
            maxLength: 512)
        #expect(pair == firstTurn)
        // Without a template: prompt then completion and EOS, the completion and EOS learnt.
        let raw = LanguageModelData.tokenize(
            .completion(prompt: "Q: hi\nA:", completion: " hello"), tokenizer: tokenizer, specials: specials,
            template: nil, maxLength: 512)
        let promptCount = tokenizer.encode("Q: hi\nA:", addSpecialTokens: false).ids.count
        #expect(raw.ids.last == Int32(imEnd) && raw.targetCount == raw.ids.count - promptCount)
        // --truncation end keeps the start and says so.
        let cut = LanguageModelData.tokenize(
            .conversation(messages), tokenizer: tokenizer, specials: specials, template: template, maxLength: 10,
            truncation: .end)
        #expect(cut.cut == .end && cut.ids == Array(example.ids.prefix(10)))
    }

    /// The default truncation shortens the longest prompt text from its end and keeps the markup and every reply;
    /// the end goes only when the replies and markup alone do not fit.
    @Test func truncationShortensThePromptAndKeepsTheReply() throws {
        let (tokenizer, specials) = try Tokenizer.huggingFace(directory: Self.directory)
        let template = try ChatTemplate(jinja: try #require(specials.chatTemplate))
        let document = (1...40).map { "word\($0)" }.joined(separator: " ")
        let messages = [
            ChatMessage(role: "system", content: "Summarise."), ChatMessage(role: "user", content: document),
            ChatMessage(role: "assistant", content: "A short summary."),
        ]
        func tokens(_ maxLength: Int, _ truncation: LanguageModelTruncation = .prompt) -> TokenizedLanguageExample {
            LanguageModelData.tokenize(
                .conversation(messages), tokenizer: tokenizer, specials: specials, template: template,
                maxLength: maxLength, truncation: truncation)
        }
        let whole = tokens(4096)
        #expect(whole.cut == .none)
        let maxLength = whole.ids.count - 25
        let short = tokens(maxLength)
        #expect(short.cut == .prompt && short.ids.count == maxLength)
        // The replies' tokens are all there, and the conversation ends as the whole one does.
        #expect(short.targetCount == whole.targetCount)
        #expect(Array(short.ids.suffix(15)) == Array(whole.ids.suffix(15)))
        // The document lost its end: what is kept of it is its start, and the system message is whole.
        let rendered = tokenizer.decode(short.ids.map(Int.init), skipSpecial: false)
        #expect(rendered.contains("Summarise.") && rendered.contains("word1 word2") && !rendered.contains("word40"))
        #expect(rendered.contains("<|im_end|>\n<|im_start|>assistant\nA short summary.<|im_end|>"))
        // Replies that do not fit alone: the prompts stay whole and the end goes.
        let tiny = tokens(12)
        #expect(tiny.cut == .end && tiny.ids == Array(whole.ids.prefix(12)))
        // --truncation end on the same example: the reply is lost.
        let end = tokens(maxLength, .end)
        #expect(end.cut == .end && end.targetCount < whole.targetCount)
    }

    /// The replies ROUGE scores: the same seeded sample for a run and for `eval --generate`, in file order.
    @Test func generationSampleIsSeededAndInFileOrder() {
        let examples = (1...30).map { (line: $0, example: LanguageModelExample.text("t\($0)")) }
        let sample = GenerationEvaluation.sample(examples, count: 10, splitSeed: 42)
        #expect(sample.count == 10 && sample.map(\.line) == sample.map(\.line).sorted())
        #expect(sample.map(\.line) == GenerationEvaluation.sample(examples, count: 10, splitSeed: 42).map(\.line))
        #expect(sample.map(\.line) != GenerationEvaluation.sample(examples, count: 10, splitSeed: 7).map(\.line))
        #expect(GenerationEvaluation.sample(examples, count: -1, splitSeed: 42).count == 30)
        #expect(GenerationEvaluation.sample(examples, count: 50, splitSeed: 42).count == 30)
    }

    /// --truncation joins a checkpoint's fingerprint only where it matters (a causal LM) and only when it is not the
    /// behaviour of runs from before the option (end), so those checkpoints still resume.
    @Test func truncationInTheFingerprintOnlyWhereItMatters() throws {
        var options = FineTuneOptions()
        options.data.train = "train.jsonl"
        func fingerprint(_ truncation: String, languageModel: Bool) -> String {
            options.data.truncation = truncation
            return options.fingerprint(methodConfigJSON: "{}", languageModel: languageModel)
        }
        #expect(!fingerprint("prompt", languageModel: false).contains("truncation"))
        #expect(!fingerprint("end", languageModel: true).contains("truncation"))
        #expect(fingerprint("prompt", languageModel: true).contains("\"truncation\":\"prompt\""))
        #expect(fingerprint("end", languageModel: true).contains("\"trainOnPrompt\":false"))
    }
}
