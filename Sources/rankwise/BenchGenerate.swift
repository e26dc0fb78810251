import ArgumentParser
import FineTuning
import Foundation
import Generation
import Models
import RankwiseCore

struct BenchGenerate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Prompt and generation tokens/s of a decoder, optionally next to transformers in the same run.",
        discussion:
            "Greedy decoding of exactly --new-tokens tokens after a prompt of --prompt-tokens tokens, medians of "
            + "--repeats runs. Also measures the machine's memory read bandwidth and the decoding limit it sets: the "
            + "bytes of weights each token reads over that bandwidth (float32 weights for Rankwise and transformers; "
            + "the file's quantised bytes for a quantised reader such as llama.cpp).")

    @Option(help: "Model: a .gguf file, a directory holding one, or an alias.") var model = "smollm2"
    @Option(help: "Prompt length in tokens.") var promptTokens = 64
    @Option(help: "Tokens to generate.") var newTokens = 64
    @Option(help: "Runs; the medians are reported.") var repeats = 3
    @Option(help: "A Python with torch, transformers and gguf: transformers' generate on the same file and prompt.")
    var peerPython: String?
    @Option(help: "Threads for the PyTorch peer.") var peerThreads = 2
    @Option(help: "A Python with llama-cpp-python (scripts/llamacpp-env.sh): llama.cpp on the same file and prompt.")
    var llamacppPython: String?

    func run() throws {
        guard promptTokens > 0, newTokens > 0, repeats > 0 else { fail("lengths and repeats must be positive") }
        let path: String
        let generator: Generator
        do {
            path = try ModelStore.resolveDecoder(model)
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
                fail("\(path): bench generate runs every system on one GGUF file; give a .gguf model")
            }
            generator = try Generator.load(model: path, capacity: promptTokens + newTokens + 1)
        } catch { fail("\(error)") }
        let decoder = generator.model
        // A prompt of real text, repeated to the length asked for.
        let text = "The quick brown fox jumps over the lazy dog while the sun sets behind the hills. "
        var prompt = generator.rawPrompt(String(repeating: text, count: promptTokens / 8 + 2))
        prompt = Array(prompt.prefix(promptTokens))
        var promptRates: [Double] = []
        var generateRates: [Double] = []
        let cache = decoder.makeCache(capacity: promptTokens + newTokens + 1)
        for _ in 0..<(repeats + 1) {
            cache.reset()
            var started = Date()
            var logits = try decoder.decode(prompt, cache: cache)
            promptRates.append(Double(prompt.count) / Date().timeIntervalSince(started))
            started = Date()
            for _ in 0..<newTokens {
                let next = Int32(logits.indices.max { logits[$0] < logits[$1] }!)
                logits = try decoder.decode([next], cache: cache)
            }
            generateRates.append(Double(newTokens) / Date().timeIntervalSince(started))
        }
        let ours = (prompt: median(Array(promptRates.dropFirst())), generate: median(Array(generateRates.dropFirst())))
        let bandwidth = Self.readBandwidth()
        let floatBytes = Double(decoder.params.totalCount * 4)
        let fileBytes = Double((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0)
        print("model:      \(path)")
        print("shape:      prompt \(prompt.count) tokens, \(newTokens) new tokens greedy, \(Parallel.workers) threads")
        print(
            String(
                format: "bandwidth:  %.1f GB/s read; limit %.1f tokens/s at float32 weights (%.0f MB a token), "
                    + "%.1f tokens/s at the file's bytes (%.0f MB)", bandwidth / 1e9, bandwidth / floatBytes,
                floatBytes / 1e6, bandwidth / fileBytes, fileBytes / 1e6))
        let quantized = !decoder.quantizedWeights.isEmpty && decoder.useQuantizedDecoding
        let readBytes = quantized ? fileBytes : floatBytes
        print(
            String(
                format:
                    "rankwise:    prompt %7.1f tokens/s   generate %6.1f tokens/s (%.0f%% of the limit at the %@ it "
                    + "reads)   peak RSS %.0f MiB", ours.prompt, ours.generate,
                100 * ours.generate * readBytes / bandwidth,
                quantized ? "file's quantised bytes" : "float32 weights", peakRSSMiB()))
        let idsFile = FileManager.default.temporaryDirectory.appendingPathComponent("rw-bench-gen-\(getpid()).json")
        try JSONSerialization.data(withJSONObject: prompt.map(Int.init)).write(to: idsFile)
        defer { try? FileManager.default.removeItem(at: idsFile) }
        /// Runs a peer on the same file and prompt, prints its row (with the share of the limit at the bytes it reads
        /// per token) and our ratio to it.
        func comparePeer(_ label: String, _ python: String, _ script: String, threads: Int, readsBytes: Double) throws {
            let peer = try runPeer(
                python, script, [path, idsFile.path, String(newTokens), String(repeats), String(threads)])
            let prompt = (peer["prompt_tokens_per_s"] as? Double) ?? 0
            let generate = (peer["generate_tokens_per_s"] as? Double) ?? 0
            print(
                String(
                    format: "%@ prompt %7.1f tokens/s   generate %6.1f tokens/s (%.0f%% of its limit)   peak RSS %.0f "
                        + "MiB (%@, %d threads)", (label + ":").padding(toLength: 13, withPad: " ", startingAt: 0),
                    prompt,
                    generate, 100 * generate * readsBytes / bandwidth, (peer["peak_rss_mib"] as? Double) ?? 0,
                    (peer["version"] as? String) ?? "?", (peer["threads"] as? Int) ?? 0))
            print(
                String(
                    format: "ratio:       prompt %.2fx   generate %.2fx %@", ours.prompt / max(prompt, 1e-9),
                    ours.generate / max(generate, 1e-9), label))
        }
        if let llamacppPython {
            try comparePeer(
                "llama.cpp", llamacppPython, "peer_llamacpp.py", threads: Parallel.workers, readsBytes: fileBytes)
        }
        if let peerPython {
            try comparePeer(
                "transformers", peerPython, "peer_generate.py", threads: peerThreads, readsBytes: floatBytes)
        }
    }

    /// Bytes per second of summing a 256 MiB buffer with every worker thread (the best of five passes).
    static func readBandwidth() -> Double {
        let count = 64 << 20
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
        defer { buffer.deallocate() }
        buffer.update(repeating: 1, count: count)
        var best = 0.0
        for _ in 0..<5 {
            let started = Date()
            let workers = max(1, Parallel.workers)
            let sums = UnsafeMutablePointer<Float>.allocate(capacity: workers)
            defer { sums.deallocate() }
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                let per = count / workers
                // Sixteen lanes at a time, so the adds keep up with memory.
                var lanes = SIMD16<Float>()
                let start = UnsafeRawPointer(buffer + worker * per)
                for block in 0..<(per / 16) {
                    lanes += start.loadUnaligned(fromByteOffset: block * 64, as: SIMD16<Float>.self)
                }
                sums[worker] = lanes.sum()
            }
            let seconds = Date().timeIntervalSince(started)
            if (0..<workers).map({ sums[$0] }).reduce(0, +) > 0 { best = max(best, Double(count * 4) / seconds) }
        }
        return best
    }
}
