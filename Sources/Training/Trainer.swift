import Data
import Foundation
import Metrics
import Models
import RankwiseCore
import SafeTensors

/// Everything that shapes a training run. Each property is an option (`--batch-size`, YAML
/// `batch_size`), declared here once with its default.
public struct TrainConfig: Settings, Sendable, Codable, Equatable {
    public var epochs: Double = 3
    public var batchSize = 32
    public var gradAccum = 1
    public var lr: Float = 5e-4
    public var schedule = Schedule.linear
    public var warmupRatio: Float = 0.06
    public var warmupSteps: Int? = nil
    public var weightDecay: Float = 0
    public var maxGradNorm: Float = 1
    public var maxLength = 128
    public var seed: UInt64 = 42
    public var sampler = SamplerKind.random
    public var padded = false
    public var evalEvery = 0
    public var checkpointEvery = 200
    public var patience = 0
    public var maxSteps: Int? = nil
    public var logEvery = 10
    public init() {}

    public static let help = [
        "epochs": "epochs (fractions allowed)", "batchSize": "examples per batch",
        "gradAccum": "batches per optimizer step",
        "lr": "peak learning rate (the SVD methods want about 10x LoRA's)",
        "schedule": "linear, cosine or constant (after warmup)",
        "warmupRatio": "warmup as a fraction of the steps", "warmupSteps": "warmup steps (overrides --warmup-ratio)",
        "weightDecay": "AdamW weight decay", "maxGradNorm": "global gradient-norm clip (0: off)",
        "maxLength": "maximum tokens per example",
        "seed": "random seed (initialisation, batches, dropout; the data split has --split-seed)",
        "sampler":
            "random (seeded random batches, run unpadded) or bucketed (batches of texts of similar length: where "
            + "length goes with the label, as in sentence pairs, each batch's label mix is skewed; measured worse "
            + "on SNLI)",
        "padded":
            "pad each batch to its longest text (the default runs batches unpadded, with per-sequence attention: same "
            + "results, no work on padding)",
        "evalEvery": "evaluate on dev every N steps (0: each epoch)",
        "checkpointEvery": "checkpoint every N steps (0: at each evaluation)",
        "patience": "early stopping after N evaluations without improvement (0: off)",
        "maxSteps": "stop after N optimizer steps",
        "logEvery": "write a train line to metrics.jsonl every N steps",
    ]
    public static let aliases = [
        "learning-rate": "lr", "gradient-accumulation": "gradAccum", "early-stopping-patience": "patience",
    ]

    public var scheduleKind: Schedule { schedule }

    /// Errors for settings that cannot work, naming the option.
    public func validate() throws {
        guard batchSize > 0, gradAccum > 0, epochs > 0 else {
            throw TrainError("--batch-size, --grad-accum and --epochs must be positive")
        }
        guard lr.isFinite, lr > 0, lr < 10 else {
            throw TrainError("--lr must be a positive number below 10 (got \(lr))")
        }
        guard warmupRatio.isFinite, (0...1).contains(warmupRatio) else {
            throw TrainError("--warmup-ratio must be between 0 and 1 (got \(warmupRatio))")
        }
        guard weightDecay.isFinite, weightDecay >= 0, maxGradNorm.isFinite, maxGradNorm >= 0 else {
            throw TrainError("--weight-decay and --max-grad-norm must be finite and not negative")
        }
        guard epochs.isFinite, epochs <= 10_000, batchSize <= 65_536, gradAccum <= 65_536, maxLength <= 1 << 20,
            (warmupSteps ?? 0) >= 0
        else {
            throw TrainError("--epochs, --batch-size, --grad-accum, --max-length or --warmup-steps out of range")
        }
        guard maxLength >= 2 else { throw TrainError("--max-length must be at least 2") }
        guard evalEvery >= 0, checkpointEvery >= 0, patience >= 0, logEvery > 0, (maxSteps ?? 1) > 0 else {
            throw TrainError(
                "--eval-every, --checkpoint-every and --patience must not be negative; --max-steps and --log-every "
                    + "must be positive"
            )
        }
    }
}

