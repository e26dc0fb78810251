import Foundation
import GGUF

/// A GGUF file's tokenizer as Hugging Face tokenizer files (`tokenizer.json`, `tokenizer_config.json`,
/// `chat_template.jinja`), so that a model merged from a GGUF base loads with `AutoTokenizer` like any other
/// directory: the byte-level BPE with its vocabulary and merges, the pre-tokenizer `tokenizer.ggml.pre` names, control
/// tokens as special added tokens (user-defined ones as plain added tokens), BOS prepended when the file says so.
public enum GGUFTokenizerFiles {
    /// File name → contents.
    public static func files(_ file: GGUFFile) throws -> [String: Data] {
        func bad(_ message: String) -> TokenizerError { .invalid("\(file.path): \(message)") }
        let (_, specials) = try Tokenizer.gguf(file)  // validates what follows
        let tokens = try file.strings("tokenizer.ggml.tokens")
        let types =
            file.metadata["tokenizer.ggml.token_type"] == nil ? [] : try file.integers("tokenizer.ggml.token_type")
        let merges = try file.strings("tokenizer.ggml.merges").map { merge -> [String] in
            let parts = merge.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            return parts
        }
        let byteLevel: [String: Any] = [
            "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true,
        ]
        let preTokenizer: [String: Any]
        switch try ByteLevelSplit(ggufName: (try? file.string("tokenizer.ggml.pre")) ?? "default") {
        case .gpt2: preTokenizer = byteLevel
        case .smollm:
            preTokenizer = [
                "type": "Sequence",
                // ASCII digits only, as `ByteLevelSplit.smollm` reads the GGUF (Hugging Face's `Digits` would also
                // split off "½" or "²").
                "pretokenizers": [
                    [
                        "type": "Split", "pattern": ["Regex": "[0-9]"], "behavior": "Isolated", "invert": false,
                    ] as [String: Any], byteLevel,
                ],
            ]
        case .whole: throw bad("a GGUF pre-tokenizer never names the whole-text split")
        }
        var vocabulary: [String: Int] = [:]
        for (id, token) in tokens.enumerated() { vocabulary[token] = id }
        let added: [[String: Any]] = types.enumerated().filter { $0.element == 3 || $0.element == 4 }.map {
            [
                "id": $0.offset, "content": tokens[$0.offset], "single_word": false, "lstrip": false, "rstrip": false,
                "normalized": false, "special": $0.element == 3,
            ]
        }
        var postProcessor: [String: Any] = [
            "type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true,
        ]
        // BOS and EOS added as the GGUF says, as `Tokenizer.gguf` adds them.
        let bos = specials.addBOS ? specials.bos : nil
        let eos = specials.addEOS ? specials.eos : nil
        if bos != nil || eos != nil {
            func special(_ id: Int) -> [String: Any] { ["SpecialToken": ["id": tokens[id], "type_id": 0]] }
            let first: [String: Any] = ["Sequence": ["id": "A", "type_id": 0]]
            let second: [String: Any] = ["Sequence": ["id": "B", "type_id": 0]]
            let single = (bos.map { [special($0)] } ?? []) + [first] + (eos.map { [special($0)] } ?? [])
            var specialTokens: [String: Any] = [:]
            for id in [bos, eos].compactMap({ $0 }) {
                specialTokens[tokens[id]] = ["id": tokens[id], "ids": [id], "tokens": [tokens[id]]]
            }
            postProcessor = [
                "type": "TemplateProcessing", "single": single, "pair": single + [second],
                "special_tokens": specialTokens,
            ]
        }
        let tokenizer: [String: Any] = [
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(), "added_tokens": added,
            "normalizer": NSNull(), "pre_tokenizer": preTokenizer, "post_processor": postProcessor,
            "decoder": byteLevel,
            "model": [
                "type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
                "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                "vocab": vocabulary, "merges": merges,
            ] as [String: Any],
        ]
        var config: [String: Any] = [
            "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 1_000_000_000,
            "add_bos_token": specials.addBOS, "add_eos_token": specials.addEOS,
        ]
        if let bos = specials.bos { config["bos_token"] = tokens[bos] }
        if let eos = specials.eos { config["eos_token"] = tokens[eos] }
        if let pad = specials.pad ?? specials.eos { config["pad_token"] = tokens[pad] }
        var files: [String: Data] = [:]
        if let template = specials.chatTemplate {
            config["chat_template"] = template
            files["chat_template.jinja"] = Data(template.utf8)
        }
        let options: JSONSerialization.WritingOptions = [.sortedKeys, .withoutEscapingSlashes]
        files["tokenizer.json"] = try JSONSerialization.data(withJSONObject: tokenizer, options: options)
        files["tokenizer_config.json"] = try JSONSerialization.data(
            withJSONObject: config, options: options.union(.prettyPrinted))
        return files
    }
}
