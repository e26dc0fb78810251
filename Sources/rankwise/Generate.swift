import ArgumentParser
import FineTuning
import Foundation
import Generation
import Methods
import Models
import SafeTensors
import Tokenizers

/// The sampling and stop options `generate` and `chat` share.
struct GenerationFlags: ParsableArguments {
    @Option(
        help: "Model: a .gguf file, a Hugging Face directory, a directory holding one .gguf, or an alias (smollm2).")
    var model = "smollm2"
    @Option(help: "An adapter directory (PEFT files, any registered method) to apply to the model.") var adapter:
        String?
    @Option(help: "Most tokens to generate per prompt.") var maxTokens = 256
    @Option(help: "Sampling temperature (0: greedy).") var temperature: Float = 0
    @Option(help: "Keep the k most likely tokens (0: all).") var topK = 0
    @Option(help: "Nucleus sampling: keep the most likely tokens up to this probability mass.") var topP: Float = 1
    @Option(help: "Repetition penalty as transformers applies it (1: none).") var repetitionPenalty: Float = 1
    @Option(help: "Seed of the sampling stream.") var seed: UInt64 = 0
    @Option(name: .customLong("stop"), help: "Stop when the text contains this string (repeatable).")
    var stopStrings: [String] = []
    @Option(help: "Context to allocate, in tokens (default: the model's context length, at most 4096).")
    var context: Int?

    var sampling: SamplingOptions {
        SamplingOptions(
            temperature: temperature, topK: topK, topP: topP, repetitionPenalty: repetitionPenalty, seed: seed)
    }

    func loadGenerator() -> Generator {
        do {
            try sampling.validate()
            guard maxTokens > 0 else { throw ModelError("--max-tokens must be positive") }
            guard (context ?? 1) > 0 else { throw ModelError("--context must be positive") }
            let path = try ModelStore.resolveDecoder(model)
            let started = Date()
            let generator = try Generator.load(model: path, capacity: context ?? 4096)
            let seconds = Date().timeIntervalSince(started)
            stderr(
                "model: \(path) (\(generator.model.config.numLayers) blocks, loaded in "
                    + "\(String(format: "%.1f", seconds)) s)\n"
            )
            if let adapter {
                let entry = try MethodRegistry.entry(forAdapter: adapter)
                let (method, head) = try entry.load(directory: adapter, backbone: generator.model)
                guard head == nil else {
                    throw ModelError(
                        "\(adapter): the adapter holds a classifier head; generate needs a language model's")
                }
                stderr("adapter: \(adapter) (\(entry.name), \(method.adapters.count) adapted modules)\n")
            }
            return generator
        } catch { fail("\(error)") }
    }
}

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text with a decoder (GGUF), streaming it as it comes.",
        discussion:
            "Prompts come as arguments or from --input: one prompt per line, or JSONL lines with \"prompt\" (text) "
            + "or \"messages\" ([{role, content}]). The model's chat template is applied unless --raw. With "
            + "--output, each result is a JSONL line {prompt, output, prompt_tokens, tokens, stop_reason, "
            + "tokens_per_second}; without it the text streams to standard output. Speed goes to standard error.")

    @OptionGroup var flags: GenerationFlags
    @Option(help: "Prompt file (one per line, or JSONL).") var input: String?
    @Option(help: "JSONL output file (written atomically at the end).") var output: String?
    @Flag(help: "Use the prompt as it is, without the chat template.") var raw = false
    @Argument(help: "Prompts (instead of --input).") var prompts: [String] = []

    func run() throws {
        var inputs = prompts.map { PromptInput.text($0) }
        if let input {
            guard let data = FileManager.default.contents(atPath: input) else { fail("\(input): cannot read") }
            do { inputs += try PromptInput.read(data, file: input) } catch { fail("\(error)") }
        }
        guard !inputs.isEmpty else { fail("no prompt: give one as an argument or --input FILE") }
        let generator = flags.loadGenerator()
        var lines: [String] = []
        for (index, prompt) in inputs.enumerated() {
            let ids: [Int32]
            let promptText: String
            do {
                switch prompt {
                case .text(let text):
                    promptText = text
                    ids =
                        raw
                        ? generator.rawPrompt(text)
                        : try generator.chatPrompt([ChatMessage(role: "user", content: text)])
                case .messages(let messages):
                    promptText = messages.last?.content ?? ""
                    ids = try generator.chatPrompt(messages)
                }
            } catch { fail("prompt \(index + 1): \(error)") }
            if output == nil && inputs.count > 1 { print("### prompt \(index + 1): \(promptText)") }
            let result: Generation
            do {
                result = try generator.generate(
                    prompt: ids, maxTokens: flags.maxTokens, sampling: flags.sampling,
                    stopStrings: flags.stopStrings
                ) { piece in
                    if output == nil {
                        FileHandle.standardOutput.write(Data(piece.utf8))
                    }
                }
            } catch { fail("prompt \(index + 1): \(error)") }
            if output == nil { print("") }
            stderr(
                "[\(index + 1)/\(inputs.count)] prompt \(result.promptTokens) tokens at "
                    + "\(String(format: "%.1f", result.promptTokensPerSecond)) tokens/s; generated \(result.ids.count) "
                    + "at \(String(format: "%.1f", result.tokensPerSecond)) tokens/s (\(result.stopReason.rawValue))\n")
            let line: [String: Any] = [
                "prompt": promptText, "output": result.text, "prompt_tokens": result.promptTokens,
                "tokens": result.ids.count, "stop_reason": result.stopReason.rawValue,
                "tokens_per_second": result.tokensPerSecond,
            ]
            let json = try JSONSerialization.data(
                withJSONObject: line, options: [.sortedKeys, .withoutEscapingSlashes])
            lines.append(String(decoding: json, as: UTF8.self))
        }
        if let output {
            do { try AtomicFile.write(lines.joined(separator: "\n") + "\n", to: output) } catch { fail("\(error)") }
            stderr("wrote \(lines.count) generations to \(output)\n")
        }
    }
}

struct Chat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Chat with a decoder (GGUF) in the terminal: type a message, get the streamed reply.",
        discussion: "An empty line or /exit ends the chat; /reset starts a new conversation.")

    @OptionGroup var flags: GenerationFlags
    @Option(help: "A system message (default: the template's own, if it has one).") var system: String?

    func run() throws {
        let generator = flags.loadGenerator()
        var messages: [ChatMessage] = system.map { [ChatMessage(role: "system", content: $0)] } ?? []
        while true {
            FileHandle.standardError.write(Data("> ".utf8))
            guard let line = readLine(), !line.isEmpty, line != "/exit" else { break }
            if line == "/reset" {
                messages = system.map { [ChatMessage(role: "system", content: $0)] } ?? []
                continue
            }
            messages.append(ChatMessage(role: "user", content: line))
            do {
                let result = try generator.generate(
                    prompt: try generator.chatPrompt(messages), maxTokens: flags.maxTokens, sampling: flags.sampling,
                    stopStrings: flags.stopStrings
                ) { FileHandle.standardOutput.write(Data($0.utf8)) }
                print("")
                stderr(
                    "(\(result.ids.count) tokens at \(String(format: "%.1f", result.tokensPerSecond)) tokens/s, "
                        + "\(result.stopReason.rawValue))\n")
                messages.append(ChatMessage(role: "assistant", content: result.text))
            } catch { fail("\(error)") }
        }
    }
}
