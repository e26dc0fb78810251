import Data
import Foundation
import RankwiseCore
import Tokenizers
import Training

/// One example of a causal-LM data file.
public enum LanguageModelExample: Sendable, Equatable {
    /// A prompt and the completion to learn (`{"prompt", "completion"}`, or `"response"`).
    case completion(prompt: String, completion: String)
    /// System, user and assistant turns (`{"messages": [{"role", "content"}, …]}`); the assistant's are learnt.
    case conversation([ChatMessage])
    /// Plain text, every token learnt (`{"text"}`).
    case text(String)
}

/// An example as token ids, with the positions whose token is learnt (response-only loss unless asked otherwise).
public struct TokenizedLanguageExample: Sendable, Equatable {
    public var ids: [Int32]
    /// `isTarget[i]`: token `i` is predicted (from position `i - 1`) and counts in the loss.
    public var isTarget: [Bool]
    /// What the maximum length cost the example.
    public var cut: LanguageModelCut
    /// The file line it came from.
    public var line: Int

    public var targetCount: Int { isTarget.filter { $0 }.count }
    /// The example was longer than the maximum length.
    public var truncated: Bool { cut != .none }
}

/// What fitting an example into the maximum length took.
public enum LanguageModelCut: Sendable, Equatable {
    case none
    /// Its prompt text was shortened; every reply token is kept.
    case prompt
    /// It lost its end (replies included).
    case end
}

/// How an example longer than the maximum length is cut.
public enum LanguageModelTruncation: String, Sendable, CaseIterable {
    /// Shorten the prompt text (the longest system or user message first, from its end), keeping the template's
    /// markup and every reply; when the replies and markup alone do not fit, leave the prompts whole and cut the end.
    case prompt
    /// Keep the start, as PEFT / TRL do by default.
    case end
}

