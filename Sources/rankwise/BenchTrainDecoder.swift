import Foundation
import FineTuning
import Methods
import Models
import RankwiseCore
import Training

extension BenchTrain {
    /// A decoder's causal-LM training step (every token learnt) on one fixed batch of random token ids, next to
    /// PyTorch + PEFT on the same model in float32 with the same batch: tokens/s, the process's peak memory, and the
    /// peak over the steps alone (measured from a reset after loading, so a loader's transient peak does not count).
    func runDecoder(_ base: BaseModel, entry: MethodEntry, overrides: [String: String]) throws {
        let batch = batchOption ?? 8
        let seq = seqOption ?? 256
        guard iters >= 1, batch >= 1, seq >= 2 else { fail("--iters and --batch must be at least 1, --seq 2") }
        if data != nil { fail("--data times encoder batches; a decoder runs the fixed --batch x --seq shape") }
        let info = try BLAS.load()
        let backbone = try base.backbone()
        guard seq <= backbone.maxPositions else {
            fail("--seq \(seq) exceeds the model's context length \(backbone.maxPositions)")
        }
        var random = SplitMix64(seed: 1)
        let vocabulary = backbone.vocabularySize
        let rows = (0..<batch).map { _ in
            (0..<seq).map { _ in Int32(100 + Int(random.next() % UInt64(vocabulary - 100))) }
        }
        let data = TokenizedSet(
            languageModel: rows, isTarget: rows.map { [false] + [Bool](repeating: true, count: $0.count - 1) })
        let (method, _) = try entry.make(options: overrides, backbone: backbone, seed: 1)
        let model = try TaskModel(backbone: backbone, numLabels: 0, problem: .causalLanguageModel)
        model.setTrainable(adapted: method.isTrainable)
        model.regularizers = method.regularizers
        let total = 1_000_000
        let sampler =
            method.makeSampler(count: data.count, batchSize: batch, seed: 0)
            ?? BucketedSampler(lengths: data.ids.map(\.count), batchSize: batch, seed: 0)
        try method.prepare(totalSteps: total)
        let trainingStep = TrainingStep(
            model: model, method: method, optimizer: AdamW(params: model.params), sampler: sampler, data: data,
            maxGradNorm: 1, seed: 1)
        let loadPeak = peakRSSMiB()
        resetPeakRSS()
        var stepIndex = 0
        func step() throws {
            _ = try trainingStep.run(
                batches: [Array(0..<batch)], padded: false, step: stepIndex, totalSteps: total, epoch: 0,
                learningRate: 1e-4)
            trainingStep.finish()
            stepIndex += 1
        }
        for _ in 0..<2 { try step() }
        func measure() throws -> Double { try medianSeconds(iters, step) }
        let (firstTiming, sections) = try profiledMedianSeconds(iters, profile: profile, step)
        var best = firstTiming
        if profile {
            let profiled = sections.reduce(0) { $0 + $1.1 }
            print("profile (per step, by layer kind; forward and backward):")
            for (name, seconds) in sections {
                print(
                    "  " + name.padding(toLength: 24, withPad: " ", startingAt: 0)
                        + String(
                            format: " %8.1f ms  %5.1f%%", seconds * 1000 / Double(iters), 100 * seconds / profiled))
            }
        }
        print("model:     \(base.path)")
        print(
            "method:    \(method.name) (\(method.summary)) on \(method.adapters.count) modules, "
                + "\(model.params.trainableCount) trainable")
        print(
            "shape:     batch \(batch) x seq \(seq) = \(batch * seq) tokens per step, causal LM (every token learnt), "
                + "train mode (dropout on), AdamW + clipping")
        print("blas:      \(info.vendor) \(info.coreName), \(info.threads) threads")
        var peer: [String: Any]? = nil
        if let python = peerPython {
            let file = FileManager.default.temporaryDirectory.appendingPathComponent(
                "rankwise-bench-train-lm-\(getpid()).json"
            ).path
            try JSONSerialization.data(
                withJSONObject: ["batch": batch, "seq": seq, "ids": rows.flatMap { $0.map(Int.init) }] as [String: Any]
            ).write(to: URL(fileURLWithPath: file))
            defer { try? FileManager.default.removeItem(atPath: file) }
            let analogue = entry.peftAnalogue == "dora" ? "dora" : "lora"
            for round in 0..<2 {
                if round > 0 { best = min(best, try measure()) }
                let result = try runPeer(
                    python, "peer_train_lm.py", [base.path, file, String(iters), String(peerThreads), analogue])
                if ((result["median_s"] as? Double) ?? .infinity) < ((peer?["median_s"] as? Double) ?? .infinity) {
                    peer = result
                }
            }
        }
        let ours = Double(batch * seq) / best
        let stepPeak = peakRSSMiB()
        let floor = GemmFloor.measure(backbone, tokens: batch * seq)
        let processPeak = max(loadPeak, stepPeak)
        print(
            String(
                format: "rankwise:  %7.0f tokens/s  (median %.1f ms/step)  peak RSS %.0f MiB, over the steps %.0f MiB",
                ours, best * 1000, processPeak, stepPeak))
        let floorTokens = Double(batch * seq) / floor.seconds
        print(
            String(
                format: "floor:     the frozen products alone (forward and input gradients, %.0f GFLOP/step) take "
                    + "%.0f ms at %.0f GFLOP/s on this BLAS: at most %.0f tokens/s in float32; this step runs them at "
                    + "%.0f GFLOP/s", floor.flops / 1e9, floor.seconds * 1000, floor.gflopsPerSecond, floorTokens,
                floor.flops / best / 1e9))
        guard let peer else { return }
        let theirs = (peer["tokens_per_s"] as? Double) ?? 0
        let theirPeak = (peer["peak_rss_mb"] as? Double) ?? 0
        let theirStepPeak = (peer["step_peak_rss_mb"] as? Double) ?? 0
        print(
            String(
                format: "peft:      %7.0f tokens/s  (median %.1f ms/step)  peak RSS %.0f MiB, over the steps %.0f MiB "
                    + "(torch %@, %d threads)",
                theirs, ((peer["median_s"] as? Double) ?? 0) * 1000, theirPeak, theirStepPeak,
                (peer["torch"] as? String) ?? "?", peerThreads))
        if let theirFloor = peer["floor_s"] as? Double {
            print(
                String(
                    format: "peft floor: the same products take %.0f ms in torch (%.0f GFLOP/s); its step runs them "
                        + "at %.0f GFLOP/s", theirFloor * 1000, floor.flops / theirFloor / 1e9,
                    floor.flops / ((peer["median_s"] as? Double) ?? .infinity) / 1e9))
        }
        print(
            String(
                format: "ratio:     %.2fx PEFT tokens/s (the float32 floor allows %.2fx); %.2fx its peak memory, "
                    + "%.2fx over the steps", ours / theirs, floorTokens / theirs, processPeak / theirPeak,
                stepPeak / theirStepPeak))
    }
}
