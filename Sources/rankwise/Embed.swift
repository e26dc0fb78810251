import ArgumentParser
import FineTuning
import Foundation
import Models

struct Embed: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write sentence embeddings as JSONL, one line per input text.",
        discussion:
            "Reads texts one per line from --input or standard input. Output lines are {\"index\", \"text\", "
            + "\"embedding\"} in input order."
    )

    @Option(help: "Model directory, or an alias such as minilm.") var model = "minilm"
    @Option(help: "Text file, one text per line (default: standard input).") var input: String?
    @Option(help: "Output JSONL file (default: standard output).") var output: String?
    @Option(help: "Pooling: mean or cls.") var pooling: String = "mean"
    @Flag(name: .customLong("no-normalize"), help: "Do not L2-normalise the embeddings.") var noNormalize = false
    @Option(help: "Texts per forward pass.") var batchSize = 32
    @Option(help: "Maximum tokens per text (default: the model's).") var maxLength: Int?

    func run() throws {
        guard let pool = Pooling(rawValue: pooling) else {
            fail("--pooling must be one of \(Pooling.allCases.map(\.rawValue))")
        }
        guard batchSize > 0 else { fail("--batch-size must be positive") }
        let dir: String
        do { dir = try ModelStore.resolve(model) } catch { fail("\(error)") }
        let data: Data
        if let input {
            guard let d = FileManager.default.contents(atPath: input) else { fail("\(input): cannot read") }
            data = d
        } else {
            data = FileHandle.standardInput.readDataToEndOfFile()
        }
        let (texts, invalid) = Self.lines(data)
        if let first = invalid.first {
            stderr(
                "warning: \(input ?? "stdin"): \(invalid.count) line(s) had invalid UTF-8, replaced with U+FFFD "
                    + "(first: line \(first))\n"
            )
        }
        let embedder: SentenceEmbedder
        do {
            embedder = try SentenceEmbedder(
                directory: dir, pooling: pool, normalize: !noNormalize, maxLength: maxLength)
        } catch { fail("\(error)") }
        // A file output is written next to its place and renamed at the end: never a partial file.
        let out: FileHandle
        let tmp = output.map { $0 + ".tmp-\(getpid())" }
        if let tmp {
            guard FileManager.default.createFile(atPath: tmp, contents: nil), let h = FileHandle(forWritingAtPath: tmp)
            else { fail("\(output!): cannot write there") }
            out = h
        } else {
            out = FileHandle.standardOutput
        }
        func write(_ s: String) {
            do { try out.write(contentsOf: Data(s.utf8)) } catch {
                if let tmp { try? FileManager.default.removeItem(atPath: tmp) }
                fail("\(output ?? "standard output"): cannot write (\(error.localizedDescription)); is the disk full?")
            }
        }
        // Sort by length so each batch pads little; write back in input order.
        let order = texts.indices.sorted { texts[$0].utf8.count < texts[$1].utf8.count }
        var results = [[Float]?](repeating: nil, count: texts.count)
        let bar = ProgressBar(total: texts.count, label: "embed", unit: "texts")
        var done = 0
        for start in stride(from: 0, to: order.count, by: batchSize) {
            let idx = Array(order[start..<min(order.count, start + batchSize)])
            let v: [Float]
            do { v = try embedder.embed(idx.map { texts[$0] }) } catch { fail("\(error)") }
            let H = v.count / idx.count
            for (r, i) in idx.enumerated() { results[i] = Array(v[(r * H)..<((r + 1) * H)]) }
            done += idx.count
            bar.update(done)
        }
        bar.finish(done)
        var buf = ""
        for (i, t) in texts.enumerated() {
            guard results[i]!.allSatisfy(\.isFinite) else {
                if let tmp { try? FileManager.default.removeItem(atPath: tmp) }
                fail("line \(i + 1): the embedding is not finite (NaN or infinite): are the model's weights intact?")
            }
            let obj: [String: Any] = ["index": i, "text": t, "embedding": results[i]!.map { Double($0) }]
            let d = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
            buf += String(decoding: d, as: UTF8.self) + "\n"
            if buf.utf8.count > 1 << 20 {
                write(buf)
                buf = ""
            }
        }
        write(buf)
        if let tmp, let output {
            try? out.close()
            guard rename(tmp, output) == 0 else {
                let why = String(cString: strerror(errno))
                try? FileManager.default.removeItem(atPath: tmp)
                fail("\(output): cannot write (\(why))")
            }
        }
        stderr(
            "embedded \(texts.count) texts with \(dir) (\(pool.rawValue) pooling\(noNormalize ? "" : ", normalised"))\n"
        )
    }

    /// Splits into lines (\n or \r\n), dropping one trailing empty line; invalid UTF-8 is replaced.
    static func lines(_ data: Data) -> ([String], [Int]) {
        var texts: [String] = []
        var invalid: [Int] = []
        let bytes = [UInt8](data)
        var parts = bytes.split(separator: 0x0A, omittingEmptySubsequences: false)
        if parts.last?.isEmpty == true { parts.removeLast() }
        for (n, var p) in parts.enumerated() {
            if p.last == 0x0D { p = p.dropLast() }
            if let s = String(validating: p, as: UTF8.self) {
                texts.append(s)
            } else {
                invalid.append(n + 1)
                texts.append(String(decoding: p, as: UTF8.self))
            }
        }
        return (texts, invalid)
    }
}

struct Similarity: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the cosine similarities of a few sentences.")
    @Option(help: "Model directory, or an alias such as minilm.") var model = "minilm"
    @Argument(help: "Sentences.") var sentences: [String]

    func run() throws {
        guard sentences.count >= 2 else { fail("give at least two sentences") }
        let dir: String
        do { dir = try ModelStore.resolve(model) } catch { fail("\(error)") }
        let e = try SentenceEmbedder(directory: dir)
        let v = try e.embed(sentences)
        let H = v.count / sentences.count
        func cos(_ a: Int, _ b: Int) -> Float { (0..<H).reduce(0) { $0 + v[a * H + $1] * v[b * H + $1] } }
        for (i, s) in sentences.enumerated() { print("[\(i)] \(s)") }
        print("cosine similarity:")
        func pad(_ s: String, _ n: Int) -> String { String(repeating: " ", count: max(0, n - s.count)) + s }
        print("     " + sentences.indices.map { pad("[\($0)]", 7) }.joined())
        for i in sentences.indices {
            print(
                "[\(i)]".padding(toLength: 5, withPad: " ", startingAt: 0)
                    + sentences.indices.map { String(format: "%7.3f", cos(i, $0)) }.joined())
        }
    }
}
