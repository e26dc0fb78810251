import GGUF

/// The special ids and the chat format a decoder's tokenizer declares.
public struct TokenizerSpecials: Sendable {
    public var bos: Int?
    public var eos: Int?
    public var pad: Int?
    public var addBOS: Bool
    public var addEOS: Bool
    /// The chat template's source (Jinja), as the file gives it.
    public var chatTemplate: String?

    public init(bos: Int?, eos: Int?, pad: Int?, addBOS: Bool, addEOS: Bool, chatTemplate: String?) {
        self.bos = bos
        self.eos = eos
        self.pad = pad
        self.addBOS = addBOS
        self.addEOS = addEOS
        self.chatTemplate = chatTemplate
    }
}

extension Tokenizer {
    /// The tokenizer a GGUF file's metadata describes: `tokenizer.ggml.model` "gpt2" (byte-level BPE) with its
    /// tokens, merges and pre-tokenizer (`tokenizer.ggml.pre`); control and user-defined tokens (token types 3 and
    /// 4) are matched whole in the text, as llama.cpp and transformers do; BOS and EOS are added as
    /// `add_bos_token` / `add_eos_token` say (absent: not added).
    public static func gguf(_ file: GGUFFile) throws -> (Tokenizer, TokenizerSpecials) {
        func bad(_ message: String) -> TokenizerError { .invalid("\(file.path): \(message)") }
        let kind = try file.string("tokenizer.ggml.model")
        guard kind == "gpt2" else {
            throw bad("tokenizer model \"\(kind)\" is not supported yet (supported: gpt2, byte-level BPE)")
        }
        let tokens = try file.strings("tokenizer.ggml.tokens")
        let types =
            file.metadata["tokenizer.ggml.token_type"] == nil ? [] : try file.integers("tokenizer.ggml.token_type")
        guard types.isEmpty || types.count == tokens.count else {
            throw bad("tokenizer.ggml.token_type has \(types.count) entries for \(tokens.count) tokens")
        }
        let model: BPE
        do {
            model = try BPE(tokens: tokens, merges: try file.strings("tokenizer.ggml.merges"))
        } catch let error as TokenizerError {
            throw bad("\(error)")
        }
        let split = try ByteLevelSplit(ggufName: (try? file.string("tokenizer.ggml.pre")) ?? "default")
        let added = types.enumerated().filter { $0.element == 3 || $0.element == 4 }.map {
            (tokens[$0.offset], $0.offset)
        }
        func id(_ key: String) throws -> Int? {
            guard file.metadata[key] != nil else { return nil }
            let value = try file.integer(key)
            guard value >= 0 && value < tokens.count else { throw bad("\(key) \(value) is not a token id") }
            return value
        }
        let specials = TokenizerSpecials(
            bos: try id("tokenizer.ggml.bos_token_id"), eos: try id("tokenizer.ggml.eos_token_id"),
            pad: try id("tokenizer.ggml.padding_token_id"),
            addBOS: (try? file.bool("tokenizer.ggml.add_bos_token")) ?? false,
            addEOS: (try? file.bool("tokenizer.ggml.add_eos_token")) ?? false,
            chatTemplate: try? file.string("tokenizer.chat_template"))
        var single: [TemplateProcessing.Piece] = [.sequence(first: true, typeId: 0)]
        if specials.addBOS, let bos = specials.bos { single.insert(.special(ids: [bos], typeId: 0), at: 0) }
        if specials.addEOS, let eos = specials.eos { single.append(.special(ids: [eos], typeId: 0)) }
        let post =
            single.count > 1
            ? TemplateProcessing(single: single, pair: single + [.sequence(first: false, typeId: 0)]) : nil
        // Control tokens are special (skipped when decoding without special tokens); user-defined ones are not.
        let control = Set(types.enumerated().filter { $0.element == 3 }.map(\.offset))
        let tokenizer = Tokenizer(
            normalizer: nil, preTokenizer: ByteLevelPreTokenizer(split: split), model: model, postProcessor: post,
            addedTokens: added, padId: specials.pad ?? specials.eos ?? 0, decoder: .byteLevel, specialTokenIds: control)
        return (tokenizer, specials)
    }
}
