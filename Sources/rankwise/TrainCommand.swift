import Adapters
import ArgumentParser
import Data
import Foundation
import Metrics
import Models
import RankwiseCore
import Tokenizers
import Training
import RankAllocation
import Yams

/// Every training option; read from a YAML file (same names as the flags, with dashes or
/// underscores) and overridden by flags given on the command line.
struct TrainOptions: Codable, Equatable {
    var model = "minilm"
    var train: String? = nil
    var dev: String? = nil
    var test: String? = nil
    var textColumn = "text"
    var pairColumn: String? = nil
    var labelColumn = "label"
    var labels: [String]? = nil
    var regression = false
    var dedup = false
    var devFraction = 0.1
    var testFraction = 0.1
    var maxTrainExamples: Int? = nil
    var method = "lora"
    var r = 8
    var alpha: Float = 16
    var loraDropout: Float = 0.05
    var targetModules = ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"]
    var rslora = false
    var initR = 12
    var targetR = 8
    var tinit: Int? = nil
    var tfinal: Int? = nil
    var deltaT = 10
    var orthRegWeight: Float = 0.5
    var beta1: Float = 0.85
    var beta2: Float = 0.85
    var lambda: Float = 0.5
    var beta: Float = 0.9
    var gamma: Float = 2
    var ti = 10
    var tf = 200
    var interval = 1
    var epochs: Double = 3
    var batchSize = 32
    var gradAccum = 1
    var lr: Float = 5e-4
    var schedule = "linear"
    var warmupRatio: Float = 0.06
    var weightDecay: Float = 0
    var maxGradNorm: Float = 1
    var maxLength = 128
    var seed: UInt64 = 42
    var evalEvery = 0
    var checkpointEvery = 200
    var patience = 0
    var maxSteps: Int? = nil
    var output = "runs/latest"

