import Adapters
import Data
import Foundation
import Generation
import Methods
import Metrics
import Models
import RankwiseCore
import SafeTensors
import Tokenizers
import Training

/// The result of a fine-tuning run.
public struct FineTuneResult {
    public var steps: Int
    public var trainSeconds: Double
    public var bestStep: Int
    public var trainableParameters: Int
    /// Final rank of every adapted module.
    public var ranks: [String: Int]
    /// `dev_accuracy`, `test_macro_f1`, … (or pearson / spearman / mse for regression).
    public var metrics: [String: Double]
    /// Full evaluation of the best adapter on dev and test.
    public var dev: Evaluator.Result?
    public var test: Evaluator.Result?
    /// The best adapter's collapse on dev and test ("dev", "test" → what it shows), empty when it has none.
    public var collapse: [String: Collapse] = [:]
}

/// One fine-tuning run from options to saved adapters and test metrics, callable from Swift:
///
///     var o = FineTuneOptions()
///     o.data.train = "tweets"; o.method = "lora"; o.training.epochs = 1
///     let result = try FineTuneJob(options: o).run()
///
/// Writes `run.json`, `metrics.jsonl`, `checkpoint.safetensors`, `best/`, `final/` and `results.json`
/// to `options.data.output`. `print` receives the human-readable report, `onEvent` every trainer event.
public final class FineTuneJob {
    public let options: FineTuneOptions
    public var resume = false
    public var print: (String) -> Void = { Swift.print($0) }
    public var onEvent: (TrainEvent, Trainer) -> Void = { _, _ in }
    /// The trainer, once `run` has built it.
    public private(set) var trainer: Trainer?
    /// The run's data as loaded, split and tokenized, once `run` has loaded it.
    public private(set) var data: FineTuneData?

    public init(options: FineTuneOptions, resume: Bool = false) {
        self.options = options
        self.resume = resume
    }