/// What the trainer reports as it goes.
public enum TrainEvent {
    case step(
        step: Int, totalSteps: Int, epoch: Double, loss: Float, lr: Float, gradNorm: Float, tokensPerSecond: Double)
    case evaluation(step: Int, metrics: [String: Double], isBest: Bool)
    case checkpoint(step: Int, path: String)
    case resumed(step: Int, epoch: Int, batch: Int)
    case stoppedEarly(step: Int, reason: String)
    /// Something the user should know that does not stop training.
    case warning(String)
}

public struct TrainError: Error, CustomStringConvertible {
    public var message: String
    public init(_ m: String) { message = m }
    public var description: String { message }
}

/// Trains a `TaskModel` with a tuning method attached. The trainer knows nothing about the
/// method beyond `TuningMethod`'s hooks; batches come from a `Sampler` (the method's own, or the
/// config's), and every checkpoint holds parameters, AdamW moments, the loop position and every
/// named state of the method and the sampler.
public final class Trainer {
    public let model: TaskModel
    public let method: TuningMethod
    public let sampler: Sampler
    public let config: TrainConfig
    public let train: TokenizedSet
    public let dev: TokenizedSet?
    public let outputDir: String
    public let labelNames: [String]
    public let optimizer: AdamW
    /// Per-group gradient, update and value norms, logged with each `train` line.
    let groupNorms: GroupNorms
    public var onEvent: (TrainEvent) -> Void = { _ in }
    /// Observers called after each step's method hook, with the step number.
    public var afterStep: [(Int) throws -> Void] = []
    /// Rankwise's metadata saved with every adapter (nil: adapters are not written).
    public var adapterMetadata: AdapterMetadata?
    /// Extra metadata stored in checkpoints (method name, config) and checked on resume.
    public var fingerprint: String = ""

    public private(set) var step = 0
    /// Real (non-padding) training tokens and seconds spent evaluating in this process's `run` (not checkpointed).
    public private(set) var sessionTokens = 0, sessionEvalSeconds = 0.0
    var epoch = 0, batchInEpoch = 0
    public private(set) var bestMetric = -Double.infinity
    public private(set) var bestStep = 0
    /// What the latest dev evaluation showed when the model had collapsed (one class, majority level, constant).
    public private(set) var devCollapse: Collapse?
    var evalsSinceBest = 0
    private var metricsFile: FileHandle?

    /// The dev metric that picks the best checkpoint: the head's primary metric.
    public var metricName: String { model.head.primaryMetric }
    public var checkpointPath: String { outputDir + "/checkpoint.safetensors" }

    /// Sets the trainable parameters the method names, adds its regularisers to the model, picks the
    /// sampler and tells the method the number of steps (`prepare`).
    public init(
        model: TaskModel, method: TuningMethod, config: TrainConfig, train: TokenizedSet, dev: TokenizedSet?,
        labelNames: [String], outputDir: String
    ) throws {
        try config.validate()
        guard train.count > 0 else { throw TrainError("the training set is empty") }
        model.setTrainable(adapted: method.isTrainable)
        model.regularizers = method.regularizers
        guard model.params.trainableCount > 0 else { throw TrainError("no trainable parameters") }
        self.model = model
        self.method = method
        self.config = config
        self.train = train
        self.dev = dev
        self.labelNames = labelNames
        self.outputDir = outputDir
        sampler =
            method.makeSampler(count: train.count, batchSize: config.batchSize, seed: config.seed)
            ?? BucketedSampler(
                lengths: train.ids.map(\.count), batchSize: config.batchSize, seed: config.seed,
                bucket: config.sampler == .random ? 1 : 50)
        optimizer = AdamW(params: model.params, weightDecay: config.weightDecay)
        groupNorms = GroupNorms(params: model.params.trainable)
        try method.prepare(totalSteps: totalSteps)
        try Self.makeDirectory(outputDir)
    }

