import Foundation
import GGUF
import Models
import RankwiseCore
import Tokenizers

/// Why generation stopped.
public enum StopReason: String, Sendable {
    case stopToken = "stop_token"
    case stopString = "stop_string"
    case maxTokens = "max_tokens"
    case contextFull = "context_full"
}

/// One finished generation.
public struct Generation: Sendable {
    public var promptTokens: Int
    /// The generated ids (a stop token not included).
    public var ids: [Int32]
    /// The generated text (cut before a stop string).
    public var text: String
    public var stopReason: StopReason
    /// Seconds spent on the prompt and on the generated tokens.
    public var promptSeconds: Double
    public var generationSeconds: Double
    public var promptTokensPerSecond: Double { Double(promptTokens) / max(promptSeconds, 1e-9) }
    public var tokensPerSecond: Double { Double(ids.count) / max(generationSeconds, 1e-9) }
}

/// Text generation with a LLaMA-family model and its tokenizer: the prompt in one pass through the key/value
/// cache, then one token at a time, streamed as text as soon as it forms whole characters.
public final class Generator {
    public let model: LlamaModel
    public let tokenizer: Tokenizer
    public let specials: TokenizerSpecials
    /// The chat format of the model's template, when it has one Rankwise knows.
    public let chatTemplate: ChatTemplate?
    public let cache: KeyValueCache

    public init(model: LlamaModel, tokenizer: Tokenizer, specials: TokenizerSpecials, capacity: Int? = nil) {
        self.model = model
        self.tokenizer = tokenizer
        self.specials = specials
        chatTemplate = specials.chatTemplate.flatMap { try? ChatTemplate(jinja: $0) }
        cache = model.makeCache(capacity: capacity)
    }

    /// The prompt ids of a conversation in the model's chat format (an error when the template is not known).
    public func chatPrompt(_ messages: [ChatMessage]) throws -> [Int32] {
        guard let chatTemplate else {
            _ = try ChatTemplate(jinja: specials.chatTemplate ?? "")
            throw ModelError("the model has no chat template; give --raw")
        }
        return tokenizer.encode(chatTemplate.render(messages)).ids.map(Int32.init)
    }

    /// The prompt ids of raw text (BOS added when the model asks for it).
    public func rawPrompt(_ text: String) -> [Int32] { tokenizer.encode(text).ids.map(Int32.init) }

    /// Generates up to `maxTokens` after `prompt`; `stream` receives each new piece of text. Stops at the model's
    /// EOS or `stopTokens`, or when the text contains one of `stopStrings` (cut before it).
    public func generate(
        prompt: [Int32], maxTokens: Int, sampling: SamplingOptions, stopTokens: Set<Int32> = [],
        stopStrings: [String] = [], stream: (String) -> Void = { _ in }
    ) throws -> Generation {
        try sampling.validate()
        guard !prompt.isEmpty else { throw ModelError("the prompt is empty") }
        cache.reset()
        guard prompt.count < cache.capacity else {
            throw ModelError("the prompt has \(prompt.count) tokens; the context holds \(cache.capacity)")
        }
        var sequence = SequenceProgress(
            prompt: prompt, maxTokens: maxTokens, sampling: sampling, stopTokens: stops(adding: stopTokens),
            stopStrings: stopStrings)
        // Streaming works on UTF-8 bytes: a later token may join an earlier character (an emoji's variation
        // selector, "\r" + "\n"), so characters are not counted.
        var emittedBytes = 0
        func emit(_ text: String, upTo end: Int) {
            let bytes = Array(text.utf8)
            guard end > emittedBytes else { return }
            stream(String(decoding: bytes[emittedBytes..<end], as: UTF8.self))
            emittedBytes = end
        }
        let started = Date()
        var logits = try model.decode(prompt, cache: cache)
        let promptSeconds = Date().timeIntervalSince(started)
        let generationStarted = Date()
        while let next = sequence.take(logits: logits, tokenizer: tokenizer) {
            emit(sequence.text, upTo: Self.streamableBytes(sequence.text, stopStrings: stopStrings))
            guard cache.length < cache.capacity else {
                sequence.reason = .contextFull
                break
            }
            logits = try model.decode([next], cache: cache)
        }
        let text = sequence.text
        emit(text, upTo: text.utf8.count)
        return Generation(
            promptTokens: prompt.count, ids: sequence.generated, text: text, stopReason: sequence.reason,
            promptSeconds: promptSeconds, generationSeconds: Date().timeIntervalSince(generationStarted))
    }