    public func run() throws -> FineTuneResult {
        var runOptions = options
        let entry = try MethodRegistry.entry(runOptions.method)
        try entry.check(options: runOptions.methodOptions)  // a bad method option stops the run before the data is read
        let data = try FineTuneData.load(options: runOptions, print: print)
        runOptions.data = data.dataOptions  // suite names resolved to their files
        runOptions.training = runOptions.training.resolved(
            languageModel: data.isLanguageModel, contextLength: data.base.contextLength)
        let dataOptions = runOptions.data
        self.data = data
        let (modelDir, trainSet, trainTok, devTok, testTok) = (
            data.modelDirectory, data.train, data.trainTokens, data.devTokens, data.testTokens
        )
        let maxLength = runOptions.training.maxLength ?? 1  // resolved above
        let backbone = try data.base.backbone(pooled: data.isLanguageModel ? nil : true)
        var methodOptions = runOptions.methodOptions
        if data.isLanguageModel && entry.hasOption("scoring") {
            // The causal-LM head has no parameters of its own, so quality scoring needs the full gradients.
            if let given = methodOptions["scoring"], given != "full" {
                print("note: --scoring \(given) needs a head with parameters; a causal LM scores with --scoring full")
            }
            methodOptions["scoring"] = "full"
        }
        let (method, methodJSON) = try entry.make(
            options: methodOptions, backbone: backbone, seed: runOptions.training.seed)
        let problem: TaskModel.Problem =
            data.isLanguageModel ? .causalLanguageModel : dataOptions.regression ? .regression : .singleLabel
        let model = try TaskModel(
            backbone: backbone, numLabels: trainSet.numLabels, problem: problem, seed: runOptions.training.seed &+ 1)
        let trainer = try Trainer(
            model: model, method: method, config: runOptions.training, train: trainTok, dev: devTok,
            labelNames: trainSet.labelNames, outputDir: dataOptions.output)
        self.trainer = trainer
        var hashes: [String: String] = [:]
        for case let p? in [dataOptions.train, dataOptions.dev, dataOptions.test] {
            hashes[p] = try Self.contentHash(try ModelStore.resolveData(p))
        }
        trainer.fingerprint = runOptions.fingerprint(
            methodConfigJSON: methodJSON, dataHashes: hashes, languageModel: data.isLanguageModel)
        trainer.adapterMetadata = AdapterMetadata(
            labelNames: trainSet.labelNames, problem: model.head.names.problemType, maxLength: maxLength,
            baseModel: (modelDir as NSString).standardizingPath, method: method.name,
            truncation: data.isLanguageModel ? dataOptions.truncation : nil)
        print(
            String(
                format:
                    "model: %@ (%.1fM parameters), %@ on %d modules (%@), %d steps: %d trainable parameters (%.2f%%)",
                modelDir, Double(model.params.totalCount) / 1e6, method.name, method.adapters.count, method.summary,
                trainer.totalSteps,
                model.params.trainableCount, 100 * Double(model.params.trainableCount) / Double(model.params.totalCount)
            ))
        try writeRunRecord(runOptions, methodJSON: methodJSON)

        var resumedFrom = 0
        trainer.onEvent = { [unowned self, unowned trainer] ev in
            if case let .resumed(step, _, _) = ev { resumedFrom = step }
            self.onEvent(ev, trainer)
        }
        let start = Date()
        try trainer.run(resume: resume)
        let elapsed = Date().timeIntervalSince(start)
        try trainer.saveAdapter(dataOptions.output + "/final")
        if method.ranks.values.contains(where: { $0 != method.maxRank }) {
            let table = rankTable(method.ranks, maxRank: method.maxRank, modules: ModuleMap(backbone: backbone))
            print(table)
            try AtomicFile.write(table.trimmingCharacters(in: .newlines) + "\n", to: dataOptions.output + "/ranks.txt")
        }
        let bestNote =
            devTok == nil
            ? "the final model: no dev set"
            : String(format: "best dev %@ %.4f at step %d", trainer.metricName, trainer.bestMetric, trainer.bestStep)
        print(
            String(
                format: "trained %d steps in %.0f s; adapters: %@/best (%@), %@/final", trainer.step, elapsed,
                dataOptions.output,
                bestNote, dataOptions.output))

        // Evaluate the best adapter: load it back into a fresh model exactly as eval / predict do.
        var evalModel = model
        if FileManager.default.fileExists(atPath: dataOptions.output + "/best/adapter_model.safetensors") {
            evalModel = try AdapterLoader(directory: dataOptions.output + "/best", modelDirectory: modelDir).model
        }
        var result = FineTuneResult(
            steps: trainer.step, trainSeconds: elapsed, bestStep: trainer.bestStep,
            trainableParameters: model.params.trainableCount, ranks: method.ranks, metrics: [:])
        for (name, set) in [("dev", devTok), ("test", testTok)] {
            guard let set else { continue }
            let r = try Evaluator.evaluate(evalModel, set, batchSize: 64)
            print("\n== \(name) (\(set.count) examples, best adapter)")
            if let c = r.classification { print(c.table(labelNames: trainSet.labelNames)) }
            if let l = r.languageModel {
                print(
                    String(
                        format: "perplexity %.4f  (mean loss %.4f over %d tokens)", l.perplexity, l.meanLoss, l.tokens))
            }
            if let g = r.regression {
                print(String(format: "pearson %.4f  spearman %.4f  mse %.4f", g.pearson, g.spearman, g.mse))
            }
            for (k, v) in r.summary { result.metrics[name + "_" + k] = v }
            if name == "dev" { result.dev = r } else { result.test = r }
            if let c = Collapse.diagnose(
                r, labels: set.labels, targets: set.targets, labelNames: trainSet.labelNames, setName: name)
            {
                result.collapse[name] = c
                print("warning: COLLAPSED: " + c.message)
            }
        }
        if let split = data.languageModel?.test, let count = dataOptions.rougeExamples, count != 0 {
            let scored = try generationScores(
                split, model: evalModel, base: data.base, count: count, seed: dataOptions.splitSeed,
                output: dataOptions.output)
            for (key, value) in scored.summary { result.metrics["test_" + key] = value }
        }
        let trainingSeconds = elapsed - trainer.sessionEvalSeconds
        var record: [String: Any] = [
            "steps": trainer.step, "train_seconds": elapsed, "best_step": trainer.bestStep,
            "trainable_parameters": model.params.trainableCount, "method": method.name, "ranks": method.ranks,
            "peak_rss_mib": peakRSSMiB(), "modules": ModuleMap(backbone: backbone).json,
            "primary_metric": model.head.primaryMetric,
        ]
        if trainer.sessionTokens > 0 && trainingSeconds > 0 {
            record["tokens_per_s"] = Double(trainer.sessionTokens) / trainingSeconds
        }
        if resume { record["resumed_from_step"] = resumedFrom }
        if let c = result.test?.classification {
            record["test_confusion"] = c.confusion
            record["label_names"] = trainSet.labelNames
        }
        if !result.collapse.isEmpty { record["collapse"] = result.collapse.mapValues(\.record) }
        for (k, v) in result.metrics { record[k] = v }
        try AtomicFile.write(
            String(
                decoding: try JSONSerialization.data(withJSONObject: record, options: [.prettyPrinted, .sortedKeys]),
                as: UTF8.self),
            to: dataOptions.output + "/results.json")
        return result
    }