    public var batchesPerEpoch: Int { sampler.batchesPerEpoch }
    public var stepsPerEpoch: Int { (batchesPerEpoch + config.gradAccum - 1) / config.gradAccum }
    public var totalSteps: Int {
        let s = Int((Double(stepsPerEpoch) * config.epochs).rounded(.up))
        return min(s, config.maxSteps ?? s)
    }
    var warmup: Int { config.warmupSteps ?? Int((Float(totalSteps) * config.warmupRatio).rounded()) }
    public func learningRate(at step: Int) -> Float {
        config.lr * config.scheduleKind.factor(step: step, warmup: warmup, total: totalSteps)
    }

    // MARK: Metrics log

    /// Mean Frobenius norm of the adapters' dense updates ΔW (how far the adapted model has moved).
    func adapterDeltaNorm() -> Double {
        var total: Double = 0
        var count = 0
        for lin in model.backbone.adaptableLinears {
            guard let delta = lin.adapter?.delta() else { continue }  // one module's ΔW at a time
            total += GroupNorms.squares(delta.data, delta.count).squareRoot()
            count += 1
        }
        return count == 0 ? 0 : total / Double(count)
    }

    func log(_ obj: [String: Any]) {
        if metricsFile == nil {
            let p = outputDir + "/metrics.jsonl"
            if !FileManager.default.fileExists(atPath: p) {
                _ = FileManager.default.createFile(atPath: p, contents: nil)
            }
            metricsFile = FileHandle(forWritingAtPath: p)
            metricsFile?.seekToEndOfFile()
        }
        guard logError == nil, let d = try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]) else {
            return
        }
        do {
            guard let f = metricsFile else { throw TrainError("cannot open for writing") }
            try f.write(contentsOf: d + Data("\n".utf8))
        } catch {
            logError = TrainError(
                "\(outputDir)/metrics.jsonl: cannot write (\(error.localizedDescription)); is the disk full?")
        }
    }

    /// The first failure to write metrics.jsonl; the loop stops with it at the end of the step.
    private var logError: TrainError?

    /// Writes a JSON object as one line of `metrics.jsonl` (methods log their own events here).
    public func logEvent(_ obj: [String: Any]) { log(obj) }

    // MARK: Loop

    /// Runs (or, with `resume`, continues) training. Returns the final step.
    @discardableResult
    public func run(resume: Bool = false, shouldStop: () -> Bool = { false }) throws -> Int {
        removeLeftovers()
        if resume { try loadCheckpoint() }
        let accum = config.gradAccum
        let perEpoch = sampler.batchesPerEpoch
        var windowLoss: Double = 0
        var windowCount = 0
        var windowTokens = 0
        var windowStart = Date()
        model.params.zeroGrad()
        outer: while step < totalSteps {
            while batchInEpoch < perEpoch && step < totalSteps {
                // one optimizer step = up to `accum` batches (fewer at the end of an epoch)
                let groupSize = min(accum, perEpoch - batchInEpoch)
                var stepLoss: Double = 0
                var examples: [Int] = []
                var losses: [Float] = []
                for k in 0..<groupSize {
                    let idx = sampler.batch(epoch: epoch, index: batchInEpoch + k)
                    let labelled = train.batch(idx, packed: !config.padded)
                    let real = labelled.realTokens
                    let seed = config.seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(step * 64 + k)
                    let out = try model.forward(labelled, training: true, seed: seed)
                    let loss = out.loss!
                    guard loss.isFinite else {
                        log(["event": "nan", "step": step + 1, "loss": "\(loss)"])
                        throw TrainError(
                            "loss is \(loss) at step \(step + 1) (epoch \(epoch + 1), batch \(batchInEpoch + k + 1)); "
                                + "stopping. "
                                + (try keepLastGoodCheckpoint()))
                    }
                    try model.backward(lossScale: 1 / Float(groupSize))
                    stepLoss += Double(loss) / Double(groupSize)
                    windowTokens += real
                    sessionTokens += real
                    examples += idx
                    losses += out.exampleLosses
                }
                let logNow = (step + 1) % config.logEvery == 0 || step + 1 == totalSteps
                if logNow { groupNorms.beforeStep() }
                let norm = clipGradNorm(model.params, maxNorm: config.maxGradNorm)
                guard norm.isFinite else {
                    throw TrainError(
                        "gradient norm is \(norm) at step \(step + 1); stopping. " + (try keepLastGoodCheckpoint()))
                }
                let lr = learningRate(at: step)
                let stepEpoch = epoch
                func context(_ s: Int) -> StepContext {
                    StepContext(
                        step: s, totalSteps: totalSteps, epoch: stepEpoch, optimizer: optimizer, sampler: sampler,
                        examples: examples, exampleLosses: losses, model: model, data: train, learningRate: lr,
                        log: { [unowned self] in self.log($0) })
                }
                try method.beforeOptimizerStep(context(step))
                optimizer.step(lr: lr)
                if logNow { groupNorms.afterStep() }
                step += 1
                batchInEpoch += groupSize
                // Methods see the parameters after the update and this step's (clipped) gradients,
                // as PEFT's update_and_allocate does between optimizer.step() and zero_grad().
                try method.afterOptimizerStep(context(step))
                for h in afterStep { try h(step) }
                model.params.zeroGrad()
                windowLoss += stepLoss
                windowCount += 1
                let epochProgress = Double(epoch) + Double(batchInEpoch) / Double(perEpoch)
                let el = Date().timeIntervalSince(windowStart)
                let tps = el > 0 ? Double(windowTokens) / el : 0
                onEvent(
                    .step(
                        step: step, totalSteps: totalSteps, epoch: epochProgress, loss: Float(stepLoss), lr: lr,
                        gradNorm: norm, tokensPerSecond: tps))
                if logNow {
                    log([
                        "event": "train", "step": step, "epoch": epochProgress,
                        "loss": windowLoss / Double(windowCount), "lr": Double(lr),
                        "grad_norm": Double(norm), "tokens_per_s": tps, "groups": groupNorms.record,
                        "delta_norm": adapterDeltaNorm(),
                    ])
                    windowLoss = 0
                    windowCount = 0
                    windowTokens = 0
                    windowStart = Date()
                }
                let endOfEpoch = batchInEpoch >= perEpoch
                let evalNow =
                    dev != nil
                    && ((config.evalEvery > 0 && step % config.evalEvery == 0) || (config.evalEvery == 0 && endOfEpoch)
                        || step == totalSteps)
                if endOfEpoch {
                    epoch += 1
                    batchInEpoch = 0
                }
                if evalNow {
                    let stop = try evaluateAndTrack()
                    windowTokens = 0
                    windowStart = Date()  // throughput counts training time only
                    if config.checkpointEvery == 0 { try saveCheckpoint() }
                    if stop {
                        onEvent(.stoppedEarly(step: step, reason: "no improvement in \(config.patience) evaluations"))
                        break outer
                    }
                }
                if let e = logError { throw e }
                if config.checkpointEvery > 0 && step % config.checkpointEvery == 0 { try saveCheckpoint() }
                if shouldStop() { break outer }
                if endOfEpoch { break }
            }
        }
        if dev == nil { try saveAdapter(outputDir + "/best") }  // no dev set: the final model is the result
        try saveCheckpoint()
        if let e = logError { throw e }
        return step
    }

    /// Evaluates on dev, logs, saves the best model; returns true when early stopping triggers.
    func evaluateAndTrack() throws -> Bool {
        guard let dev else { return false }
        let t0 = Date()
        defer { sessionEvalSeconds += Date().timeIntervalSince(t0) }
        let r = try Evaluator.evaluate(model, dev, batchSize: max(config.batchSize, 64), padded: config.padded)
        let value = r.summary[metricName] ?? -Double.infinity
        let isBest = value > bestMetric
        if isBest {
            bestMetric = value
            bestStep = step
            evalsSinceBest = 0
            try saveAdapter(outputDir + "/best")
        } else {
            evalsSinceBest += 1
        }
        var obj: [String: Any] = ["event": "eval", "step": step, "best": isBest]
        for (k, v) in r.summary { obj["dev_" + k] = v }
        log(obj)
        onEvent(.evaluation(step: step, metrics: r.summary, isBest: isBest))
        devCollapse = Collapse.diagnose(
            r, labels: dev.labels, targets: dev.targets, labelNames: labelNames, setName: "dev")
        // Judged after the warm-up only: early in a healthy run (LoRA's B = 0, a random head) one class is normal.
        if let c = devCollapse, step > warmup {
            log(["event": "collapse", "step": step].merging(c.record) { a, _ in a })
            onEvent(.warning("step \(step): " + c.message))
        }
        return config.patience > 0 && evalsSinceBest >= config.patience
    }

    /// Writes the method's adapter to `directory` (when `adapterMetadata` is set).
    public func saveAdapter(_ directory: String) throws {
        guard let adapterMetadata else { return }
        try method.save(directory: directory, model: model, metadata: adapterMetadata)
    }

    // MARK: Checkpoints

    /// Every named state a checkpoint holds, with the prefix of its tensors.
    var namedStates: [(String, CheckpointState)] {
        method.checkpointStates.sorted { $0.key < $1.key }.map { ("method." + $0.key + ".", $0.value) } + [
            ("sampler.", sampler)
        ]
    }

    /// Writes trainable parameters, AdamW moments and the loop position in one file, atomically.
    public func saveCheckpoint() throws {
        let meta: [String: String] = [
            "step": String(step), "epoch": String(epoch), "batch_in_epoch": String(batchInEpoch),
            "adam_t": String(optimizer.t),
            "best_metric": String(bestMetric), "best_step": String(bestStep),
            "evals_since_best": String(evalsSinceBest),
            "seed": String(config.seed), "fingerprint": fingerprint, "format": "rankwise-checkpoint-2",
            "method": method.name, "sampler": sampler.name,
        ]
        if FileManager.default.fileExists(atPath: checkpointPath) {
            // A hard link keeps the previous checkpoint; the new one then replaces the name atomically,
            // so checkpoint.safetensors exists at every moment.
            unlink(previousCheckpointPath)
            guard link(checkpointPath, previousCheckpointPath) == 0 else {
                throw TrainError(
                    "\(checkpointPath): cannot keep the previous checkpoint (\(String(cString: strerror(errno))))")
            }
        }
        try SafeTensorsWriter.write(checkpointTensors(), metadata: meta, to: checkpointPath)
        onEvent(.checkpoint(step: step, path: checkpointPath))
    }

    /// Every tensor of the run's state as a checkpoint holds it: trainable parameters, Adam moments,
    /// and each method and sampler state under its prefix.
    public func checkpointTensors() -> [TensorToWrite] {
        var tensors: [TensorToWrite] = []
        for (p, off) in optimizer.slices {
            tensors.append(TensorToWrite(name: "param." + p.name, shape: p.shape, floats: p.value.array))
            tensors.append(
                TensorToWrite(
                    name: "adam.m." + p.name, shape: p.shape,
                    floats: Array(UnsafeBufferPointer(start: optimizer.m.data + off, count: p.count))))
            tensors.append(
                TensorToWrite(
                    name: "adam.v." + p.name, shape: p.shape,
                    floats: Array(UnsafeBufferPointer(start: optimizer.v.data + off, count: p.count))))
        }
        for (prefix, state) in namedStates {
            tensors += state.checkpointTensors().map {
                var t = $0
                t.name = prefix + t.name
                return t
            }
        }
        return tensors
    }

    /// Partial files of writers that were killed (`*.tmp-PID-…` next to checkpoints and adapters).
    func removeLeftovers() {
        let fm = FileManager.default
        for sub in ["", "/best", "/final"] {
            let d = outputDir + sub
            for f in (try? fm.contentsOfDirectory(atPath: d)) ?? [] where f.contains(".tmp-") {
                try? fm.removeItem(atPath: d + "/" + f)
            }
        }
    }

    /// After a resume from `step`: drops the metrics lines of steps after it (they will be written again).
    func truncateMetrics(after step: Int) throws {
        let p = outputDir + "/metrics.jsonl"
        guard let text = try? String(contentsOfFile: p, encoding: .utf8) else { return }
        metricsFile = nil
        let kept = text.split(separator: "\n").filter { line in
            guard let o = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any],
                let s = (o["step"] as? NSNumber)?.intValue
            else { return true }
            return s <= step
        }
        try AtomicFile.write(kept.map { $0 + "\n" }.joined(), to: p)
    }

    func lastCheckpointStep(_ path: String? = nil) throws -> Int {
        Int(try SafeTensorsFile(path: path ?? checkpointPath).metadata["step"] ?? "0") ?? 0
    }

    /// The checkpoint before the latest one (kept so that a blow-up right after a checkpoint leaves a good one).
    public var previousCheckpointPath: String { outputDir + "/checkpoint.previous.safetensors" }

    /// After a non-finite loss or gradient in the step after `step`: the latest checkpoint is good only
    /// if a finite loss was computed from its parameters, i.e. it is older than the current parameters.
    /// Otherwise it holds the parameters that just blew up: it is set aside and the previous one takes
    /// its place. Returns what to tell the user.
    func keepLastGoodCheckpoint() throws -> String {
        let fm = FileManager.default
        guard fm.fileExists(atPath: checkpointPath) else { return "No checkpoint was written yet; try a lower --lr." }
        if try lastCheckpointStep() >= step {
            let bad = outputDir + "/checkpoint.diverged.safetensors"
            try? fm.removeItem(atPath: bad)
            try fm.moveItem(atPath: checkpointPath, toPath: bad)
            guard fm.fileExists(atPath: previousCheckpointPath) else {
                return
                    "The only checkpoint (step \(step)) holds the diverged parameters (moved to \(bad)); start again "
                    + "with a lower --lr."
            }
            try fm.moveItem(atPath: previousCheckpointPath, toPath: checkpointPath)
        }
        return
            "The last good checkpoint is \(checkpointPath) (step \(try lastCheckpointStep())): `--resume` with a "
            + "lower --lr continues from it."
    }

    /// Restores everything `saveCheckpoint` wrote. Errors name what does not match.
    public func loadCheckpoint() throws {
        guard FileManager.default.fileExists(atPath: checkpointPath) else {
            throw TrainError("--resume: no checkpoint at \(checkpointPath)")
        }
        let f: SafeTensorsFile
        do { f = try SafeTensorsFile(path: checkpointPath) } catch { throw TrainError("\(error)") }
        let meta = f.metadata
        guard meta["format"] == "rankwise-checkpoint-2" else {
            throw TrainError(
                "\(checkpointPath): not a checkpoint of this Rankwise version (format "
                    + "\(meta["format"] ?? "missing")); start a new run"
            )
        }
        guard meta["method"] == method.name, meta["sampler"] == sampler.name else {
            throw TrainError(
                "\(checkpointPath) was written by method \(meta["method"] ?? "?") with the \(meta["sampler"] ?? "?") "
                    + "sampler; this run uses \(method.name) with \(sampler.name)"
            )
        }
        if meta["fingerprint"] != fingerprint {
            let diffs = Self.differences(meta["fingerprint"] ?? "{}", fingerprint)
            let fixed = diffs.filter { d in !Self.adjustableOnResume.contains { d.hasPrefix($0 + ":") } }
            // Settings the checkpoint does not know at all: an older Rankwise wrote it, and no options reproduce that
            // run.
            if fixed.contains(where: { $0.contains(": (none) in the checkpoint") }) {
                throw TrainError(
                    "\(checkpointPath) was written by an older Rankwise, before these settings existed: "
                        + fixed.filter { $0.contains(": (none) in the checkpoint") }.joined(separator: "; ")
                        + ". That run cannot continue with this version: start a new run (a new --output)")
            }
            let stored = Data((meta["fingerprint"] ?? "").utf8)
            let readable = (try? JSONSerialization.jsonObject(with: stored)) is [String: Any]
            guard fixed.isEmpty, readable else {
                throw TrainError(
                    "\(checkpointPath) was written with other settings: "
                        + (diffs.isEmpty ? "(unreadable fingerprint)" : fixed.joined(separator: "; "))
                        + ". Resume with the same settings, or use a new --output (these may change on resume: "
                        + Self.adjustableOnResume.map { $0.replacingOccurrences(of: "training.", with: "") }.sorted()
                        .joined(separator: ", ") + ")")
            }
            // No differences: the same settings in another layout (a method's options grouped since the checkpoint).
            if !diffs.isEmpty {
                onEvent(.warning("resuming with changed settings: " + diffs.joined(separator: "; ")))
                log(["event": "resume_changed", "changes": diffs])
            }
        }
        for (p, off) in optimizer.slices {
            for (prefix, dst) in [
                ("param.", p.value.data), ("adam.m.", optimizer.m.data + off), ("adam.v.", optimizer.v.data + off),
            ] {
                let name = prefix + p.name
                guard let info = f.info(name), info.shape == p.shape else {
                    throw TrainError("\(checkpointPath): tensor \(name) missing or mis-shaped")
                }
                let vals = try f.floats(name)
                vals.withUnsafeBufferPointer { dst.update(from: $0.baseAddress!, count: p.count) }
            }
        }
        func int(_ k: String) throws -> Int {
            guard let s = meta[k], let v = Int(s) else { throw TrainError("\(checkpointPath): metadata \(k) missing") }
            return v
        }
        step = try int("step")
        epoch = try int("epoch")
        batchInEpoch = try int("batch_in_epoch")
        // Out-of-range positions (a tampered file, or data that changed size) would train nothing or loop forever.
        let epochs = Int(config.epochs.rounded(.up))
        guard (0...totalSteps).contains(step), (0...max(epochs, 1)).contains(epoch),
            (0...sampler.batchesPerEpoch).contains(batchInEpoch)
        else {
            throw TrainError(
                "\(checkpointPath): position step \(step), epoch \(epoch), batch \(batchInEpoch) is outside this run "
                    + "(\(totalSteps) steps, \(epochs) epochs of \(sampler.batchesPerEpoch) batches)"
            )
        }
        for (prefix, state) in namedStates { try state.restore(from: CheckpointSection(file: f, prefix: prefix)) }
        optimizer.restore(t: try int("adam_t"))
        bestMetric = Double(meta["best_metric"] ?? "") ?? -Double.infinity
        bestStep = try int("best_step")
        evalsSinceBest = try int("evals_since_best")
        guard (0...step).contains(bestStep), evalsSinceBest >= 0, (0...step).contains(optimizer.t) else {
            throw TrainError(
                "\(checkpointPath): best_step \(bestStep), evals_since_best \(evalsSinceBest) or adam_t "
                    + "\(optimizer.t) out of range for step \(step)"
            )
        }
        try truncateMetrics(after: step)
        log(["event": "resume", "step": step])
        onEvent(.resumed(step: step, epoch: epoch, batch: batchInEpoch))
    }
}