/// JSONL data for fine-tuning decoders: reading with errors that name the file and line, and tokenising with the
/// model's chat template and a loss mask.
public enum LanguageModelData {
    /// The examples of a JSONL file, each with its line number; blank lines are skipped. A line that is not a JSON
    /// object, has none of the known shapes, or has a field of the wrong type is an error naming the file and line.
    public static func read(_ data: Data, file: String) throws -> [(line: Int, example: LanguageModelExample)] {
        guard let text = String(data: data, encoding: .utf8) else {
            throw DataError("\(file): not UTF-8 text")
        }
        var examples: [(line: Int, example: LanguageModelExample)] = []
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = index + 1
            let trimmed = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty { continue }
            func bad(_ message: String) -> DataError { DataError("\(file): line \(line): \(message)") }
            guard let object = (try? JSONSerialization.jsonObject(with: Data(trimmed.utf8))) as? [String: Any] else {
                throw bad("not a JSON object")
            }
            func string(_ key: String) throws -> String? {
                guard let value = object[key], !(value is NSNull) else { return nil }
                guard let text = value as? String else { throw bad("\"\(key)\" is not a string") }
                return text
            }
            if let messages = object["messages"] {
                guard let list = messages as? [[String: Any]], !list.isEmpty else {
                    throw bad("\"messages\" is not a non-empty list of {\"role\", \"content\"} objects")
                }
                let turns = try list.enumerated().map { position, entry -> ChatMessage in
                    guard let role = entry["role"] as? String, let content = entry["content"] as? String else {
                        throw bad("message \(position + 1) needs a string \"role\" and a string \"content\"")
                    }
                    guard ["system", "user", "assistant"].contains(role) else {
                        throw bad("message \(position + 1) has role \"\(role)\" (system, user or assistant)")
                    }
                    return ChatMessage(role: role, content: content)
                }
                guard turns.contains(where: { $0.role == "assistant" }) else {
                    throw bad("the conversation has no assistant message to learn")
                }
                examples.append((line, .conversation(turns)))
            } else if let prompt = try string("prompt") {
                guard let completion = try string("completion") ?? string("response") else {
                    throw bad("\"prompt\" without \"completion\" (or \"response\")")
                }
                examples.append((line, .completion(prompt: prompt, completion: completion)))
            } else if object["label"] != nil {
                throw bad(
                    "a labelled row (classification data): a decoder fine-tunes on \"prompt\" + \"completion\", "
                        + "\"messages\" or \"text\"; classify with an encoder (--model minilm)")
            } else if let text = try string("text") {
                examples.append((line, .text(text)))
            } else {
                let keys = object.keys.sorted().joined(separator: ", ")
                throw bad("expected \"prompt\" + \"completion\", \"messages\" or \"text\"; found \(keys)")
            }
        }
        return examples
    }

    /// Token ids and loss mask of `example`: a conversation (and a prompt/completion pair, read as one user turn and
    /// the assistant's reply) through `template`, each piece encoded on its own so the mask follows the pieces
    /// exactly; without a template the prompt and completion are joined as they are and `eos`, when given, ends the
    /// completion. `trainOnPrompt` makes every token a target. BOS is put first when `specials` says so. At most
    /// `maxLength` tokens are kept, cut as `truncation` says.
    public static func tokenize(
        _ example: LanguageModelExample, line: Int = 0, tokenizer: Tokenizer, specials: TokenizerSpecials,
        template: ChatTemplate?, trainOnPrompt: Bool = false, maxLength: Int,
        truncation: LanguageModelTruncation = .prompt
    ) -> TokenizedLanguageExample {
        var pieces: [ChatPiece]
        var endsWithEOS = false
        switch example {
        case .text(let text):
            pieces = [ChatPiece(text, .reply)]
        case .completion(let prompt, let completion):
            if let template {
                pieces = template.segments([
                    ChatMessage(role: "user", content: prompt), ChatMessage(role: "assistant", content: completion),
                ])
            } else {
                pieces = [ChatPiece(prompt, .promptText), ChatPiece(completion, .reply)]
                endsWithEOS = specials.eos != nil
            }
        case .conversation(let messages):
            pieces =
                template?.segments(messages)
                ?? messages.map { ChatPiece($0.content, $0.role == "assistant" ? .reply : .promptText) }
            endsWithEOS = template == nil && specials.eos != nil
        }
        var pieceIds = pieces.map { tokenizer.encode($0.text, addSpecialTokens: false).ids.map(Int32.init) }
        let prefixCount = specials.addBOS && specials.bos != nil ? 1 : 0
        let suffixCount = endsWithEOS && specials.eos != nil ? 1 : 0
        var excess = prefixCount + pieceIds.reduce(0) { $0 + $1.count } + suffixCount - maxLength
        var cut = LanguageModelCut.none
        if excess > 0 && truncation == .prompt {
            // Longest prompt text first, each down to its header at most; when even that leaves the example too
            // long (the replies alone do not fit), the prompts stay whole and the end is cut below.
            let order = pieces.indices.filter { pieces[$0].kind == .promptText }.sorted {
                pieceIds[$0].count > pieceIds[$1].count
            }
            let removable = order.map { index in
                max(
                    0, pieceIds[index].count - tokenizer.encode(pieces[index].header, addSpecialTokens: false).ids.count
                )
            }
            if removable.reduce(0, +) >= excess {
                for (index, room) in zip(order, removable) where excess > 0 {
                    let removed = min(excess, room)
                    pieceIds[index].removeLast(removed)
                    excess -= removed
                    if removed > 0 { cut = .prompt }
                }
            }
        }
        var ids: [Int32] = []
        var isTarget: [Bool] = []
        if specials.addBOS, let bos = specials.bos {
            ids.append(Int32(bos))
            isTarget.append(false)
        }
        for (piece, tokens) in zip(pieces, pieceIds) {
            ids += tokens
            isTarget += [Bool](repeating: trainOnPrompt || piece.kind == .reply, count: tokens.count)
        }
        if endsWithEOS, let eos = specials.eos {
            ids.append(Int32(eos))
            isTarget.append(true)
        }
        // The first token has nothing before it to be predicted from.
        if !isTarget.isEmpty { isTarget[0] = false }
        if ids.count > maxLength {
            ids.removeLast(ids.count - maxLength)
            isTarget.removeLast(isTarget.count - maxLength)
            cut = .end
        }
        return TokenizedLanguageExample(ids: ids, isTarget: isTarget, cut: cut, line: line)
    }
}