    func writeRunRecord(_ options: FineTuneOptions, methodJSON: String) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = String(decoding: try enc.encode(options.data), as: UTF8.self)
        let training = String(decoding: try enc.encode(options.training), as: UTF8.self)
        try AtomicFile.write(
            "{\n\"data\": \(data),\n\"training\": \(training),\n\"method\": \"\(options.method)\",\n\"method_config\": "
                + "\(methodJSON)\n}\n",
            to: options.data.output + "/run.json")
    }

    static func summarise(
        reports: [LoadReport], train: Dataset, dev: Dataset?, test: Dataset?, trainTok: TokenizedSet,
        tokenizeSeconds: Double,
        maxLength: Int, print: (String) -> Void
    ) {
        print("== data")
        for r in reports {
            print("\(r.file): \(r.records) rows, \(r.kept) kept")
            for p in r.problems { print("  - " + p) }
        }
        let parts = [("train", Optional(train)), ("dev", dev), ("test", test)].compactMap { name, set in
            set.map { "\(name) \($0.examples.count)" }
        }
        print("split: " + parts.joined(separator: ", "))
        if train.regression {
            let t = train.examples.map(\.target)
            print(
                String(
                    format: "targets: min %.3f  mean %.3f  max %.3f", t.min() ?? 0,
                    t.reduce(0, +) / Float(max(1, t.count)), t.max() ?? 0))
        } else {
            let c = train.classCounts
            print(
                "classes (train): "
                    + zip(train.labelNames, c).map {
                        "\($0) \($1) "
                            + "(\(String(format: "%.1f", 100 * Double($1) / Double(max(1, train.examples.count))))%)"
                    }.joined(separator: ", "))
        }
        let p = trainTok.lengthPercentiles
        print(
            "tokens per example (train): p50 \(p[0]), p90 \(p[1]), p99 \(p[2]), max \(p[3]) (truncated at "
                + "\(maxLength)); tokenized in \(String(format: "%.1f", tokenizeSeconds)) s"
        )
    }
}

/// Final rank of every module as a table (layers as rows, module kinds as columns).
public func rankTable(_ ranks: [String: Int], maxRank: Int, modules: ModuleMap) -> String {
    var rankAt: [Int: [String: Int]] = [:]
    for (path, rank) in ranks {
        guard let place = modules.place(path) else { continue }
        rankAt[place.layer, default: [:]][place.kind] = rank
    }
    func cell(_ text: String) -> String { text.padding(toLength: 9, withPad: " ", startingAt: 0) }
    let total = ranks.values.reduce(0, +)
    var lines = ["\n== final ranks (of at most \(maxRank)); total \(total) over \(ranks.count) modules"]
    lines.append("layer " + modules.kindOrder.map(cell).joined())
    for layer in rankAt.keys.sorted() {
        let cells = modules.kindOrder.map { cell(rankAt[layer]?[$0].map(String.init) ?? "-") }
        lines.append(String(layer).padding(toLength: 6, withPad: " ", startingAt: 0) + cells.joined())
    }
    return lines.joined(separator: "\n")
}

extension FineTuneJob {
    /// ROUGE of greedy replies to `count` test examples (a seeded sample; -1: all), each reply written to
    /// OUTPUT/test_generations.jsonl.
    func generationScores(
        _ split: LanguageModelSplit, model: TaskModel, base: BaseModel, count: Int, seed: UInt64, output: String
    ) throws -> GenerationEvaluation {
        let generator = try base.generator(model.backbone)
        let sample = GenerationEvaluation.sample(split.examples, count: count, splitSeed: seed)
        print("\n== test generations (\(sample.count) examples, greedy, at most 128 new tokens)")
        let scored = try GenerationEvaluation.run(sample, generator: generator, options: .init())
        print(
            String(
                format: "ROUGE-1 %.4f  ROUGE-2 %.4f  ROUGE-L %.4f  (F, stemmed; %.1f new tokens/s)", scored.rouge1,
                scored.rouge2, scored.rougeL, scored.newTokensPerSecond))
        try AtomicFile.write(try scored.jsonLines(), to: output + "/test_generations.jsonl")
        return scored
    }

    /// FNV-1a (64-bit) of a file's bytes: enough to notice that a data file changed between runs.
    public static func contentHash(_ path: String) throws -> String {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw TrainError("\(path): cannot read (\(error.localizedDescription))")
        }
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        data.withUnsafeBytes { raw in for b in raw { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 } }
        return String(h, radix: 16)
    }
}
