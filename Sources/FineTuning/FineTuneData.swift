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

/// A run's data, loaded, split, sampled and tokenized as `FineTuneJob` does (the quality audit uses the same).
public struct FineTuneData {
    /// The base model's directory or GGUF file.
    public var modelDirectory: String
    public var base: BaseModel
    public var tokenizer: Tokenizer
    /// The classifier's training examples (empty in a causal-LM run: see `languageModel`).
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
    /// A decoder's run: the causal-LM splits (the token sets above are made from them).
    public var languageModel: (train: LanguageModelSplit, dev: LanguageModelSplit?, test: LanguageModelSplit?)?
    public var isLanguageModel: Bool { languageModel != nil }

    /// Loads the data `options` names; `print` receives the data summary and warnings.
    public static func load(options given: FineTuneOptions, print: (String) -> Void) throws -> FineTuneData {
        try BLAS.load()
        let base = try BaseModel.resolve(given.data.model)
        var options = given
        options.training = given.training.resolved(languageModel: base.isDecoder, contextLength: base.contextLength)
        if base.isDecoder { return try loadLanguageModel(options: options, base: base, print: print) }
        if let name = options.data.train, DataSuite.dataSet(name)?.task == .generation {
            throw DataError(
                "\(name) is a generation task: fine-tune a decoder on it (--model smollm2, or a GGUF file); "
                    + "\(base.path) is an encoder")
        }
        let modelDir = base.path
        let tokenizer = base.tokenizer
        let s = try sets(options.data, print: print)
        let t0 = Date()
        let maxLength = options.training.maxLength ?? 1  // resolved above
        let trainTok = TokenizedSet(s.train, tokenizer: tokenizer, maxLength: maxLength)
        let devTok = s.dev.map { TokenizedSet($0, tokenizer: tokenizer, maxLength: maxLength) }
        let testTok = s.test.map { TokenizedSet($0, tokenizer: tokenizer, maxLength: maxLength) }
        FineTuneJob.summarise(
            reports: s.reports, train: s.train, dev: s.dev, test: s.test, trainTok: trainTok,
            tokenizeSeconds: Date().timeIntervalSince(t0), maxLength: maxLength, print: print)
        return FineTuneData(
            modelDirectory: modelDir, base: base, tokenizer: tokenizer, train: s.train, dev: s.dev, test: s.test,
            trainTokens: trainTok, devTokens: devTok, testTokens: testTok, flipped: s.flipped, dataOptions: s.options)
    }

    /// A decoder's data: causal-LM JSONL (prompt/completion, messages or text) tokenised with its template.
    static func loadLanguageModel(
        options: FineTuneOptions, base: BaseModel, print: (String) -> Void
    ) throws
        -> FineTuneData
    {
        let resolved = try DataSuite.resolve(options.data)
        print("== data")
        let splits = try LanguageModelData.sets(
            resolved, base: base, maxLength: options.training.maxLength ?? 1, print: print)
        return FineTuneData(
            modelDirectory: base.path, base: base, tokenizer: base.tokenizer,
            train: Dataset(examples: [], labelNames: [], regression: false), dev: nil, test: nil,
            trainTokens: splits.train.tokenizedSet, devTokens: splits.dev?.tokenizedSet,
            testTokens: splits.test?.tokenizedSet, flipped: [:], dataOptions: resolved, languageModel: splits)
    }

    /// A run's data sets before tokenization: the training examples in the order the run indexes them.
    public struct Sets {
        public var train: Dataset, dev: Dataset?, test: Dataset?
        public var flipped: [Int: Int]
        public var reports: [LoadReport]
        /// `data` with suite names resolved.
        public var options: DataOptions
    }

