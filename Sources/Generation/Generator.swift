import Foundation
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
    let cache: KeyValueCache

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
        var stops = stopTokens
        if let eos = specials.eos { stops.insert(Int32(eos)) }
        var sampler = TokenSampler(options: sampling)
        var history = prompt
        var generated: [Int32] = []
        var emitted = ""
        let started = Date()
        var logits = try model.decode(prompt, cache: cache)
        let promptSeconds = Date().timeIntervalSince(started)
        let generationStarted = Date()
        var reason = StopReason.maxTokens
        while generated.count < maxTokens {
            let next = sampler.next(logits: logits, history: history)
            if stops.contains(next) {
                reason = .stopToken
                break
            }
            generated.append(next)
            history.append(next)
            var text = tokenizer.decode(generated.map(Int.init), skipSpecial: false)
            if let stop = stopStrings.compactMap({ text.range(of: $0) }).min(by: { $0.lowerBound < $1.lowerBound }) {
                text = String(text[..<stop.lowerBound])
                if text.count > emitted.count { stream(String(text.dropFirst(emitted.count))) }
                emitted = text
                reason = .stopString
                break
            }
            // Hold back a character still being spelled out byte by byte (decoded as U+FFFD for now).
            if !text.hasSuffix("\u{FFFD}"), text.count > emitted.count, text.hasPrefix(emitted) {
                stream(String(text.dropFirst(emitted.count)))
                emitted = text
            }
            if generated.count == maxTokens { break }
            guard cache.length < cache.capacity else {
                reason = .contextFull
                break
            }
            logits = try model.decode([next], cache: cache)
        }
        let text = reason == .stopString ? emitted : tokenizer.decode(generated.map(Int.init), skipSpecial: false)
        if reason != .stopString && text.count > emitted.count && text.hasPrefix(emitted) {
            stream(String(text.dropFirst(emitted.count)))
        }
        return Generation(
            promptTokens: prompt.count, ids: generated, text: text, stopReason: reason, promptSeconds: promptSeconds,
            generationSeconds: Date().timeIntervalSince(generationStarted))
    }
}
