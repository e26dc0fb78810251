import Foundation
import RankwiseCore
import Generation
import Metrics
import Models
import Tokenizers

/// Generation-based evaluation of a causal LM: each example's prompt (a completion's prompt, or a conversation up to
/// its last assistant turn) goes through the model's chat template, the model generates with `generate`'s decoding
/// options, and the text is scored against the reference reply with ROUGE-1/2/L (rouge-score's tokenisation, Porter
/// stemming by default, as the summarisation papers report it).
public struct GenerationEvaluation: Sendable {
    public struct Options: Sendable {
        public var maxNewTokens = 128
        public var sampling = SamplingOptions()
        public var stemming = true
        /// Replies generated together (`Generator.generateBatch`); 1 generates one at a time.
        public var batchSize = 8
        public init() {}
    }

    /// One scored example.
    public struct Item: Sendable {
        public var line: Int
        public var reference: String
        public var prediction: String
        public var rouge: Rouge.Scores
        public var promptTokens: Int
        public var newTokens: Int
    }

    public var items: [Item]
    /// Examples with nothing to generate toward (plain `text` rows), not scored.
    public var skipped: Int
    public var seconds: Double

    /// Mean F-measures over the items.
    public var rouge1: Double { mean(\.rouge1.fmeasure) }
    public var rouge2: Double { mean(\.rouge2.fmeasure) }
    public var rougeL: Double { mean(\.rougeL.fmeasure) }
    public var newTokensPerSecond: Double { Double(items.reduce(0) { $0 + $1.newTokens }) / max(seconds, 1e-9) }

    private func mean(_ score: KeyPath<Rouge.Scores, Double>) -> Double {
        items.isEmpty ? 0 : items.reduce(0) { $0 + $1.rouge[keyPath: score] } / Double(items.count)
    }

    /// One JSON line per item: its file line, reference, prediction and ROUGE F-measures.
    public func jsonLines() throws -> String {
        var lines = ""
        for item in items {
            let record: [String: Any] = [
                "line": item.line, "reference": item.reference, "prediction": item.prediction,
                "rouge1": item.rouge.rouge1.fmeasure, "rouge2": item.rouge.rouge2.fmeasure,
                "rougeL": item.rouge.rougeL.fmeasure,
            ]
            let data = try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys])
            lines += String(decoding: data, as: UTF8.self) + "\n"
        }
        return lines
    }

    /// `rouge1`, `rouge2`, `rougeL` (F-measures) for results and tables.
    public var summary: [String: Double] { ["rouge1": rouge1, "rouge2": rouge2, "rougeL": rougeL] }

    /// The `count` examples (all when -1 or more than there are) that ROUGE scores, the same for every run and for
    /// `rankwise eval` with the same split seed: a seeded shuffle's first `count`, in file order.
    public static func sample(
        _ examples: [(line: Int, example: LanguageModelExample)], count: Int, splitSeed: UInt64
    ) -> [(line: Int, example: LanguageModelExample)] {
        guard count >= 0, count < examples.count else { return examples }
        var shuffled = examples
        var random = SplitMix64(seed: splitSeed &+ 0x60E7)
        random.shuffle(&shuffled)
        return Array(shuffled.prefix(count)).sorted { $0.line < $1.line }
    }

    /// The prompt and reference reply of an example, or nil for plain text.
    public static func promptAndReference(
        _ example: LanguageModelExample
    ) -> (
        messages: [ChatMessage], raw: String?,
        reference: String
    )? {
        switch example {
        case .text: return nil
        case .completion(let prompt, let completion):
            return ([ChatMessage(role: "user", content: prompt)], prompt, completion)
        case .conversation(let messages):
            guard let last = messages.lastIndex(where: { $0.role == "assistant" }) else { return nil }
            return (Array(messages[..<last]), nil, messages[last].content)
        }
    }

    /// Generates a reply for each example with `generator` (its model carries the adapter being evaluated),
    /// `options.batchSize` at a time, and scores it. `progress` receives the count done after each batch.
    public static func run(
        _ examples: [(line: Int, example: LanguageModelExample)], generator: Generator, options: Options,
        progress: (Int) -> Void = { _ in }
    ) throws -> GenerationEvaluation {
        let started = Date()
        // A prompt longer than the context keeps its end, where the question is.
        let room = generator.cache.capacity - options.maxNewTokens - 1
        guard room > 0 else { throw ModelError("--max-new-tokens \(options.maxNewTokens) fills the context") }
        var pending: [(line: Int, reference: String, prompt: [Int32])] = []
        var skipped = 0
        for entry in examples {
            guard let (messages, raw, reference) = promptAndReference(entry.example) else {
                skipped += 1
                continue
            }
            var prompt =
                generator.chatTemplate != nil
                ? try generator.chatPrompt(messages)
                : generator.rawPrompt(raw ?? messages.map(\.content).joined(separator: "\n"))
            if prompt.count > room { prompt.removeFirst(prompt.count - room) }
            pending.append((entry.line, reference, prompt))
        }
        var items: [Item] = []
        for batchStart in stride(from: 0, to: pending.count, by: max(options.batchSize, 1)) {
            let batch = pending[batchStart..<min(batchStart + max(options.batchSize, 1), pending.count)]
            let outputs = try generator.generateBatch(
                prompts: batch.map(\.prompt), maxTokens: options.maxNewTokens, sampling: options.sampling)
            for (entry, output) in zip(batch, outputs) {
                let prediction = output.text.trimmingCharacters(in: .whitespacesAndNewlines)
                items.append(
                    Item(
                        line: entry.line, reference: entry.reference, prediction: prediction,
                        rouge: Rouge.score(target: entry.reference, prediction: prediction, stemming: options.stemming),
                        promptTokens: entry.prompt.count, newTokens: output.ids.count))
            }
            progress(skipped + items.count)
        }
        return GenerationEvaluation(items: items, skipped: skipped, seconds: Date().timeIntervalSince(started))
    }
}

extension BaseModel {
    /// A generator over `backbone` (this model's weights, with any adapters attached to it) and this model's
    /// tokenizer; an error when the backbone is not a decoder Rankwise generates with.
    public func generator(_ backbone: any Backbone, capacity: Int = 2048) throws -> Generator {
        guard let decoder = backbone as? LlamaModel, let specials else {
            throw ModelError("\(path): generating needs a LLaMA-family decoder")
        }
        return Generator(model: decoder, tokenizer: tokenizer, specials: specials, capacity: capacity)
    }
}