/// One split of a causal-LM run: the examples as read (for generation and ROUGE) and as tokens.
public struct LanguageModelSplit: Sendable {
    public var examples: [(line: Int, example: LanguageModelExample)]
    public var tokens: [TokenizedLanguageExample]
    /// `examples` tokenised with `base`'s tokenizer and chat template (read once).
    public init(
        _ examples: [(line: Int, example: LanguageModelExample)], base: BaseModel, maxLength: Int,
        trainOnPrompt: Bool = false, truncation: LanguageModelTruncation = .prompt
    ) throws {
        guard let specials = base.specials else { throw DataError("\(base.path): not a decoder") }
        let template = base.chatTemplate
        self.examples = examples
        tokens = examples.map {
            LanguageModelData.tokenize(
                $0.example, line: $0.line, tokenizer: base.tokenizer, specials: specials, template: template,
                trainOnPrompt: trainOnPrompt, maxLength: maxLength, truncation: truncation)
        }
    }

    public init(examples: [(line: Int, example: LanguageModelExample)], tokens: [TokenizedLanguageExample]) {
        self.examples = examples
        self.tokens = tokens
    }

    /// The split as the trainer and the evaluator take it.
    public var tokenizedSet: TokenizedSet {
        TokenizedSet(languageModel: tokens.map(\.ids), isTarget: tokens.map(\.isTarget))
    }
}

extension LanguageModelData {
    /// The train, dev and test splits of a causal-LM run as `data` names them: files read, dev and test split off a
    /// seeded shuffle of the training file when not given, the training sample of `maxTrainExamples` and the
    /// evaluation samples of `maxEvalExamples` drawn with the split seed, tokenised with the model's template.
    /// `print` receives the data summary: rows, split, tokens per example, truncation, dropped examples.
    public static func sets(
        _ data: DataOptions, base: BaseModel, maxLength: Int, print: (String) -> Void
    ) throws -> (train: LanguageModelSplit, dev: LanguageModelSplit?, test: LanguageModelSplit?) {
        guard let trainPath = data.train else { throw DataError("--train is required") }
        func read(_ spec: String) throws -> [(line: Int, example: LanguageModelExample)] {
            let path = try ModelStore.resolveData(spec)
            let suffix = (path as NSString).pathExtension.lowercased()
            guard !["csv", "tsv", "txt"].contains(suffix) else {
                throw DataError(
                    "\(path): a decoder fine-tunes on JSONL (\"prompt\" + \"completion\", \"messages\" or \"text\"), "
                        + "not .\(suffix); classify with an encoder (--model minilm)")
            }
            guard let bytes = FileManager.default.contents(atPath: path) else {
                throw DataError("\(path): cannot read")
            }
            let examples = try LanguageModelData.read(bytes, file: path)
            print("\(path): \(examples.count) examples")
            return examples
        }
        var train = try read(trainPath)
        var dev = try data.dev.map(read)
        var test = try data.test.map(read)
        if dev == nil || test == nil {
            var random = SplitMix64(seed: data.splitSeed)
            random.shuffle(&train)
            let devCount = dev == nil ? Int((Double(train.count) * data.devFraction).rounded()) : 0
            let testCount = test == nil ? Int((Double(train.count) * data.testFraction).rounded()) : 0
            if dev == nil && devCount > 0 { dev = Array(train[..<devCount]) }
            if test == nil && testCount > 0 { test = Array(train[devCount..<(devCount + testCount)]) }
            train.removeFirst(devCount + testCount)
        }
        if let limit = data.maxTrainExamples, limit < train.count {
            // A seeded sample: a file's rows are often grouped, never the first rows.
            if data.dev != nil && data.test != nil {
                var random = SplitMix64(seed: data.splitSeed &+ 0x5A17)
                random.shuffle(&train)
            }
            train.removeLast(train.count - limit)
        }
        if let limit = data.maxEvalExamples {
            for (offset, part) in [dev, test].enumerated() {
                guard var part, limit < part.count else { continue }
                var random = SplitMix64(seed: data.splitSeed &+ 0xE7A1 &+ UInt64(offset))
                random.shuffle(&part)
                part.removeLast(part.count - limit)
                if offset == 0 { dev = part } else { test = part }
            }
        }
        guard let specials = base.specials else { throw DataError("\(base.path): not a decoder") }
        let template = base.chatTemplate
        if specials.chatTemplate != nil && template == nil {
            print("warning: the model's chat template is not one Rankwise reads; prompts and replies are joined raw")
        }
        func tokenize(_ examples: [(line: Int, example: LanguageModelExample)]) throws -> LanguageModelSplit {
            try LanguageModelSplit(
                examples, base: base, maxLength: maxLength, trainOnPrompt: data.trainOnPrompt,
                truncation: data.languageModelTruncation)
        }
        var trainSplit = try tokenize(train)
        let empty = trainSplit.tokens.indices.filter { trainSplit.tokens[$0].targetCount == 0 }
        if !empty.isEmpty {
            let lines = empty.prefix(5).map { String(trainSplit.tokens[$0].line) }.joined(separator: ", ")
            print(
                "warning: \(empty.count) training examples have no token to learn within --max-length \(maxLength) "
                    + "(lines \(lines)\(empty.count > 5 ? ", ..." : "")): dropped")
            let kept = Set(trainSplit.tokens.indices).subtracting(empty).sorted()
            trainSplit = LanguageModelSplit(
                examples: kept.map { trainSplit.examples[$0] }, tokens: kept.map { trainSplit.tokens[$0] })
        }
        guard !trainSplit.tokens.isEmpty else { throw DataError("\(trainPath): no training examples left") }
        let devSplit = try dev.map(tokenize)
        let testSplit = try test.map(tokenize)
        summarise(train: trainSplit, dev: devSplit, test: testSplit, maxLength: maxLength, print: print)
        return (trainSplit, devSplit, testSplit)
    }