extension Trainer {
    /// Creates an output directory (a bare name means the current directory's), or says why it cannot.
    public static func makeDirectory(_ path: String) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir) {
            guard isDir.boolValue else { throw TrainError("--output \(path): is a file, not a directory") }
            guard FileManager.default.isWritableFile(atPath: path) else {
                throw TrainError("--output \(path): the directory is not writable")
            }
            return
        }
        // mkdir -p with the system's reason when a level cannot be made
        var prefix = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            prefix += "/" + part
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw TrainError("--output \(path): cannot create \(prefix) (\(String(cString: strerror(errno))))")
            }
        }
    }

    /// Settings a resumed run may change (with a warning): they change how the state evolves, not its shape
    /// or the data it was computed from.
    static let adjustableOnResume: Set<String> = [
        "training.lr", "training.maxGradNorm", "training.weightDecay", "training.patience",
        "training.evalEvery", "training.checkpointEvery", "training.logEvery",
    ]

    /// The settings that differ between two fingerprints (JSON objects), as "key: old -> new". A method's
    /// options are keyed by their own names (`method_config.tinit`, whatever group holds them): they are flags,
    /// unique within a method, so grouping them in a later version does not change a fingerprint's settings.
    static func differences(_ old: String, _ new: String) -> [String] {
        func flat(_ s: String) -> [String: String] {
            guard let o = try? JSONSerialization.jsonObject(with: Data(s.utf8)) else { return [:] }
            var out: [String: String] = [:]
            func walk(_ v: Any, _ key: String) {
                if let d = v as? [String: Any] {
                    for (k, x) in d {
                        let inMethod = key.hasPrefix("method_config.") && !(x is [String: Any])
                        walk(x, key.isEmpty ? k : inMethod ? "method_config." + k : key + "." + k)
                    }
                } else if let data = try? JSONSerialization.data(
                    withJSONObject: v, options: [.fragmentsAllowed, .sortedKeys])
                {
                    out[key] = String(decoding: data, as: UTF8.self)
                }
            }
            walk(o, "")
            return out
        }
        let a = flat(old)
        let b = flat(new)
        return Set(a.keys).union(b.keys).sorted().compactMap { k in
            if a[k] == b[k] { return nil }
            if k.hasPrefix("data_content."), a[k] != nil, b[k] != nil {
                return "the data file \(k.dropFirst(13)) changed since the checkpoint (its content hash differs)"
            }
            return "\(k): \(a[k] ?? "(none)") in the checkpoint, \(b[k] ?? "(none)") now"
        }
    }
}

