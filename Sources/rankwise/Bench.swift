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
        subcommands: [BenchForward.self, BenchTrain.self, BenchGemm.self, BenchKernels.self])
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

struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract:
            "Training-step throughput and peak memory of any registered method, optionally next to PyTorch + PEFT.",
        discussion: """
            Method options may follow (e.g. --init-r 8); by default each method runs at the shapes of LoRA r=8 and \
            does its most work per step. \
            With a method other than lora, its overhead over LoRA r=8 is measured too. The peer runs PEFT's closest \
            method (LoRA or AdaLoRA). \
            With --data, steps run on real batches instead of one fixed batch x seq shape: seeded random batches \
            unpadded (the default), the same \
            batches padded, and length-bucketed padded batches; tokens/s counts real tokens; the peer gets the same \
            random batches, each padded \
            to its longest text as Hugging Face's DataCollatorWithPadding does.
            """)

    @Option(help: "Model directory or alias.") var model = "minilm"
    @Option(help: "Method (see `rankwise methods`).") var method = "lora"
    @Option(help: "Sequences per batch.") var batch = 32
    @Option(help: "Tokens per sequence (fixed-shape mode).") var seq = 64
    @Option(help: "Timed steps (median reported; with --data, steps per order).") var iters = 10
    @Option(help: "Real training data (CSV/TSV/JSONL or an alias such as tweets): time real batches.") var data: String?
    @Option(help: "Label column of --data.") var labelColumn = "label"
    @Option(help: "Maximum tokens per text with --data.") var maxLength = 128
    @Option(help: "A Python with torch, transformers and peft.") var peerPython: String?
    @Option(help: "Threads for the PyTorch peer.") var peerThreads = 2
    @Option(help: "With --data: also write the numbers as JSON to this file.") var json: String?
    @Flag(help: "Print time per forward section.") var profile = false
    @Argument(parsing: .allUnrecognized, help: "Options of the method.") var methodOptions: [String] = []

    func run() throws {
        let dir: String
        let entry: MethodEntry
        var overrides: [String: String] = [:]
        do {
            dir = try ModelStore.resolve(model)
            entry = try MethodRegistry.entry(method)
            overrides = entry.benchOptions
            for (k, v) in try FineTuneOptions.values(fromArguments: methodOptions) {
                guard entry.hasOption(k) else {
                    throw SettingsError("--\(SettingsTable.normalise(k)) is not an option of \(method)")
                }
                overrides[SettingsTable.normalise(k)] = v
            }
        } catch { fail("\(error)") }
        guard iters >= 1, batch >= 1, seq >= 1, maxLength >= 1 else {
            fail("--iters, --batch, --seq and --max-length must be at least 1")
        }
        if json != nil && data == nil { fail("--json needs --data (it records the real-batch measurement)") }
        let info = try BLAS.load()
        let vocab = try BackboneFamilies.load(directory: dir, pooled: false).vocabularySize
        let ids = try randomTokenIds(modelDirectory: dir, vocabularySize: vocab, batch: batch, seq: seq)
        // The labels continue the ids' random stream (one draw per non-first token), as they always did.
        var rng = SplitMix64(seed: 1)
        for _ in 0..<(batch * (seq - 1)) { _ = rng.next() }
        let labels = (0..<batch).map { _ in Int32(rng.next() % 3) }

        /// Builds a model with the method and returns a closure running the trainer's own step on a batch of
        /// example indices into the method's data (the fixed batch by default).
        func makeStep(
            _ e: MethodEntry, _ values: [String: String], classes: Int = 3, data methodData: TokenizedSet? = nil
        ) throws
            -> (TaskModel, TuningMethod, (_ indices: [Int], _ padded: Bool) throws -> Void)
        {
            let enc = try BackboneFamilies.load(directory: dir, pooled: true)
            let (m, _) = try e.make(options: values, backbone: enc, seed: 1)
            let model = try TaskModel(backbone: enc, numLabels: classes, problem: .singleLabel, seed: 2)
            model.setTrainable(adapted: m.isTrainable)
            model.regularizers = m.regularizers
            let total = 1_000_000
            // The method sees data as in training (a method that scores examples scores these).
            let data =
                methodData
                ?? TokenizedSet(
                    ids: (0..<batch).map { Array(ids[($0 * seq)..<(($0 + 1) * seq)]) },
                    types: (0..<batch).map { _ in [Int32](repeating: 0, count: seq) },
                    labels: labels, targets: labels.map(Float.init), regression: false)
            let sampler =
                m.makeSampler(count: data.count, batchSize: batch, seed: 0)
                ?? BucketedSampler(lengths: [seq], batchSize: 1, seed: 0)
            try m.prepare(totalSteps: total)
            let trainingStep = TrainingStep(
                model: model, method: m, optimizer: AdamW(params: model.params), sampler: sampler, data: data,
                maxGradNorm: 1, seed: 1)
            var stepIndex = 0
            return (
                model, m,
                { indices, padded in
                    _ = try trainingStep.run(
                        batches: [indices], padded: padded, step: stepIndex, totalSteps: total, epoch: 0,
                        learningRate: 1e-4)
                    trainingStep.finish()
                    stepIndex += 1
                }
            )
        }
        if let data {
            try runOnData(data, dir: dir, entry: entry, overrides: overrides, info: info, makeStep: makeStep)
            return
        }
        let (m, tm, stepOn) = try makeStep(entry, overrides)
        let fixedBatch = Array(0..<batch)
        let step = { try stepOn(fixedBatch, false) }
        for _ in 0..<2 { try step() }
        func measure(_ f: () throws -> Void) throws -> Double {
            var times: [Double] = []
            for _ in 0..<iters {
                let t0 = DispatchTime.now().uptimeNanoseconds
                try f()
                times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            }
            return median(times)
        }
        func measure() throws -> Double { try measure(step) }
        if profile {
            Profiler.reset()
            Profiler.enabled = true
        }
        var best = try measure()
        if profile {
            Profiler.enabled = false
            for (name, secs) in Profiler.report {
                print(
                    "  " + name.padding(toLength: 20, withPad: " ", startingAt: 0)
                        + String(format: " %7.1f ms/step (forward)", secs * 1000 / Double(iters)))
            }
        }
        if method != "lora" {
            // The method's own cost: next to LoRA r=8, alternating.
            let (_, _, loraStepOn) = try makeStep(try MethodRegistry.entry("lora"), [:])
            let loraStep = { try loraStepOn(fixedBatch, false) }
            for _ in 0..<2 { try loraStep() }
            var l = Double.infinity
            var a = best
            for _ in 0..<2 {
                l = min(l, try measure(loraStep))
                a = min(a, try measure())
            }
            best = a
            print(
                String(
                    format: "overhead:  %@ step %.1f ms vs LoRA r=8 step %.1f ms: %+.1f%%", method, a * 1000, l * 1000,
                    100 * (a / l - 1)))
        }
        print("model:     \(dir)")
        print(
            "method:    \(method) (\(tm.summary)) on \(tm.adapters.count) modules, \(m.params.trainableCount) "
                + "trainable; options "
                + "\(overrides.sorted { $0.key < $1.key }.map { "--\($0.key) \($0.value)" }.joined(separator: " "))"
        )
        print(
            "shape:     batch \(batch) x seq \(seq) = \(batch * seq) tokens per step, train mode (dropout on), AdamW "
                + "+ clipping"
        )
        print("blas:      \(info.vendor) \(info.coreName), \(info.threads) threads")
        var peerBest: [String: Any]? = nil
        if let py = peerPython {
            let tmp = FileManager.default.temporaryDirectory.appendingPathComponent(
                "rankwise-bench-train-\(getpid()).json"
            ).path
            try JSONSerialization.data(
                withJSONObject: ["batch": batch, "seq": seq, "ids": ids.map(Int.init), "labels": labels.map(Int.init)]
                    as [String: Any]
            )
            .write(to: URL(fileURLWithPath: tmp))
            defer { try? FileManager.default.removeItem(atPath: tmp) }
            for round in 0..<2 {
                if round > 0 { best = min(best, try measure()) }
                let peer = try runPeer(
                    py, "peer_train.py", [dir, tmp, String(iters), String(peerThreads), entry.peftAnalogue])
                if ((peer["median_s"] as? Double) ?? .infinity) < ((peerBest?["median_s"] as? Double) ?? .infinity) {
                    peerBest = peer
                }
            }
        }
        let ours = Double(batch * seq) / best
        let mem = peakRSSMiB()
        print(
            String(
                format: "rankwise:  %7.0f tokens/s  (median %.1f ms/step)  peak RSS %.0f MiB", ours, best * 1000, mem))
        guard let peer = peerBest else { return }
        let theirs = (peer["tokens_per_s"] as? Double) ?? 0
        let pmem = (peer["peak_rss_mb"] as? Double) ?? 0
        print(
            String(
                format: "peft %@:  %7.0f tokens/s  (median %.1f ms/step)  peak RSS %.0f MiB  (torch %@, %d threads)",
                entry.peftAnalogue, theirs,
                ((peer["median_s"] as? Double) ?? 0) * 1000, pmem, (peer["torch"] as? String) ?? "?", peerThreads))
        print(String(format: "ratio:     %.2fx PEFT tokens/s, %.2fx its peak memory", ours / theirs, mem / pmem))
    }
}

