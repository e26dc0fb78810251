import Data
import Foundation
import Metrics
import Models
import RankwiseCore
import SafeTensors

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
    /// One optimizer step (forward, backward, clipping, the method's hooks, AdamW).
    let trainingStep: TrainingStep
    /// Per-group gradient, update and value norms, logged with each `train` line.
    var groupNorms: GroupNorms { trainingStep.groupNorms }
    public var onEvent: (TrainEvent) -> Void = { _ in }
    /// Observers called after each step's method hook, with the step number.
    public var afterStep: [(Int) throws -> Void] = []
    /// Rankwise's metadata saved with every adapter (nil: adapters are not written).
    public var adapterMetadata: AdapterMetadata?
    /// Extra metadata stored in checkpoints (method name, config) and checked on resume.
    public var fingerprint: String = ""

    public internal(set) var step = 0
    /// Real (non-padding) training tokens and seconds spent evaluating in this process's `run` (not checkpointed).
    public private(set) var sessionTokens = 0, sessionEvalSeconds = 0.0
    var epoch = 0, batchInEpoch = 0
    public internal(set) var bestMetric = -Double.infinity
    public internal(set) var bestStep = 0
    /// What the latest dev evaluation showed when the model had collapsed (one class, majority level, constant).
    public private(set) var devCollapse: Collapse?
    var evalsSinceBest = 0
    var metricsFile: FileHandle?

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
        self.config = config.resolved(languageModel: model.backbone.isCausal)
        self.train = train
        self.dev = dev
        self.labelNames = labelNames
        self.outputDir = outputDir
        bestMetric = MetricOrder.worst(model.head.primaryMetric)
        sampler =
            method.makeSampler(count: train.count, batchSize: self.config.batchSize ?? 1, seed: config.seed)
            ?? BucketedSampler(
                lengths: train.ids.map(\.count), batchSize: self.config.batchSize ?? 1, seed: config.seed,
                bucket: config.sampler == .random ? 1 : 50)
        optimizer = AdamW(params: model.params, weightDecay: config.weightDecay)
        trainingStep = TrainingStep(
            model: model, method: method, optimizer: optimizer, sampler: sampler, data: train,
            maxGradNorm: config.maxGradNorm, seed: config.seed)
        trainingStep.log = { [unowned self] in self.log($0) }
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
                let batches = (0..<groupSize).map { sampler.batch(epoch: epoch, index: batchInEpoch + $0) }
                let logNow = (step + 1) % config.logEvery == 0 || step + 1 == totalSteps
                let lr = learningRate(at: step)
                let outcome: TrainingStep.Outcome
                do {
                    outcome = try trainingStep.run(
                        batches: batches, padded: config.padded, step: step, totalSteps: totalSteps, epoch: epoch,
                        learningRate: lr, measureGroups: logNow)
                } catch StepFailure.loss(let loss, let offset) {
                    log(["event": "nan", "step": step + 1, "loss": "\(loss)"])
                    throw TrainError(
                        "loss is \(loss) at step \(step + 1) (epoch \(epoch + 1), batch \(batchInEpoch + offset + 1)); "
                            + "stopping. " + (try keepLastGoodCheckpoint()))
                } catch StepFailure.gradientNorm(let norm) {
                    throw TrainError(
                        "gradient norm is \(norm) at step \(step + 1); stopping. " + (try keepLastGoodCheckpoint()))
                }
                let stepLoss = outcome.loss
                let norm = outcome.gradientNorm
                windowTokens += outcome.realTokens
                sessionTokens += outcome.realTokens
                step += 1
                batchInEpoch += groupSize
                for h in afterStep { try h(step) }
                trainingStep.finish()
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
        let r = try Evaluator.evaluate(model, dev, batchSize: max(config.batchSize ?? 1, 64), padded: config.padded)
        let value = r.summary[metricName] ?? MetricOrder.worst(metricName)
        let isBest = MetricOrder.isBetter(metricName, value, than: bestMetric)
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
}
