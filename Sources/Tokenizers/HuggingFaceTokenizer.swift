import Foundation

extension Tokenizer {
    /// The tokenizer of a Hugging Face model directory and the specials a decoder needs: tokenizer.json, then
    /// tokenizer_config.json for the BOS, EOS and padding tokens (a string or `{"content": …}`) and the chat template
    /// (its `chat_template`, a list of named templates whose "default" is taken, or the file chat_template.jinja);
    /// BOS and EOS count as added when the post-processor adds them, as transformers encodes with special tokens.
    public static func huggingFace(directory: String) throws -> (Tokenizer, TokenizerSpecials) {
        let tokenizer = try Tokenizer(path: directory)
        let configPath = (directory as NSString).appendingPathComponent("tokenizer_config.json")
        var config: [String: Any] = [:]
        if let data = FileManager.default.contents(atPath: configPath) {
            guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
                throw TokenizerError.invalid("\(configPath): not a JSON object")
            }
            config = object
        }
        func id(_ key: String) throws -> Int? {
            guard let value = config[key], !(value is NSNull) else { return nil }
            guard let text = value as? String ?? (value as? [String: Any])?["content"] as? String else {
                throw TokenizerError.invalid("\(configPath): \(key) is neither a token nor {\"content\": token}")
            }
            guard let id = tokenizer.addedTokens.first(where: { $0.0 == text })?.1 ?? tokenizer.model.id(of: text)
            else {
                throw TokenizerError.invalid("\(configPath): \(key) \"\(text)\" is not a token of tokenizer.json")
            }
            return id
        }
        let bos = try id("bos_token")
        let eos = try id("eos_token")
        let added = tokenizer.postProcessor?.process([], nil).ids ?? []
        var template: String?
        if let text = config["chat_template"] as? String {
            template = text
        } else if let named = config["chat_template"] as? [[String: Any]] {
            template = named.first { $0["name"] as? String == "default" }?["template"] as? String
        } else {
            let file = (directory as NSString).appendingPathComponent("chat_template.jinja")
            template = FileManager.default.contents(atPath: file).map { String(decoding: $0, as: UTF8.self) }
        }
        let specials = TokenizerSpecials(
            bos: bos, eos: eos, pad: try id("pad_token"), addBOS: bos.map { added.first == $0 } ?? false,
            addEOS: eos.map { added.last == $0 } ?? false, chatTemplate: template)
        return (tokenizer, specials)
    }
}