/// Evaluation of a classifier on a tokenized set.
public enum Evaluator {
    public struct Result {
        public var predictions: [Int]
        public var probabilities: [[Float]]
        public var logits: [[Float]]
        public var values: [Float]
        public var classification: ClassificationMetrics?
        public var regression: RegressionMetrics?
        public var loss: Double
        /// Flat metric names → values (accuracy, macro_f1, mcc, loss / pearson, spearman, mse).
        public var summary: [String: Double] {
            var s: [String: Double] = ["loss": loss]
            if let c = classification {
                s["accuracy"] = c.accuracy
                s["macro_f1"] = c.macroF1
                s["mcc"] = c.mcc
            }
            if let r = regression {
                s["pearson"] = r.pearson
                s["spearman"] = r.spearman
                s["mse"] = r.mse
            }
            return s
        }
    }

    /// Runs `set` through `model` in batches sorted by length (packed unless `padded`).
    public static func evaluate(
        _ model: TaskModel, _ set: TokenizedSet, batchSize: Int = 64, withLabels: Bool = true, padded: Bool = false
    ) throws -> Result {
        let order = set.ids.indices.sorted { set.ids[$0].count < set.ids[$1].count }
        let C = model.numLabels
        var preds = [Int](repeating: 0, count: set.count)
        var probs = [[Float]](repeating: [], count: set.count)
        var vals = [Float](repeating: 0, count: set.count)
        var logits = [[Float]](repeating: [], count: set.count)
        var lossSum: Double = 0
        for start in stride(from: 0, to: order.count, by: batchSize) {
            let idx = Array(order[start..<min(order.count, start + batchSize)])
            let labelled = set.batch(idx, packed: !padded)
            let out = withLabels ? try model.forward(labelled) : try model.forward(labelled.tokens)
            if let l = out.loss { lossSum += Double(l) * Double(idx.count) }
            for (r, i) in idx.enumerated() {
                let row = Array(out.logits[(r * C)..<((r + 1) * C)])
                logits[i] = row
                if set.regression {
                    vals[i] = row[0]
                    continue
                }
                let mx = row.max()!
                let e = row.map { expf($0 - mx) }
                let s = e.reduce(0, +)
                probs[i] = e.map { $0 / s }
                preds[i] = row.indices.max { row[$0] < row[$1] }!
            }
        }
        var r = Result(
            predictions: preds, probabilities: probs, logits: logits, values: vals, classification: nil,
            regression: nil, loss: lossSum / Double(max(1, set.count)))
        if withLabels {
            if set.regression {
                r.regression = RegressionMetrics(predictions: vals, targets: set.targets)
            } else {
                r.classification = ClassificationMetrics(
                    predictions: preds, labels: set.labels.map(Int.init), numClasses: C)
            }
        }
        return r
    }
}