    /// Loads, splits, samples and (with `flipLabels`) corrupts the data `data` names, exactly as a run does.
    public static func sets(_ data: DataOptions, print: (String) -> Void) throws -> Sets {
        let resolved = try DataSuite.resolve(data)
        var spec = DataSpec()
        spec.textColumn = resolved.textColumn
        spec.pairColumn = resolved.pairColumn
        spec.labelColumn = ModelStore.labelColumn(forData: resolved.train!, given: resolved.labelColumn)
        spec.labels = resolved.labels
        spec.regression = resolved.regression
        spec.dropDuplicates = resolved.dedup
        var (full, rep) = try Dataset.load(path: try ModelStore.resolveData(resolved.train!), spec: spec)
        var reports = [rep]
        var trainSet = full
        var devSet: Dataset? = nil
        var testSet: Dataset? = nil
        if resolved.dev == nil || resolved.test == nil {
            let s = full.split(
                dev: resolved.dev == nil ? resolved.devFraction : 0,
                test: resolved.test == nil ? resolved.testFraction : 0, seed: resolved.splitSeed)
            trainSet = s.train
            if resolved.dev == nil && resolved.devFraction > 0 { devSet = s.dev }
            if resolved.test == nil && resolved.testFraction > 0 { testSet = s.test }
        }
        if let p = resolved.dev {
            let (ds, r) = try Dataset.load(path: try ModelStore.resolveData(p), spec: spec, labelNames: full.labelNames)
            devSet = ds
            reports.append(r)
        }
        if let p = resolved.test {
            let (ds, r) = try Dataset.load(path: try ModelStore.resolveData(p), spec: spec, labelNames: full.labelNames)
            testSet = ds
            reports.append(r)
        }
        if let m = resolved.maxTrainExamples, m < trainSet.examples.count {
            // A seeded random sample (real files are often grouped by class: never the first rows).
            var order = Array(trainSet.examples.indices)
            if resolved.dev != nil && resolved.test != nil {  // not shuffled by a split yet
                var rng = SplitMix64(seed: resolved.splitSeed &+ 0x5A17)
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
        if let m = resolved.maxEvalExamples {
            for i in 0..<2 {
                guard var set = i == 0 ? devSet : testSet, m < set.examples.count else { continue }
                var rng = SplitMix64(seed: resolved.splitSeed &+ 0xE7A1 &+ UInt64(i))
                rng.shuffle(&set.examples)
                set.examples.removeLast(set.examples.count - m)
                if i == 0 { devSet = set } else { testSet = set }
            }
        }
        full.examples = []
        guard !trainSet.examples.isEmpty else {
            throw TrainError("\(resolved.train!): no training examples left after the split")
        }
        if !trainSet.regression {
            let present = zip(trainSet.labelNames, trainSet.classCounts).filter { $0.1 > 0 }.map(\.0)
            guard present.count >= 2 else {
                throw TrainError(
                    "\(resolved.train!): the training examples all have one label (\(present.first ?? "none")); a "
                        + "classifier needs at least two classes"
                )
            }
        }
        if let ds = devSet, ds.examples.isEmpty {
            print(
                "warning: the dev set is empty (too few examples for --dev-fraction \(resolved.devFraction)); the "
                    + "final adapter is used as the best"
            )
            devSet = nil
        }
        if let ts = testSet, ts.examples.isEmpty {
            print(
                "warning: the test set is empty (too few examples for --test-fraction \(resolved.testFraction)); no "
                    + "test metrics"
            )
            testSet = nil
        }
        var flipped: [Int: Int] = [:]
        if resolved.flipLabels > 0 {
            guard !trainSet.regression else {
                throw TrainError("--flip-labels needs class labels (this is a regression task)")
            }
            flipped = trainSet.flipLabels(fraction: resolved.flipLabels, seed: resolved.splitSeed &+ 0xF11B)
            print(
                "flipped the labels of \(flipped.count) of \(trainSet.examples.count) training examples "
                    + "(--flip-labels \(resolved.flipLabels); dev and test unchanged)"
            )
        }
        return Sets(train: trainSet, dev: devSet, test: testSet, flipped: flipped, reports: reports, options: resolved)
    }
}
