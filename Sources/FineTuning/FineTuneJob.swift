import Adapters
import Data
import Foundation
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
        var o = options
        let entry = try MethodRegistry.entry(o.method)
        try entry.check(options: o.methodOptions)  // a bad method option stops the run before the data is read
        let data = try FineTuneData.load(options: o, print: print)
        o.data = data.dataOptions  // suite names resolved to their files
        let d = o.data
        self.data = data
        let (modelDir, trainSet, trainTok, devTok, testTok) = (
            data.modelDirectory, data.train, data.trainTokens, data.devTokens, data.testTokens
        )
        let maxLength = o.training.maxLength
        let backbone = try BackboneFamilies.load(directory: modelDir, pooled: true)
        let (method, methodJSON) = try entry.make(options: o.methodOptions, backbone: backbone, seed: o.training.seed)
        let model = try TaskModel(
            backbone: backbone, numLabels: trainSet.numLabels, problem: d.regression ? .regression : .singleLabel,
            seed: o.training.seed &+ 1)
        let trainer = try Trainer(
            model: model, method: method, config: o.training, train: trainTok, dev: devTok,
            labelNames: trainSet.labelNames, outputDir: d.output)
        self.trainer = trainer
        var hashes: [String: String] = [:]
        for case let p? in [d.train, d.dev, d.test] { hashes[p] = try Self.contentHash(try ModelStore.resolveData(p)) }
        trainer.fingerprint = o.fingerprint(methodConfigJSON: methodJSON, dataHashes: hashes)
        trainer.adapterMetadata = AdapterMetadata(
            labelNames: trainSet.labelNames, problem: model.head.names.problemType, maxLength: maxLength,
            baseModel: (modelDir as NSString).standardizingPath, method: method.name)
        print(
            String(
                format:
                    "model: %@ (%.1fM parameters), %@ on %d modules (%@), %d steps: %d trainable parameters (%.2f%%)",
                modelDir, Double(model.params.totalCount) / 1e6, method.name, method.adapters.count, method.summary,
                trainer.totalSteps,
                model.params.trainableCount, 100 * Double(model.params.trainableCount) / Double(model.params.totalCount)
            ))
        try writeRunRecord(o, methodJSON: methodJSON)

        var resumedFrom = 0
        trainer.onEvent = { [unowned self, unowned trainer] ev in
            if case let .resumed(step, _, _) = ev { resumedFrom = step }
            self.onEvent(ev, trainer)
        }
        let start = Date()
        try trainer.run(resume: resume)
        let elapsed = Date().timeIntervalSince(start)
        try trainer.saveAdapter(d.output + "/final")
        if method.ranks.values.contains(where: { $0 != method.maxRank }) {
            let table = rankTable(method.ranks, maxRank: method.maxRank, modules: ModuleMap(backbone: backbone))
            print(table)
            try AtomicFile.write(table.trimmingCharacters(in: .newlines) + "\n", to: d.output + "/ranks.txt")
        }
        let bestNote =
            devTok == nil
            ? "the final model: no dev set"
            : String(format: "best dev %@ %.4f at step %d", trainer.metricName, trainer.bestMetric, trainer.bestStep)
        print(
            String(
                format: "trained %d steps in %.0f s; adapters: %@/best (%@), %@/final", trainer.step, elapsed, d.output,
                bestNote, d.output))

        // Evaluate the best adapter: load it back into a fresh model exactly as eval / predict do.
        var evalModel = model
        if FileManager.default.fileExists(atPath: d.output + "/best/adapter_model.safetensors") {
            evalModel = try AdapterLoader(directory: d.output + "/best", modelDirectory: modelDir).model
        }
        var result = FineTuneResult(
            steps: trainer.step, trainSeconds: elapsed, bestStep: trainer.bestStep,
            trainableParameters: model.params.trainableCount, ranks: method.ranks, metrics: [:])
        for (name, set) in [("dev", devTok), ("test", testTok)] {
            guard let set else { continue }
            let r = try Evaluator.evaluate(evalModel, set, batchSize: 64)
            print("\n== \(name) (\(set.count) examples, best adapter)")
            if let c = r.classification { print(c.table(labelNames: trainSet.labelNames)) }
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
            to: d.output + "/results.json")
        return result
    }

    func writeRunRecord(_ o: FineTuneOptions, methodJSON: String) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = String(decoding: try enc.encode(o.data), as: UTF8.self)
        let training = String(decoding: try enc.encode(o.training), as: UTF8.self)
        try AtomicFile.write(
            "{\n\"data\": \(data),\n\"training\": \(training),\n\"method\": \"\(o.method)\",\n\"method_config\": "
                + "\(methodJSON)\n}\n",
            to: o.data.output + "/run.json")
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
        let parts = [("train", Optional(train)), ("dev", dev), ("test", test)].compactMap { n, d in
            d.map { "\(n) \($0.examples.count)" }
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

/// A run's data, loaded, split, sampled and tokenized as `FineTuneJob` does (the quality audit uses the same).
public struct FineTuneData {
    public var modelDirectory: String
    public var tokenizer: Tokenizer
    public var train: Dataset
    public var dev: Dataset?
    public var test: Dataset?
    public var trainTokens: TokenizedSet
    public var devTokens: TokenizedSet?
    public var testTokens: TokenizedSet?
    /// With `--flip-labels`: training example index → its original label.
    public var flipped: [Int: Int]
    /// The data options with suite names resolved (`DataSuite.resolve`).
    public var dataOptions: DataOptions

    /// Loads the data `o` names; `print` receives the data summary and warnings.
    public static func load(options o: FineTuneOptions, print: (String) -> Void) throws -> FineTuneData {
        try BLAS.load()
        let modelDir = try ModelStore.resolve(o.data.model)
        let tokenizer = try Tokenizer(path: modelDir)
        let s = try sets(o.data, print: print)
        let t0 = Date()
        let maxLength = o.training.maxLength
        let trainTok = TokenizedSet(s.train, tokenizer: tokenizer, maxLength: maxLength)
        let devTok = s.dev.map { TokenizedSet($0, tokenizer: tokenizer, maxLength: maxLength) }
        let testTok = s.test.map { TokenizedSet($0, tokenizer: tokenizer, maxLength: maxLength) }
        FineTuneJob.summarise(
            reports: s.reports, train: s.train, dev: s.dev, test: s.test, trainTok: trainTok,
            tokenizeSeconds: Date().timeIntervalSince(t0), maxLength: maxLength, print: print)
        return FineTuneData(
            modelDirectory: modelDir, tokenizer: tokenizer, train: s.train, dev: s.dev, test: s.test,
            trainTokens: trainTok, devTokens: devTok, testTokens: testTok, flipped: s.flipped, dataOptions: s.options)
    }

    /// A run's data sets before tokenization: the training examples in the order the run indexes them.
    public struct Sets {
        public var train: Dataset, dev: Dataset?, test: Dataset?
        public var flipped: [Int: Int]
        public var reports: [LoadReport]
        /// `data` with suite names resolved.
        public var options: DataOptions
    }

    /// Loads, splits, samples and (with `flipLabels`) corrupts the data `d` names, exactly as a run does.
    public static func sets(_ data: DataOptions, print: (String) -> Void) throws -> Sets {
        let d = try DataSuite.resolve(data)
        var spec = DataSpec()
        spec.textColumn = d.textColumn
        spec.pairColumn = d.pairColumn
        spec.labelColumn = ModelStore.labelColumn(forData: d.train!, given: d.labelColumn)
        spec.labels = d.labels
        spec.regression = d.regression
        spec.dropDuplicates = d.dedup
        var (full, rep) = try Dataset.load(path: try ModelStore.resolveData(d.train!), spec: spec)
        var reports = [rep]
        var trainSet = full
        var devSet: Dataset? = nil
        var testSet: Dataset? = nil
        if d.dev == nil || d.test == nil {
            let s = full.split(
                dev: d.dev == nil ? d.devFraction : 0, test: d.test == nil ? d.testFraction : 0, seed: d.splitSeed)
            trainSet = s.train
            if d.dev == nil && d.devFraction > 0 { devSet = s.dev }
            if d.test == nil && d.testFraction > 0 { testSet = s.test }
        }
        if let p = d.dev {
            let (ds, r) = try Dataset.load(path: try ModelStore.resolveData(p), spec: spec, labelNames: full.labelNames)
            devSet = ds
            reports.append(r)
        }
        if let p = d.test {
            let (ds, r) = try Dataset.load(path: try ModelStore.resolveData(p), spec: spec, labelNames: full.labelNames)
            testSet = ds
            reports.append(r)
        }
        if let m = d.maxTrainExamples, m < trainSet.examples.count {
            // A seeded random sample (real files are often grouped by class: never the first rows).
            var order = Array(trainSet.examples.indices)
            if d.dev != nil && d.test != nil {  // not shuffled by a split yet
                var rng = SplitMix64(seed: d.splitSeed &+ 0x5A17)
                rng.shuffle(&order)
            }
            let before = trainSet.regression ? [] : trainSet.classCounts
            trainSet.examples = order.prefix(m).map { trainSet.examples[$0] }
            if !trainSet.regression {
                let lost = zip(trainSet.labelNames, zip(before, trainSet.classCounts)).filter {
                    $0.1.0 > 0 && $0.1.1 == 0
                }.map(\.0)
                if !lost.isEmpty {
                    print(
                        "warning: the \(m) sampled training examples have no \(lost.joined(separator: ", ")) example, "
                            + "which the full training set has"
                    )
                }
            }
        }
        if let m = d.maxEvalExamples {
            for i in 0..<2 {
                guard var set = i == 0 ? devSet : testSet, m < set.examples.count else { continue }
                var rng = SplitMix64(seed: d.splitSeed &+ 0xE7A1 &+ UInt64(i))
                rng.shuffle(&set.examples)
                set.examples.removeLast(set.examples.count - m)
                if i == 0 { devSet = set } else { testSet = set }
            }
        }
        full.examples = []
        guard !trainSet.examples.isEmpty else {
            throw TrainError("\(d.train!): no training examples left after the split")
        }
        if !trainSet.regression {
            let present = zip(trainSet.labelNames, trainSet.classCounts).filter { $0.1 > 0 }.map(\.0)
            guard present.count >= 2 else {
                throw TrainError(
                    "\(d.train!): the training examples all have one label (\(present.first ?? "none")); a classifier "
                        + "needs at least two classes"
                )
            }
        }
        if let ds = devSet, ds.examples.isEmpty {
            print(
                "warning: the dev set is empty (too few examples for --dev-fraction \(d.devFraction)); the final "
                    + "adapter is used as the best"
            )
            devSet = nil
        }
        if let ts = testSet, ts.examples.isEmpty {
            print(
                "warning: the test set is empty (too few examples for --test-fraction \(d.testFraction)); no test "
                    + "metrics"
            )
            testSet = nil
        }
        var flipped: [Int: Int] = [:]
        if d.flipLabels > 0 {
            guard !trainSet.regression else {
                throw TrainError("--flip-labels needs class labels (this is a regression task)")
            }
            flipped = trainSet.flipLabels(fraction: d.flipLabels, seed: d.splitSeed &+ 0xF11B)
            print(
                "flipped the labels of \(flipped.count) of \(trainSet.examples.count) training examples "
                    + "(--flip-labels \(d.flipLabels); dev and test unchanged)"
            )
        }
        return Sets(train: trainSet, dev: devSet, test: testSet, flipped: flipped, reports: reports, options: d)
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

/// A classifier rebuilt from a saved adapter directory (PEFT files + rankwise.json), whichever
/// registered method saved it.
public struct AdapterLoader {
    public let model: TaskModel
    public let method: TuningMethod
    public let labelNames: [String]
    /// True when the adapter's head predicts one value (rankwise.json's problem `regression`).
    public let regression: Bool
    public let tokenizer: Tokenizer
    public let modelDirectory: String
    public let maxLength: Int

    /// `modelDirectory` replaces the base model recorded with the adapter; `numLabels` the label count.
    public init(directory: String, modelDirectory override: String? = nil, numLabels: Int? = nil) throws {
        try BLAS.load()
        let extra = PEFTFormat.readExtra(directory: directory)
        guard let d = FileManager.default.contents(atPath: directory + "/adapter_config.json") else {
            throw ModelError(
                "\(directory): no adapter_config.json: not an adapter directory (train writes them to OUTPUT/best and "
                    + "OUTPUT/final)"
            )
        }
        let config: [String: Any]
        do {
            guard let o = try JSONSerialization.jsonObject(with: d) as? [String: Any] else {
                throw ModelError("a JSON value that is not an object")
            }
            config = o
        } catch {
            throw ModelError(
                "\(directory)/adapter_config.json: not a valid JSON object (\(error.localizedDescription))")
        }
        var base = override ?? extra?.baseModel
        if base == nil { base = config["base_model_name_or_path"] as? String }
        guard let base else { throw ModelError("\(directory): no base model recorded; pass --model") }
        let dir: String
        do { dir = try ModelStore.resolve(base) } catch {
            throw ModelError("\(directory): base model \"\(base)\" not found (\(error)); pass --model DIR or an alias")
        }
        modelDirectory = dir
        let backbone = try BackboneFamilies.load(directory: dir, pooled: true)
        let (m, loaded) = try MethodRegistry.entry(forAdapter: directory).load(directory: directory, backbone: backbone)
        method = m
        guard let head = loaded else {
            throw ModelError("\(directory)/adapter_model.safetensors has no classifier (modules_to_save)")
        }
        var n = numLabels ?? extra?.labelNames.count ?? 0
        regression = extra?.problem == TaskModel.Problem.regression.rawValue
        if regression { n = 1 }
        if n == 0 { throw ModelError("\(directory): cannot tell the number of labels; pass --num-labels") }
        model = try TaskModel(
            backbone: backbone, numLabels: n, problem: regression ? .regression : .singleLabel, head: head)
        labelNames = extra?.labelNames.isEmpty == false ? extra!.labelNames : (0..<n).map { "LABEL_\($0)" }
        tokenizer = try Tokenizer(path: dir)
        guard (extra?.maxLength ?? 128) >= 2 else {
            throw ModelError("\(directory)/rankwise.json: maxLength \(extra!.maxLength) must be at least 2")
        }
        maxLength = min(extra?.maxLength ?? 128, backbone.maxPositions)
        // NaN or huge adapter weights would give normal-looking metrics with every prediction the same.
        let adapterParams = m.adapters.flatMap { $0.1.params } + model.head.params
        if let bad = adapterParams.first(where: { p in
            !(0..<p.count).allSatisfy { p.value[$0].isFinite && abs(p.value[$0]) < 1e6 }
        }) {
            throw ModelError(
                "\(directory)/adapter_model.safetensors: \(bad.name) holds non-finite or huge (> 1e6) values; the "
                    + "adapter is broken"
            )
        }
    }
}

extension FineTuneJob {
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
