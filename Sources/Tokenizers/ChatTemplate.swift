/// One message of a conversation.
public struct ChatMessage: Sendable, Equatable, Codable {
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// A piece of a rendered conversation and what it is.
public struct ChatPiece: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// An assistant's reply and the end of its turn: learnt with response-only loss.
        case reply
        /// The content of a system or user message (or a prompt), after its `header`: what truncation shortens.
        case promptText
        /// The template's own text: role headers, turn ends.
        case markup
    }
    public var text: String
    public var kind: Kind
    /// The start of `text` that truncation keeps (a message's role header, encoded with its content so the tokens
    /// are the whole conversation's).
    public var header: String

    public init(_ text: String, _ kind: Kind, header: String = "") {
        self.text = text
        self.kind = kind
        self.header = header
    }
}

/// A chat format recognised from a model's Jinja chat template (Rankwise has no Jinja engine: it knows the formats
/// and reads from the template only what varies, such as the default system prompt).
public enum ChatTemplate: Sendable, Equatable {
    /// ChatML: `<|im_start|>ROLE\nCONTENT<|im_end|>\n` per message, `<|im_start|>assistant\n` to ask for a reply;
    /// a conversation that does not open with a system message gets the template's default one, if it has one.
    case chatML(defaultSystem: String?)

    /// The format of `template`, or an error saying what was found.
    public init(jinja template: String) throws {
        guard template.contains("<|im_start|>"), template.contains("<|im_end|>") else {
            throw TokenizerError.invalid(
                "the model's chat template is not one Rankwise knows (known: ChatML); give --raw to use the prompt "
                    + "as it is")
        }
        self = .chatML(defaultSystem: Self.literalSystemPrompt(template))
    }

    /// The system prompt a ChatML template writes itself: the text between `<|im_start|>system` and the next
    /// `<|im_end|>` when it is a literal (no `{{` inside), else nil.
    static func literalSystemPrompt(_ template: String) -> String? {
        guard let start = template.range(of: "<|im_start|>system\n") else { return nil }
        guard let end = template.range(of: "<|im_end|>", range: start.upperBound..<template.endIndex) else {
            return nil
        }
        let prompt = String(template[start.upperBound..<end.lowerBound])
        return prompt.contains("{{") || prompt.contains("{%") || prompt.contains("'") ? nil : prompt
    }

    /// The conversation as `render` writes it (no generation prompt), in pieces in order: an assistant's reply (its
    /// content and the end of its turn, `<|im_end|>`: what response-only loss trains on), the content of a system or
    /// user message (what truncation may shorten), and the template's markup around them.
    public func segments(_ messages: [ChatMessage]) -> [ChatPiece] {
        switch self {
        case .chatML(let defaultSystem):
            var pieces: [ChatPiece] = []
            func message(_ role: String, _ content: String) {
                let header = "<|im_start|>\(role)\n"
                pieces.append(ChatPiece(header + content, .promptText, header: header))
                pieces.append(ChatPiece("<|im_end|>\n", .markup))
            }
            if let defaultSystem, messages.first?.role != "system" { message("system", defaultSystem) }
            for entry in messages {
                if entry.role == "assistant" {
                    pieces.append(ChatPiece("<|im_start|>assistant\n", .markup))
                    pieces.append(ChatPiece("\(entry.content)<|im_end|>", .reply))
                    pieces.append(ChatPiece("\n", .markup))
                } else {
                    message(entry.role, entry.content)
                }
            }
            return pieces
        }
    }

    /// The format as an Ollama Modelfile states it: a Go `TEMPLATE` over `.Messages`, the default `SYSTEM` prompt
    /// (Ollama adds it as the first message when a conversation has none) and the `stop` strings.
    public var ollama: (template: String, system: String?, stops: [String]) {
        switch self {
        case .chatML(let defaultSystem):
            let template =
                "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end "
                + "}}<|im_start|>assistant\n"
            return (template, defaultSystem, ["<|im_start|>", "<|im_end|>"])
        }
    }

    /// The conversation as the model reads it, ending with the assistant's turn opened when `addGenerationPrompt`.
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool = true) -> String {
        switch self {
        case .chatML(let defaultSystem):
            var text = ""
            if let defaultSystem, messages.first?.role != "system" {
                text += "<|im_start|>system\n\(defaultSystem)<|im_end|>\n"
            }
            for message in messages { text += "<|im_start|>\(message.role)\n\(message.content)<|im_end|>\n" }
            if addGenerationPrompt { text += "<|im_start|>assistant\n" }
            return text
        }
    }
}