    static func fromYAML(_ path: String) throws -> TrainOptions {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ValidationError("\(path): cannot read") }
        guard let obj = try Yams.load(yaml: text) as? [String: Any] else { throw ValidationError("\(path): not a YAML mapping") }
        // Accept kebab-case and snake_case keys; reject unknown ones by name.
        var norm: [String: Any] = [:]
        let known = Set(Mirror(reflecting: TrainOptions()).children.compactMap(\.label))
        for (k, v) in obj {
            let parts = k.split(whereSeparator: { $0 == "-" || $0 == "_" })
            let camel = parts.enumerated().map { $0 == 0 ? String($1) : $1.prefix(1).uppercased() + $1.dropFirst() }.joined()
            guard known.contains(camel) else { throw ValidationError("\(path): unknown option \"\(k)\" (known: \(known.sorted().joined(separator: ", ")))") }
            norm[camel] = v
        }
        var o = TrainOptions()
        let base = try JSONSerialization.jsonObject(with: JSONEncoder().encode(o)) as! [String: Any]
        let merged = base.merging(norm) { $1 }
        do {
            o = try JSONDecoder().decode(TrainOptions.self, from: JSONSerialization.data(withJSONObject: merged))
        } catch let DecodingError.typeMismatch(_, ctx) {
            throw ValidationError("\(path): option \"\(ctx.codingPath.map(\.stringValue).joined(separator: "."))\" has the wrong type")
        } catch {
            throw ValidationError("\(path): \(error)")
        }
        return o
    }
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fine-tune a sequence classifier with LoRA on CSV/TSV/JSONL data.",
        discussion: """
            Examples:
              rankwise train --train tweets --label-column sentiment --output runs/tweets
              rankwise train --config run.yaml --resume
            Without --dev/--test the training file is split (seeded, duplicates kept together).
            Writes metrics.jsonl, checkpoint.safetensors (resumable), best/ and final/ (PEFT adapters) and results.json to --output.
            """)

    @Option(help: "YAML file with any of these options (flags override it).") var config: String?
    @Option(help: "Base model directory or alias.") var model: String?
    @Option(help: "Training data (CSV, TSV, JSONL) or a known data alias (tweets).") var train: String?
    @Option(help: "Dev data (default: split from --train).") var dev: String?
    @Option(help: "Test data (default: split from --train).") var test: String?
    @Option(help: "Text column.") var textColumn: String?
    @Option(help: "Second text column for sentence pairs.") var pairColumn: String?
    @Option(help: "Label column.") var labelColumn: String?
    @Option(help: "Class names in id order, comma-separated (default: discovered).") var labels: String?
    @Flag(help: "Regression on a numeric label (MSE loss).") var regression = false
    @Flag(help: "Drop duplicate texts.") var dedup = false
    @Option(help: "Dev fraction when splitting.") var devFraction: Double?
    @Option(help: "Test fraction when splitting.") var testFraction: Double?
    @Option(help: "Use only the first N training examples (after the split).") var maxTrainExamples: Int?
    @Option(help: "Method: lora.") var method: String?
    @Option(help: "LoRA rank.") var r: Int?
    @Option(help: "LoRA alpha.") var alpha: Float?
    @Option(help: "LoRA dropout.") var loraDropout: Float?
    @Option(help: "Comma-separated target modules (PEFT semantics).") var targetModules: String?
    @Flag(help: "rsLoRA scaling alpha/sqrt(r).") var rslora = false
    @Option(help: "AdaLoRA: initial rank per module.") var initR: Int?
    @Option(help: "AdaLoRA: average final rank per module.") var targetR: Int?
    @Option(help: "AdaLoRA: steps before pruning starts (default 10% of the steps).") var tinit: Int?
    @Option(help: "AdaLoRA: final steps with a fixed rank pattern (default 20% of the steps).") var tfinal: Int?
    @Option(help: "AdaLoRA: steps between budget updates.") var deltaT: Int?
    @Option(help: "AdaLoRA: orthogonal regulariser weight.") var orthRegWeight: Float?
    @Option(help: "AdaLoRA: EMA factor of sensitivity.") var beta1: Float?
    @Option(help: "AdaLoRA: EMA factor of uncertainty.") var beta2: Float?
    @Option(help: "SalientLoRA: weight of magnitude vs influence domain (S = λM + (1-λ)D).") var lambda: Float?
    @Option(help: "SalientLoRA: correlation threshold for a dependency edge.") var beta: Float?
    @Option(help: "SalientLoRA: slope threshold for a dependency edge.") var gamma: Float?
    @Option(help: "SalientLoRA: initial time-series window (steps).") var ti: Int?
    @Option(help: "SalientLoRA: final time-series window (steps).") var tf: Int?
    @Option(help: "SalientLoRA: record singular values every N steps.") var interval: Int?
    @Option(help: "Epochs (fractions allowed).") var epochs: Double?
    @Option(help: "Batch size.") var batchSize: Int?
    @Option(help: "Gradient accumulation steps.") var gradAccum: Int?
    @Option(help: "Peak learning rate.") var lr: Float?
    @Option(help: "linear, cosine or constant (after warmup).") var schedule: String?
    @Option(help: "Warmup fraction of the steps.") var warmupRatio: Float?
    @Option(help: "AdamW weight decay.") var weightDecay: Float?
    @Option(help: "Global gradient-norm clip (0: off).") var maxGradNorm: Float?
    @Option(help: "Maximum tokens per example.") var maxLength: Int?
    @Option(help: "Random seed.") var seed: UInt64?
    @Option(help: "Evaluate every N steps (0: each epoch).") var evalEvery: Int?
    @Option(help: "Checkpoint every N steps.") var checkpointEvery: Int?
    @Option(help: "Early stopping patience in evaluations (0: off).") var patience: Int?
    @Option(help: "Stop after N optimizer steps.") var maxSteps: Int?
    @Option(help: "Output directory.") var output: String?
    @Flag(help: "Continue from the output directory's checkpoint.") var resume = false

    func options() throws -> TrainOptions {
        var o = try config.map(TrainOptions.fromYAML) ?? TrainOptions()
        if let v = model { o.model = v }; if let v = train { o.train = v }; if let v = dev { o.dev = v }; if let v = test { o.test = v }
        if let v = textColumn { o.textColumn = v }; if let v = pairColumn { o.pairColumn = v }; if let v = labelColumn { o.labelColumn = v }
        if let v = labels { o.labels = v.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        if regression { o.regression = true }; if dedup { o.dedup = true }
        if let v = devFraction { o.devFraction = v }; if let v = testFraction { o.testFraction = v }
        if let v = maxTrainExamples { o.maxTrainExamples = v }
        if let v = method { o.method = v }; if let v = r { o.r = v }; if let v = alpha { o.alpha = v }
        if let v = loraDropout { o.loraDropout = v }
        if let v = targetModules { o.targetModules = v.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        if rslora { o.rslora = true }
        if let v = initR { o.initR = v }; if let v = targetR { o.targetR = v }; if let v = tinit { o.tinit = v }; if let v = tfinal { o.tfinal = v }
        if let v = lambda { o.lambda = v }; if let v = beta { o.beta = v }; if let v = gamma { o.gamma = v }
        if let v = ti { o.ti = v }; if let v = tf { o.tf = v }; if let v = interval { o.interval = v }
        if let v = deltaT { o.deltaT = v }; if let v = orthRegWeight { o.orthRegWeight = v }; if let v = beta1 { o.beta1 = v }; if let v = beta2 { o.beta2 = v }
        if let v = epochs { o.epochs = v }; if let v = batchSize { o.batchSize = v }; if let v = gradAccum { o.gradAccum = v }
        if let v = lr { o.lr = v }; if let v = schedule { o.schedule = v }; if let v = warmupRatio { o.warmupRatio = v }
        if let v = weightDecay { o.weightDecay = v }; if let v = maxGradNorm { o.maxGradNorm = v }; if let v = maxLength { o.maxLength = v }
        if let v = seed { o.seed = v }; if let v = evalEvery { o.evalEvery = v }; if let v = checkpointEvery { o.checkpointEvery = v }
        if let v = patience { o.patience = v }; if let v = maxSteps { o.maxSteps = v }; if let v = output { o.output = v }
        guard o.train != nil else { throw ValidationError("--train (or train: in --config) is required") }
        guard Schedule(rawValue: o.schedule) != nil else { throw ValidationError("--schedule must be one of \(Schedule.allCases.map(\.rawValue).joined(separator: ", "))") }
        guard ["lora", "adalora", "salientlora"].contains(o.method) else { throw ValidationError("--method \(o.method) is not available yet (available: lora, adalora, salientlora)") }
        guard o.devFraction >= 0, o.testFraction >= 0, o.devFraction + o.testFraction < 1 else { throw ValidationError("--dev-fraction + --test-fraction must be below 1") }
        guard o.maxLength >= 2 else { throw ValidationError("--max-length must be at least 2") }
        return o
    }

    func run() throws {
        let o: TrainOptions
        do { o = try options() } catch { fail("\(error)") }
        do { try TrainJob(options: o, resume: resume).run() } catch { fail("\(error)") }
    }
}

/// Resolves a data argument: a file, or a known data alias.
func resolveData(_ spec: String) throws -> String {
    if FileManager.default.fileExists(atPath: spec) { return spec }
    if let k = ModelStore.knownData.first(where: { $0.alias == spec }) { return try ModelStore.fetch(k, force: false, quiet: false) + "/" + k.required[0] }
    throw ModelError("\(spec): no such file (known data aliases: \(ModelStore.knownData.map(\.alias).joined(separator: ", ")))")
}

/// One training run, from options to exported adapters and test metrics.
struct TrainJob {
    let options: TrainOptions
    let resume: Bool

    func run() throws {
        let o = options
        try BLAS.load()
        let modelDir = try ModelStore.resolve(o.model)
        let tokenizer = try Tokenizer(path: modelDir)
        var spec = DataSpec()
        spec.textColumn = o.textColumn; spec.pairColumn = o.pairColumn; spec.labelColumn = o.labelColumn
        spec.labels = o.labels; spec.regression = o.regression; spec.dropDuplicates = o.dedup
        let trainPath = try resolveData(o.train!)
        if o.train == "tweets" && o.labelColumn == "label" { spec.labelColumn = "sentiment" }
        var (full, rep) = try Dataset.load(path: trainPath, spec: spec)
        var reports = [rep]
        var trainSet = full, devSet: Dataset? = nil, testSet: Dataset? = nil
        if o.dev == nil || o.test == nil {
            let s = full.split(dev: o.dev == nil ? o.devFraction : 0, test: o.test == nil ? o.testFraction : 0, seed: o.seed)
            trainSet = s.train
            if o.dev == nil && o.devFraction > 0 { devSet = s.dev }
            if o.test == nil && o.testFraction > 0 { testSet = s.test }
        }
        if let d = o.dev { let (ds, r) = try Dataset.load(path: try resolveData(d), spec: spec, labelNames: full.labelNames); devSet = ds; reports.append(r) }
        if let t = o.test { let (ds, r) = try Dataset.load(path: try resolveData(t), spec: spec, labelNames: full.labelNames); testSet = ds; reports.append(r) }
        if let m = o.maxTrainExamples, m < trainSet.examples.count { trainSet.examples = Array(trainSet.examples.prefix(m)) }
        full.examples = []
        let t0 = Date()
        let trainTok = TokenizedSet(trainSet, tokenizer: tokenizer, maxLength: o.maxLength)
        let devTok = devSet.map { TokenizedSet($0, tokenizer: tokenizer, maxLength: o.maxLength) }
        let testTok = testSet.map { TokenizedSet($0, tokenizer: tokenizer, maxLength: o.maxLength) }
        printSummary(reports: reports, train: trainSet, dev: devSet, test: testSet, trainTok: trainTok, tokenizeSeconds: Date().timeIntervalSince(t0))

        // Model
        let encoder = try BertModel.load(directory: modelDir, withPooler: true)
        let lcfg = LoRAConfig(r: o.r, alpha: o.alpha, dropout: o.loraDropout, targetModules: o.targetModules, useRSLoRA: o.rslora)
        var loraAdapters: [String: LoRAAdapter] = [:]
        var svdAdapters: [String: SVDAdapter] = [:]
        var acfg = AdaLoRAConfig()
        var scfg = SalientLoRAConfig()
        if o.method == "adalora" || o.method == "salientlora" {
            acfg.initR = o.initR; acfg.targetR = o.targetR; acfg.alpha = o.alpha; acfg.dropout = o.loraDropout; acfg.targetModules = o.targetModules
            acfg.deltaT = o.deltaT; acfg.orthRegWeight = o.orthRegWeight; acfg.beta1 = o.beta1; acfg.beta2 = o.beta2
            // total_step is known only once the data is: fill it (and default tinit / tfinal) before validating.
            let bpe = (trainTok.count + o.batchSize - 1) / o.batchSize
            let spe = (bpe + o.gradAccum - 1) / o.gradAccum
            var total = Int((Double(spe) * o.epochs).rounded(.up))
            if let m = o.maxSteps { total = min(total, m) }
            acfg.totalStep = total
            acfg.tinit = o.tinit ?? total / 10
            acfg.tfinal = o.tfinal ?? total / 5
            if o.method == "salientlora" {
                scfg.initR = o.initR; scfg.targetR = o.targetR; scfg.alpha = o.alpha; scfg.dropout = o.loraDropout; scfg.targetModules = o.targetModules
                scfg.lambda = o.lambda; scfg.beta = o.beta; scfg.gamma = o.gamma; scfg.ti = o.ti; scfg.tf = o.tf; scfg.interval = o.interval
                scfg.tinit = acfg.tinit; scfg.tfinal = acfg.tfinal; scfg.totalStep = total
                scfg.orthRegWeight = o.orthRegWeight
                try scfg.validate()
            } else {
                try acfg.validate()
            }
            svdAdapters = try AdaLoRAAllocator.attach(to: encoder, config: acfg, seed: o.seed)
        } else {
            loraAdapters = try LoRA.attach(to: encoder, config: lcfg, seed: o.seed)
        }
        let model = try SequenceClassifier(encoder: encoder, numLabels: trainSet.numLabels, problem: o.regression ? .regression : .singleLabel, seed: o.seed &+ 1)
        model.params.setTrainable { $0.contains("lora_") || $0.hasPrefix("classifier.") }
        let allocator = o.method == "adalora" ? AdaLoRAAllocator(adapters: svdAdapters, config: acfg) : nil
        if let allocator { model.regularizers = [OrthogonalRegularizer(adapters: allocator.adapters.map(\.1), weight: acfg.orthRegWeight)] }
        var salient: SalientLoRAAllocator? = nil
        if o.method == "salientlora" {
            let reg = OrthogonalRegularizer(adapters: svdAdapters.sorted { $0.key < $1.key }.map(\.value), weight: scfg.orthRegWeight)
            model.regularizers = [reg]
            salient = SalientLoRAAllocator(adapters: svdAdapters, config: scfg, regularizer: reg)
        }
        let nAdapters = max(loraAdapters.count, svdAdapters.count)
        if o.method != "lora" {
            print(String(format: "model: %@ (%.1fM parameters), \(o.method) init_r=%d target_r=%d alpha=%g on %d modules, total_step %d, tinit %d, tfinal %d, deltaT %d: %d trainable parameters",
                         modelDir, Double(model.params.totalCount) / 1e6, acfg.initR, acfg.targetR, Double(o.alpha), nAdapters, acfg.totalStep, acfg.tinit, acfg.tfinal, acfg.deltaT, model.params.trainableCount))
        } else {
            print(String(format: "model: %@ (%.1fM parameters), %@ r=%d alpha=%g on %d modules: %d trainable parameters (%.2f%%)",
                         modelDir, Double(model.params.totalCount) / 1e6, o.method, o.r, Double(o.alpha), nAdapters,
                         model.params.trainableCount, 100 * Double(model.params.trainableCount) / Double(model.params.totalCount)))
        }

        var tc = TrainConfig()
        tc.epochs = o.epochs; tc.batchSize = o.batchSize; tc.gradAccumulation = o.gradAccum; tc.learningRate = o.lr
        tc.schedule = Schedule(rawValue: o.schedule)!; tc.warmupRatio = o.warmupRatio; tc.weightDecay = o.weightDecay
        tc.maxGradNorm = o.maxGradNorm; tc.maxLength = o.maxLength; tc.seed = o.seed; tc.evalEvery = o.evalEvery
        tc.checkpointEvery = o.checkpointEvery; tc.earlyStoppingPatience = o.patience; tc.maxSteps = o.maxSteps
        let trainer = try Trainer(model: model, config: tc, train: trainTok, dev: devTok, labelNames: trainSet.labelNames, outputDir: o.output)
        var fp = o; fp.output = ""; fp.maxSteps = nil
        let fpEncoder = JSONEncoder(); fpEncoder.outputFormatting = [.sortedKeys]
        trainer.fingerprint = String(decoding: try fpEncoder.encode(fp), as: UTF8.self)
        let extra = PEFTFormat.Extra(labelNames: trainSet.labelNames, problem: model.problem.rawValue, maxLength: o.maxLength,
                                     baseModel: (modelDir as NSString).standardizingPath, method: o.method)
        func save(_ dir: String) throws {
            if let allocator { try AdaLoRAFormat.save(directory: dir, model: model, allocator: allocator, extra: extra) }
            else if let salient { try AdaLoRAFormat.save(directory: dir, model: model, adapters: salient.adapters, pattern: salient.pattern, config: acfg, extra: extra) }
            else { try PEFTFormat.save(directory: dir, model: model, adapters: loraAdapters, config: lcfg, extra: extra) }
        }
        trainer.saveBest = save
        if let allocator {
            trainer.methodState = allocator
            trainer.afterStep.append { step in allocator.step(step - 1) }  // PEFT's 0-based global_step
            allocator.onAllocate = { step, budget, ranks in
                trainer.logEvent(["event": "ranks", "step": step + 1, "budget": budget, "ranks": ranks])
            }
        }
        if let salient {
            trainer.methodState = salient
            salient.resetMoments = { p, j in trainer.optimizer.resetMoments(p, j) }
            trainer.afterStep.append { step in salient.step(step) }
            salient.onAllocate = { step, budget, ranks in
                trainer.logEvent(["event": "ranks", "step": step, "budget": budget, "ranks": ranks])
            }
        }
        let enc = JSONEncoder(); enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFileWrite(o.output + "/run.json", String(decoding: try enc.encode(o), as: UTF8.self))

        // Progress
        let bar = ProgressBar(total: trainer.totalSteps, label: "train", unit: "steps")
        var lastLoss: Float = 0, lastLR: Float = 0, lastTPS = 0.0, smooth: Float? = nil
        bar.extra = { String(format: "loss %.4f  lr %.2e  %.0f tok/s", lastLoss, lastLR, lastTPS) }
        var lastLine = Date.distantPast
        trainer.onEvent = { ev in
            switch ev {
            case let .step(step, total, epoch, loss, lr, _, tps):
                smooth = smooth.map { 0.9 * $0 + 0.1 * loss } ?? loss
                lastLoss = smooth!; lastLR = lr; lastTPS = tps
                bar.update(step)
                if isatty(2) == 0 && (Date().timeIntervalSince(lastLine) > 30 || step == total) {
                    lastLine = Date()
                    stderr(String(format: "step %d/%d  epoch %.2f  loss %.4f  lr %.2e  %.0f tok/s  elapsed %@\n", step, total, epoch, smooth!, lr, tps,
                                  ProgressBar.clock(Date().timeIntervalSince(bar.start))))
                }
            case let .evaluation(step, m, best):
                if isatty(2) != 0 { stderr("\r\u{1B}[K") }
                let keys = o.regression ? ["pearson", "spearman", "mse"] : ["accuracy", "macro_f1", "mcc"]
                stderr("eval @ step \(step): " + keys.map { String(format: "%@ %.4f", $0, m[$0] ?? .nan) }.joined(separator: "  ")
                       + String(format: "  loss %.4f", m["loss"] ?? .nan) + (best ? "  (best)" : "") + "\n")
            case let .resumed(step, epoch, batch):
                stderr("resumed from \(trainer.checkpointPath) at step \(step) (epoch \(epoch + 1), batch \(batch))\n")
            case let .stoppedEarly(step, reason):
                stderr("\nstopped early at step \(step): \(reason)\n")
            case .checkpoint: break
            }
        }
        let start = Date()
        try trainer.run(resume: resume)
        bar.finish(trainer.step)
        let elapsed = Date().timeIntervalSince(start)
        try save(o.output + "/final")
        if let allocator { printRankTable(allocator.ranks, initR: acfg.initR) }
        if let salient { printRankTable(salient.ranks, initR: acfg.initR) }
        print(String(format: "trained %d steps in %@; adapters: %@/best (best dev %@ %.4f at step %d), %@/final",
                     trainer.step, ProgressBar.clock(elapsed), o.output, trainer.metricName, trainer.bestMetric, trainer.bestStep, o.output))

        // Evaluate the best adapter on dev and test
        if FileManager.default.fileExists(atPath: o.output + "/best/adapter_model.safetensors") {
            let head: WeightSource?
            if allocator != nil || salient != nil {
                let (_, pattern) = try AdaLoRAFormat.readConfig(directory: o.output + "/best")!
                head = try AdaLoRAFormat.loadWeights(directory: o.output + "/best", adapters: svdAdapters, pattern: pattern)
            } else {
                head = try PEFTFormat.loadWeights(directory: o.output + "/best", adapters: loraAdapters)
            }
            if let head {
                _ = model.classifier.weight.value.buffer.update(from: try head.tensor("classifier.weight", shape: model.classifier.weight.shape).array)
                _ = model.classifier.bias!.value.buffer.update(from: try head.tensor("classifier.bias", shape: model.classifier.bias!.shape).array)
            }
        }
        var results: [String: Any] = ["steps": trainer.step, "train_seconds": elapsed, "best_step": trainer.bestStep,
                                      "trainable_parameters": model.params.trainableCount, "method": o.method]
        for (name, set) in [("dev", devTok), ("test", testTok)] {
            guard let set else { continue }
            let r = try Evaluator.evaluate(model, set, batchSize: 64)
            print("\n== \(name) (\(set.count) examples, best adapter)")
            if let c = r.classification { print(c.table(labelNames: trainSet.labelNames), terminator: "") }
            if let g = r.regression { print(String(format: "pearson %.4f  spearman %.4f  mse %.4f", g.pearson, g.spearman, g.mse)) }
            for (k, v) in r.summary { results[name + "_" + k] = v }
        }
        try AtomicFileWrite(o.output + "/results.json", String(decoding: try JSONSerialization.data(withJSONObject: results, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self))
    }

    func printSummary(reports: [LoadReport], train: Dataset, dev: Dataset?, test: Dataset?, trainTok: TokenizedSet, tokenizeSeconds: Double) {
        print("== data")
        for r in reports {
            print("\(r.file): \(r.records) rows, \(r.kept) kept")
            for p in r.problems { print("  - " + p) }
        }
        let parts = [("train", Optional(train)), ("dev", dev), ("test", test)].compactMap { n, d in d.map { "\(n) \($0.examples.count)" } }
        print("split: " + parts.joined(separator: ", "))
        if train.regression {
            let t = train.examples.map(\.target)
            print(String(format: "targets: min %.3f  mean %.3f  max %.3f", t.min() ?? 0, t.reduce(0, +) / Float(max(1, t.count)), t.max() ?? 0))
        } else {
            let c = train.classCounts
            print("classes (train): " + zip(train.labelNames, c).map { "\($0) \($1) (\(String(format: "%.1f", 100 * Double($1) / Double(max(1, train.examples.count))))%)" }.joined(separator: ", "))
        }
        let p = trainTok.lengthPercentiles
        print("tokens per example (train): p50 \(p[0]), p90 \(p[1]), p99 \(p[2]), max \(p[3]) (truncated at \(options.maxLength)); tokenized in \(String(format: "%.1f", tokenizeSeconds)) s")
    }
}

/// Final rank of every module as a table (layers as rows, module types as columns).
func printRankTable(_ ranks: [String: Int], initR: Int) {
    let kinds = ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense", "intermediate.dense", "output.dense"]
    let short = ["query", "key", "value", "attn.out", "inter", "output"]
    var layers = Set<Int>()
    for k in ranks.keys { if let l = Int(k.split(separator: ".").dropFirst(2).first ?? "") { layers.insert(l) } }
    print("\n== final ranks (of \(initR)); total \(ranks.values.reduce(0, +)) over \(ranks.count) modules")
    print("layer " + short.map { $0.padding(toLength: 9, withPad: " ", startingAt: 0) }.joined())
    for l in layers.sorted() {
        print(String(l).padding(toLength: 6, withPad: " ", startingAt: 0)
              + kinds.map { (ranks["encoder.layer.\(l).\($0)"].map(String.init) ?? "-").padding(toLength: 9, withPad: " ", startingAt: 0) }.joined())
    }
}

func AtomicFileWrite(_ path: String, _ text: String) throws {
    try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    let tmp = path + ".tmp-\(getpid())"
    try text.write(toFile: tmp, atomically: false, encoding: .utf8)
    guard rename(tmp, path) == 0 else { throw ModelError("cannot write \(path)") }
}