    /// `generate` for several prompts at once, without streaming: each prompt runs through its own cache, then every
    /// step decodes the next token of all unfinished sequences in one pass (`LlamaModel.decodeStep`), which reads the
    /// weights once for all of them. Each sequence stops by the same rules as alone and samples with its own
    /// sampler seeded as `generate`'s; the replies equal one-at-a-time generation up to float rounding (a batch's
    /// products run over float32 weights, one row over the quantised blocks when kept). Every `Generation` reports the
    /// whole batch's seconds.
    public func generateBatch(
        prompts: [[Int32]], maxTokens: Int, sampling: SamplingOptions, stopTokens: Set<Int32> = [],
        stopStrings: [String] = []
    ) throws -> [Generation] {
        try sampling.validate()
        for (index, prompt) in prompts.enumerated() {
            guard !prompt.isEmpty else { throw ModelError("prompt \(index + 1) is empty") }
            guard prompt.count < cache.capacity else {
                throw ModelError(
                    "prompt \(index + 1) has \(prompt.count) tokens; the context holds \(cache.capacity)")
            }
        }
        let stopSet = stops(adding: stopTokens)
        var sequences = prompts.map {
            SequenceProgress(
                prompt: $0, maxTokens: maxTokens, sampling: sampling, stopTokens: stopSet, stopStrings: stopStrings)
        }
        // A sequence holds at most its prompt and maxTokens - 1 fed tokens: no more memory than that, and no less
        // than `generate` has, so the context fills at the same token.
        let caches = prompts.map { model.makeCache(capacity: min(cache.capacity, $0.count + max(maxTokens, 1))) }
        let started = Date()
        var logits = try zip(prompts, caches).map { try model.decode($0, cache: $1) }
        let promptSeconds = Date().timeIntervalSince(started)
        let generationStarted = Date()
        var active = Array(prompts.indices)
        let vocabulary = model.config.vocabSize
        while !active.isEmpty {
            var feeding: [(sequence: Int, token: Int32)] = []
            for index in active {
                guard let next = sequences[index].take(logits: logits[index], tokenizer: tokenizer) else { continue }
                guard caches[index].length < caches[index].capacity else {
                    sequences[index].reason = .contextFull
                    continue
                }
                feeding.append((index, next))
            }
            guard !feeding.isEmpty else { break }
            let rows = try model.decodeStep(feeding.map(\.token), caches: feeding.map { caches[$0.sequence] })
            for (row, entry) in feeding.enumerated() {
                logits[entry.sequence] = Array(rows[(row * vocabulary)..<((row + 1) * vocabulary)])
            }
            active = feeding.map(\.sequence)
        }
        let generationSeconds = Date().timeIntervalSince(generationStarted)
        return zip(prompts, sequences).map { prompt, sequence in
            Generation(
                promptTokens: prompt.count, ids: sequence.generated, text: sequence.text, stopReason: sequence.reason,
                promptSeconds: promptSeconds, generationSeconds: generationSeconds)
        }
    }

    /// The model's EOS and `extra`: the tokens that end a reply.
    private func stops(adding extra: Set<Int32>) -> Set<Int32> {
        var stops = extra
        if let eos = specials.eos { stops.insert(Int32(eos)) }
        return stops
    }
}

/// One reply being generated: its sampler, history and text, and the rules that end it.
struct SequenceProgress {
    let maxTokens: Int
    let stopTokens: Set<Int32>
    let stopStrings: [String]
    var sampler: TokenSampler
    var history: [Int32]
    var generated: [Int32] = []
    /// The generated text, cut before a stop string.
    var text = ""
    var reason = StopReason.maxTokens

    init(prompt: [Int32], maxTokens: Int, sampling: SamplingOptions, stopTokens: Set<Int32>, stopStrings: [String]) {
        self.maxTokens = maxTokens
        self.stopTokens = stopTokens
        self.stopStrings = stopStrings
        sampler = TokenSampler(options: sampling)
        history = prompt
    }

