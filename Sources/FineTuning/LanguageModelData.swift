import Data
import Foundation
import Tokenizers

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
    /// The example was longer than the maximum length and lost its end.
    public var truncated: Bool
    /// The file line it came from.
    public var line: Int

    public var targetCount: Int { isTarget.filter { $0 }.count }
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
    /// `maxLength` tokens are kept (the start).
    public static func tokenize(
        _ example: LanguageModelExample, line: Int = 0, tokenizer: Tokenizer, specials: TokenizerSpecials,
        template: ChatTemplate?, trainOnPrompt: Bool = false, maxLength: Int
    ) -> TokenizedLanguageExample {
        var pieces: [(text: String, isReply: Bool)]
        var endsWithEOS = false
        switch example {
        case .text(let text):
            pieces = [(text, true)]
        case .completion(let prompt, let completion):
            if let template {
                pieces = template.segments([
                    ChatMessage(role: "user", content: prompt), ChatMessage(role: "assistant", content: completion),
                ])
            } else {
                pieces = [(prompt, false), (completion, true)]
                endsWithEOS = specials.eos != nil
            }
        case .conversation(let messages):
            pieces = template?.segments(messages) ?? messages.map { ($0.content, $0.role == "assistant") }
            endsWithEOS = template == nil && specials.eos != nil
        }
        var ids: [Int32] = []
        var isTarget: [Bool] = []
        if specials.addBOS, let bos = specials.bos {
            ids.append(Int32(bos))
            isTarget.append(false)
        }
        for piece in pieces {
            let pieceIds = tokenizer.encode(piece.text, addSpecialTokens: false).ids
            ids += pieceIds.map(Int32.init)
            isTarget += [Bool](repeating: trainOnPrompt || piece.isReply, count: pieceIds.count)
        }
        if endsWithEOS, let eos = specials.eos {
            ids.append(Int32(eos))
            isTarget.append(true)
        }
        // The first token has nothing before it to be predicted from.
        if !isTarget.isEmpty { isTarget[0] = false }
        let truncated = ids.count > maxLength
        if truncated {
            ids.removeLast(ids.count - maxLength)
            isTarget.removeLast(isTarget.count - maxLength)
        }
        return TokenizedLanguageExample(ids: ids, isTarget: isTarget, truncated: truncated, line: line)
    }
}