extension BenchTrain {
    /// Real batches: seeded random batches (unpadded, and padded for comparison) and length-bucketed
    /// padded batches (the old default order), each timed over `iters` steps, best of two rounds;
    /// the PyTorch peer runs the same random batches padded per batch.
    func runOnData(
        _ data: String, dir: String, entry: MethodEntry, overrides: [String: String], info: BLAS.Info,
        makeStep: (MethodEntry, [String: String], Int, TokenizedSet?) throws -> (
            TaskModel, TuningMethod, ([Int], Bool) throws -> Void
        )
    ) throws {
        var spec = DataSpec()
        spec.labelColumn = ModelStore.labelColumn(forData: data, given: labelColumn)
        spec.pairColumn = ModelStore.pairColumn(forData: data, given: nil)
        spec.regression = DataSuite.dataSet(data)?.task == .regression  // timed as 2-class steps: the cost is the same
        var set: TokenizedSet
        do {
            let (ds, _) = try Dataset.load(path: try ModelStore.resolveData(data), spec: spec)
            set = TokenizedSet(ds, tokenizer: try Tokenizer(path: dir), maxLength: maxLength)
        } catch { fail("\(error)") }
        if set.regression { set.labels = set.targets.map { $0 >= 0 ? 1 : 0 } }  // timed as 2-class steps: the same cost
        let lengths = set.ids.map(\.count)
        guard set.count >= batch * iters else {
            fail("--data \(data): \(set.count) examples, need batch x iters = \(batch * iters)")
        }
        let random = BucketedSampler(lengths: lengths, batchSize: batch, seed: 1, bucket: 1)
        let bucketed = BucketedSampler(lengths: lengths, batchSize: batch, seed: 1, bucket: 50)
        let randomBatches = (0..<iters).map { random.batch(epoch: 0, index: $0) }
        let bucketedBatches = (0..<iters).map { bucketed.batch(epoch: 0, index: $0) }
        let classes = Int(set.labels.max() ?? 0) + 1
        let (m, tm, step) = try makeStep(entry, overrides, max(classes, 2), set)

        /// Real tokens per second over a list of batches, and the fraction of computed tokens that were padding.
        func time(_ batches: [[Int]], packed: Bool) throws -> (tokensPerSecond: Double, padding: Double) {
            var real = 0
            var computed = 0
            for idx in batches {
                let lengths = idx.map { set.ids[$0].count }
                real += lengths.reduce(0, +)
                computed += packed ? lengths.reduce(0, +) : idx.count * lengths.max()!
            }
            let t0 = DispatchTime.now().uptimeNanoseconds
            for idx in batches { try step(idx, !packed) }
            let secs = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            return (Double(real) / secs, 1 - Double(real) / Double(computed))
        }
        for idx in randomBatches.prefix(2) { try step(idx, false) }
        var best: [String: (tokensPerSecond: Double, padding: Double)] = [:]
        let orders: [(String, [[Int]], Bool)] = [
            ("random, unpadded", randomBatches, true), ("random, padded", randomBatches, false),
            ("bucketed, padded", bucketedBatches, false),
        ]
        for _ in 0..<2 {
            for (name, batches, packed) in orders {
                let r = try time(batches, packed: packed)
                if r.tokensPerSecond > (best[name]?.tokensPerSecond ?? 0) { best[name] = r }
            }
        }
        let p = lengths.sorted()
        print("model:     \(dir)")
        print(
            "method:    \(method) (\(tm.summary)) on \(tm.adapters.count) modules, \(m.params.trainableCount) trainable"
        )
        print(
            "data:      \(data): \(set.count) texts, tokens p50 \(p[p.count / 2]), p90 \(p[p.count * 9 / 10]), max "
                + "\(p.last!); \(iters) batches of \(batch) per order, train mode, AdamW + clipping"
        )
        print("blas:      \(info.vendor) \(info.coreName), \(info.threads) threads")
        for (name, _, _) in orders {
            let r = best[name]!
            print(
                String(
                    format: "rankwise %-17@ %7.0f real tokens/s  (padding %4.1f%% of computed tokens)", name + ":",
                    r.tokensPerSecond, 100 * r.padding))
        }
        let ours = best["random, unpadded"]!.tokensPerSecond
        let mem = peakRSSMiB()
        print(
            String(
                format: "ratio:     random unpadded / bucketed padded (the old default) %.2fx",
                ours / best["bucketed, padded"]!.tokensPerSecond))
        print(String(format: "memory:    peak RSS %.0f MiB (the whole process: data, model, steps)", mem))
        var record: [String: Any] = [
            "data": data, "method": method, "batch": batch, "iters": iters, "tokens_per_s": ours, "peak_rss_mib": mem,
            "threads": info.threads, "blas": "\(info.vendor) \(info.coreName)",
        ]
        func writeJSON() {
            guard let path = self.json else { return }
            do {
                try writeOutputFile(
                    path,
                    String(
                        decoding: try JSONSerialization.data(
                            withJSONObject: record, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self))
            } catch { fail("--json: \(error)") }
        }
        guard let py = peerPython else {
            writeJSON()
            return
        }
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("rankwise-bench-data-\(getpid()).json")
            .path
        let json: [String: Any] = [
            "batches": randomBatches.map { idx in
                ["ids": idx.map { set.ids[$0].map(Int.init) }, "labels": idx.map { Int(set.labels[$0]) }]
            }
        ]
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: tmp))
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        var peer: [String: Any] = [:]
        for _ in 0..<2 {
            let r = try runPeer(
                py, "peer_train.py", [dir, tmp, String(iters), String(peerThreads), entry.peftAnalogue])
            if ((r["tokens_per_s"] as? Double) ?? 0) > ((peer["tokens_per_s"] as? Double) ?? 0) { peer = r }
        }
        let theirs = (peer["tokens_per_s"] as? Double) ?? 0
        print(
            String(
                format: "peft %@:     %7.0f real tokens/s  (padding %4.1f%% of computed tokens, torch %@, %d threads)",
                entry.peftAnalogue, theirs,
                100 * ((peer["padding_fraction"] as? Double) ?? 0), (peer["torch"] as? String) ?? "?", peerThreads))
        let pmem = (peer["peak_rss_mb"] as? Double) ?? 0
        print(String(format: "peft peak RSS %.0f MiB", pmem))
        print(
            String(
                format: "ratio:     %.2fx PEFT real tokens/s on the same random batches, %.2fx its peak memory",
                ours / theirs, mem / pmem))
        record["peer_tokens_per_s"] = theirs
        record["peer_peak_rss_mib"] = pmem
        record["peer_method"] = entry.peftAnalogue
        record["peer_torch"] = peer["torch"] ?? "?"
        record["peer_threads"] = peerThreads
        writeJSON()
    }
}

/// A random batch of `batch` sequences of `seq` token ids (seeded): each starts with the tokenizer's first special
/// token (BERT's [CLS]), the rest drawn above id 1000 (clear of special and unused ids).
func randomTokenIds(modelDirectory: String, vocabularySize: Int, batch: Int, seq: Int) throws -> [Int32] {
    let first = Int32(try Tokenizer(path: modelDirectory).encode("").ids.first ?? 0)
    var rng = SplitMix64(seed: 1)
    return (0..<(batch * seq)).map { i in
        i % seq == 0 ? first : Int32(1000 + Int(rng.next() % UInt64(vocabularySize - 1000)))
    }
}