    /// Samples the next token from the last position's logits and returns it when it is to be fed back: nil when
    /// the reply ends (a stop token, a stop string, or `maxTokens` reached), with `reason` saying why.
    mutating func take(logits: [Float], tokenizer: Tokenizer) -> Int32? {
        guard generated.count < maxTokens else { return nil }
        let next = sampler.next(logits: logits, history: history)
        if stopTokens.contains(next) {
            reason = .stopToken
            return nil
        }
        generated.append(next)
        history.append(next)
        text = tokenizer.decode(generated.map(Int.init), skipSpecial: false)
        if let stop = stopStrings.compactMap({ text.range(of: $0) }).min(by: { $0.lowerBound < $1.lowerBound }) {
            text = String(text[..<stop.lowerBound])
            reason = .stopString
            return nil
        }
        return generated.count < maxTokens ? next : nil
    }
}

extension Generator {
    /// How many leading UTF-8 bytes of `text` can be shown now: not a character still being spelled out (trailing
    /// U+FFFD), nor an ending that may be the start of a stop string; always on a character boundary.
    static func streamableBytes(_ text: String, stopStrings: [String]) -> Int {
        let bytes = Array(text.utf8)
        var end = bytes.count
        let replacement = Array("\u{FFFD}".utf8)
        while end >= 3 && Array(bytes[(end - 3)..<end]) == replacement { end -= 3 }
        var heldBack = 0
        for stop in stopStrings {
            let stopBytes = Array(stop.utf8)
            for length in stride(from: min(stopBytes.count - 1, end), to: heldBack, by: -1)
            where Array(bytes[(end - length)..<end]) == Array(stopBytes[0..<length]) {
                heldBack = length
                break
            }
        }
        end -= heldBack
        while end > 0 && end < bytes.count && bytes[end] & 0xC0 == 0x80 { end -= 1 }
        return end
    }

    /// A generator for a model: a GGUF file, or a Hugging Face LLaMA-family directory (config.json, safetensors,
    /// tokenizer.json).
    public static func load(model path: String, capacity: Int? = nil) throws -> Generator {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ModelError("\(path): no such model file or directory")
        }
        guard isDirectory.boolValue else { return try load(gguf: path, capacity: capacity) }
        let model = try LlamaModel.load(directory: path)
        let (tokenizer, specials) = try Tokenizer.huggingFace(directory: path)
        guard tokenizer.model.vocabularySize <= model.config.vocabSize else {
            throw ModelError(
                "\(path): tokenizer.json has \(tokenizer.model.vocabularySize) tokens, the model "
                    + "\(model.config.vocabSize)"
            )
        }
        return Generator(model: model, tokenizer: tokenizer, specials: specials, capacity: capacity)
    }

    /// A generator for the GGUF file at `path` (weights dequantised to float32 for prompts, kept quantised for single
    /// tokens; tokenizer from its metadata).
    public static func load(gguf path: String, capacity: Int? = nil) throws -> Generator {
        let file: GGUFFile
        do { file = try GGUFFile(path: path) } catch { throw ModelError("\(error)") }
        let model = try LlamaModel.load(gguf: file)
        let (tokenizer, specials) = try Tokenizer.gguf(file)
        return Generator(model: model, tokenizer: tokenizer, specials: specials, capacity: capacity)
    }
}

/// One prompt of a prompt file: raw text, or a conversation.
public enum PromptInput: Sendable, Equatable {
    case text(String)
    case messages([ChatMessage])

    /// The prompts of `data`: JSONL lines with `prompt` (text) or `messages` (a list of `{role, content}`) when the
    /// first non-empty line starts with `{`, else one text per non-empty line. Errors name the file and line.
    public static func read(_ data: Data, file: String) throws -> [PromptInput] {
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        let isJSONL = lines.first { !$0.trimmingCharacters(in: .whitespaces).isEmpty }?.hasPrefix("{") ?? false
        var prompts: [PromptInput] = []
        for (index, line) in lines.enumerated() {
            let text = line.hasSuffix("\r") ? String(line.dropLast()) : String(line)
            if text.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            guard isJSONL else {
                prompts.append(.text(text))
                continue
            }
            func bad(_ message: String) -> ModelError { ModelError("\(file):\(index + 1): \(message)") }
            guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
                throw bad("not a JSON object")
            }
            if let prompt = object["prompt"] as? String {
                prompts.append(.text(prompt))
            } else if let messages = object["messages"] as? [[String: Any]] {
                prompts.append(
                    .messages(
                        try messages.map {
                            guard let role = $0["role"] as? String, let content = $0["content"] as? String else {
                                throw bad("every message needs a string \"role\" and \"content\"")
                            }
                            return ChatMessage(role: role, content: content)
                        }))
            } else {
                throw bad("needs \"prompt\" (a string) or \"messages\" (a list of {role, content})")
            }
        }
        return prompts
    }
}
