import ArgumentParser
import Foundation
import Models
import RankwiseCore
import Adapters
import Training
import FineTuning
import Methods
import Data
import Tokenizers

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks, measured next to PyTorch in the same run when a peer Python is given.",
        subcommands: [BenchForward.self, BenchTrain.self, BenchGenerate.self, BenchGemm.self, BenchKernels.self])
}

/// Median of a sample.
func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s[s.count / 2]
}

/// The directory holding the repository's scripts (next to the executable's package, or $RANKWISE_SCRIPTS).
func scriptsDirectory() -> String {
    if let s = ProcessInfo.processInfo.environment["RANKWISE_SCRIPTS"] { return s }
    var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    for _ in 0..<6 {
        let cand = url.appendingPathComponent("scripts")
        if FileManager.default.fileExists(atPath: cand.appendingPathComponent("peer_forward.py").path) {
            return cand.path
        }
        url = url.deletingLastPathComponent()
    }
    return FileManager.default.currentDirectoryPath + "/scripts"
}

/// Runs a Python script and parses the JSON object on its last stdout line.
func runPeer(_ python: String, _ script: String, _ args: [String]) throws -> [String: Any] {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = [python, scriptsDirectory() + "/" + script] + args
    // The peer chooses its own BLAS kernels: do not pass a core type we may have set.
    var env = ProcessInfo.processInfo.environment
    env["PYTHONWARNINGS"] = "ignore"
    p.environment = env
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0,
        let line = String(decoding: o, as: UTF8.self).split(separator: "\n").last,
        let obj = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
    else {
        throw ModelError(
            "peer \(script) failed (exit \(p.terminationStatus)): \(String(decoding: e, as: UTF8.self).suffix(1500))")
    }
    return obj
}

struct BenchForward: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forward",
        abstract: "Encoder forward throughput (tokens/s) at batch x seq, optionally next to PyTorch.")

    @Option(help: "Model directory or alias.") var model = "minilm"
    @Option(help: "Sequences per batch.") var batch = 32
    @Option(help: "Tokens per sequence.") var seq = 64
    @Option(help: "Timed iterations (median reported).") var iters = 10
    @Option(help: "A Python with torch and transformers: runs PyTorch on the same batch in this run.") var peerPython:
        String?
    @Option(help: "Threads for the PyTorch peer.") var peerThreads = 2
    @Flag(help: "Print time per section of the forward pass.") var profile = false
    @Option(help: "Alternating measurement rounds (best of each side is reported).") var rounds = 2

    func run() throws {
        let dir: String
        do { dir = try ModelStore.resolve(model) } catch { fail("\(error)") }
        let info = try BLAS.load()
        let m = try BackboneFamilies.load(directory: dir, pooled: false)
        let ids = try randomTokenIds(modelDirectory: dir, vocabularySize: m.vocabularySize, batch: batch, seq: seq)
        let input = TokenBatch(batch: batch, seq: seq, ids: ids)
        for _ in 0..<2 { try m.forward(input) }
        func measure() throws -> Double {
            var times: [Double] = []
            for _ in 0..<iters {
                let t0 = DispatchTime.now().uptimeNanoseconds
                try m.forward(input)
                times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            }
            return median(times)
        }
        print("model:     \(dir)")
        print(
            "shape:     batch \(batch) x seq \(seq) = \(batch * seq) tokens, \(iters) timed iterations x \(rounds) "
                + "rounds"
        )
        print("blas:      \(info.vendor) \(info.coreName), \(info.threads) threads")
        if profile {
            Profiler.reset()
            Profiler.enabled = true
            let med = try measure()
            Profiler.enabled = false
            for (name, secs) in Profiler.report {
                print(
                    "  " + name.padding(toLength: 20, withPad: " ", startingAt: 0)
                        + String(
                            format: " %7.1f ms/iter  %5.1f%%", secs * 1000 / Double(iters),
                            100 * secs / (med * Double(iters))))
            }
        }
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("rankwise-bench-ids-\(getpid()).json")
            .path
        if peerPython != nil {
            let spec: [String: Any] = ["batch": batch, "seq": seq, "ids": ids.map(Int.init)]
            try JSONSerialization.data(withJSONObject: spec).write(to: URL(fileURLWithPath: tmp))
        }
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        // Alternate ours and the peer; keep each one's best median (a shared machine's noise hits both).
        var best = Double.infinity
        var peerBest: [String: Any]? = nil
        for _ in 0..<rounds {
            best = min(best, try measure())
            if let py = peerPython {
                let peer = try runPeer(py, "peer_forward.py", [dir, tmp, String(iters), String(peerThreads)])
                if ((peer["median_s"] as? Double) ?? .infinity) < ((peerBest?["median_s"] as? Double) ?? .infinity) {
                    peerBest = peer
                }
            }
        }
        let ours = Double(batch * seq) / best
        print(String(format: "rankwise:  %8.0f tokens/s  (median %.1f ms)", ours, best * 1000))
        guard let peer = peerBest else { return }
        let theirs = (peer["tokens_per_s"] as? Double) ?? 0
        print(
            String(
                format: "pytorch:   %8.0f tokens/s  (median %.1f ms, torch %@, %d threads)", theirs,
                ((peer["median_s"] as? Double) ?? 0) * 1000, (peer["torch"] as? String) ?? "?",
                (peer["threads"] as? Int) ?? 0))
        print(String(format: "ratio:     %.2fx PyTorch", ours / theirs))
    }
}