    /// The data summary of a causal-LM run.
    static func summarise(
        train: LanguageModelSplit, dev: LanguageModelSplit?, test: LanguageModelSplit?, maxLength: Int,
        print: (String) -> Void
    ) {
        let parts = [("train", Optional(train)), ("dev", dev), ("test", test)].compactMap { name, split in
            split.map { "\(name) \($0.tokens.count)" }
        }
        print("split: " + parts.joined(separator: ", "))
        func percentiles(_ values: [Int]) -> String {
            let sorted = values.sorted()
            guard !sorted.isEmpty else { return "none" }
            let at = { (q: Double) in sorted[min(sorted.count - 1, Int(Double(sorted.count) * q))] }
            return "p50 \(at(0.5)), p90 \(at(0.9)), max \(sorted.last!)"
        }
        print(
            "tokens per example (train): \(percentiles(train.tokens.map(\.ids.count))); learnt tokens: "
                + "\(percentiles(train.tokens.map(\.targetCount))), \(train.tokens.reduce(0) { $0 + $1.targetCount }) "
                + "in all")
        for (name, split) in [("train", Optional(train)), ("dev", dev), ("test", test)] {
            guard let split else { continue }
            let shortened = split.tokens.filter { $0.cut == .prompt }.count
            if shortened > 0 {
                print(
                    "\(shortened) of \(split.tokens.count) \(name) examples were longer than --max-length "
                        + "\(maxLength): "
                        + "their prompt text was shortened from its end, the replies kept (--truncation)")
            }
            let lostEnd = split.tokens.filter { $0.cut == .end }.count
            if lostEnd > 0 {
                print(
                    "warning: \(lostEnd) of \(split.tokens.count) \(name) examples were longer than --max-length "
                        + "\(maxLength) and lost their end (replies included)")
            }
        }
    }
}
