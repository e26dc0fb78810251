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
    @Option(name: .customLong("batch"), help: "Sequences per batch [32; decoders 8].") var batchOption: Int?
    @Option(name: .customLong("seq"), help: "Tokens per sequence (fixed-shape mode) [64; decoders 256].")
    var seqOption: Int?
    var batch: Int { batchOption ?? 32 }
    var seq: Int { seqOption ?? 64 }
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
        let base: BaseModel
        do {
            base = try BaseModel.resolve(model)
            entry = try MethodRegistry.entry(method)
            overrides = entry.benchOptions
            for (k, v) in try FineTuneOptions.values(fromArguments: methodOptions) {
                guard entry.hasOption(k) else {
                    throw SettingsError("--\(SettingsTable.normalise(k)) is not an option of \(method)")
                }
                overrides[SettingsTable.normalise(k)] = v
            }
        } catch { fail("\(error)") }
        if base.isDecoder { return try runDecoder(base, entry: entry, overrides: overrides) }
        dir = base.path
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
        let step = { try stepOn(fixedBatch, true) }
        for _ in 0..<2 { try step() }
        func measure(_ f: () throws -> Void) throws -> Double { try medianSeconds(iters, f) }
        func measure() throws -> Double { try measure(step) }
        let (firstTiming, sections) = try profiledMedianSeconds(iters, profile: profile, step)
        var best = firstTiming
        if profile {
            for (name, secs) in sections {
                print(
                    "  " + name.padding(toLength: 20, withPad: " ", startingAt: 0)
                        + String(format: " %7.1f ms/step (forward)", secs * 1000 / Double(iters)))
            }
        }
        if method != "lora" {
            // The method's own cost: next to LoRA r=8, alternating.
            let (_, _, loraStepOn) = try makeStep(try MethodRegistry.entry("lora"), [:])
            let loraStep = { try loraStepOn(fixedBatch, true) }
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

/// The median wall time of `iterations` calls of `body`, in seconds.
func medianSeconds(_ iterations: Int, _ body: () throws -> Void) throws -> Double {
    var times: [Double] = []
    for _ in 0..<iterations {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
    return median(times)
}

/// The median seconds of `iterations` calls of `step` and, with `profile`, the `Profiler` sections over them.
func profiledMedianSeconds(
    _ iterations: Int, profile: Bool, _ step: () throws -> Void
) throws -> (seconds: Double, sections: [(String, Double)]) {
    if profile {
        Profiler.reset()
        Profiler.enabled = true
    }
    defer { Profiler.enabled = false }
    let seconds = try medianSeconds(iterations, step)
    return (seconds, profile ? Profiler.report : [])
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