struct BenchGemm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm", abstract: "sgemm GFLOPS at n x n x n, optionally next to numpy's in the same run.")
    @Option(help: "Matrix size.") var size = 1024
    @Option(help: "Timed repetitions (best reported).") var repeats = 10
    @Option(help: "A Python with numpy.") var peerPython: String?

    func run() throws {
        let info = try BLAS.load()
        let ours = try BLAS.measureGFLOPS(n: size, repeats: repeats)
        print(
            String(
                format: "rankwise sgemm: %7.1f GFLOPS (%@ %@, %d threads)", ours, info.vendor, info.coreName,
                info.threads))
        guard let py = peerPython else { return }
        let peer = try runPeer(py, "peer_gemm.py", [String(size), String(repeats)])
        let theirs = (peer["gflops"] as? Double) ?? 0
        print(String(format: "numpy sgemm:    %7.1f GFLOPS (%@)", theirs, (peer["blas"] as? String) ?? "?"))
        print(String(format: "ratio:          %.2fx numpy", ours / theirs))
    }
}

struct BenchKernels: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels", abstract: "Time the element-wise kernels (ns per element).")
    @Option(help: "Elements per kernel call.") var count = 2048 * 1536

    func run() throws {
        try BLAS.load()
        let x = Tensor(zeros: [count])
        let y = Tensor(zeros: [count])
        let g = Tensor(zeros: [count])
        var rng = SplitMix64(seed: 3)
        for i in 0..<count {
            x[i] = 3 * rng.nextNormal()
            g[i] = rng.nextNormal()
        }
        func time(_ name: String, _ body: () -> Void) {
            body()
            var best = Double.infinity
            for _ in 0..<5 {
                let t0 = DispatchTime.now().uptimeNanoseconds
                body()
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0))
            }
            print(
                String(
                    format: "%@ %6.2f ns/element", name.padding(toLength: 22, withPad: " ", startingAt: 0),
                    best / Double(count)))
        }
        time("gelu forward") { Ops.geluForward(x.data, y.data, count: count) }
        time("gelu backward") { Ops.geluBackward(x: x.data, dy: g.data, dx: y.data, count: count) }
        time("softmax (rows of 64)") {
            y.data.update(from: x.data, count: count)
            Ops.softmaxForward(y.data, rows: count / 64, d: 64)
        }
        let gamma = Tensor(zeros: [384])
        let beta = Tensor(zeros: [384])
        let mean = Tensor(zeros: [count / 384])
        let rstd = Tensor(zeros: [count / 384])
        time("layernorm (384)") {
            Ops.layerNormForward(
                x: x.data, gamma: gamma.data, beta: beta.data, y: y.data, mean: mean.data, rstd: rstd.data,
                n: count / 384, d: 384, eps: 1e-12)
        }
        time("add") { Ops.add(x.data, g.data, y.data, count: count) }
    }
}
