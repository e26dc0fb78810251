import ArgumentParser
import Foundation
import Data
import FineTuning
import Generation
import Models
import RankwiseCore
import Training

extension Eval {
    /// A decoder (with its adapter, or the base model) on causal-LM JSONL: perplexity over the replies (or every
    /// token of `text` rows), and with `--tokens` each example's ids, learnt positions and summed loss.
    func evaluateLanguageModel(
        _ model: TaskModel, base: BaseModel, maxLength: Int, truncation: LanguageModelTruncation
    ) throws {
        var path = data
        if DataSuite.dataSet(path) != nil { path += ":test" }
        path = try ModelStore.resolveData(path)
        guard let bytes = FileManager.default.contents(atPath: path) else { throw DataError("\(path): cannot read") }
        let examples = try LanguageModelData.read(bytes, file: path)
        guard base.specials != nil else { throw ModelError("\(base.path): not a decoder") }
        let split = try LanguageModelSplit(examples, base: base, maxLength: maxLength, truncation: truncation)
        let tokenized = split.tokens
        let set = split.tokenizedSet
        let result = try Evaluator.evaluate(model, set)
        let truncated = tokenized.filter(\.truncated).count
        print("\(examples.count) examples\(truncated > 0 ? " (\(truncated) cut at \(maxLength) tokens)" : "")")
        if let metrics = result.languageModel {
            print(
                String(
                    format: "perplexity %.4f  (mean loss %.4f over %d tokens)", metrics.perplexity, metrics.meanLoss,
                    metrics.tokens))
        } else {
            print("no token to evaluate")
        }
        if let tokens {
            var lines = ""
            for (index, example) in tokenized.enumerated() {
                let record: [String: Any] = [
                    "line": example.line, "ids": example.ids.map(Int.init), "targets": example.isTarget,
                    "loss": Double(result.logits[index][0]), "tokens": Int(result.logits[index][1]),
                ]
                lines += String(decoding: try JSONSerialization.data(withJSONObject: record), as: UTF8.self) + "\n"
            }
            try writeOutputFile(tokens, lines)
        }
        var summary = result.summary
        if generate {
            // The examples a training run with the default split seed scores (--rouge-examples), so base and
            // fine-tuned models are compared on the same replies.
            let sample = GenerationEvaluation.sample(examples, count: maxExamples ?? -1, splitSeed: 42)
            let generator = try base.generator(model.backbone)
            var options = GenerationEvaluation.Options()
            options.maxNewTokens = maxNewTokens
            guard generationBatch > 0 else {
                throw ValidationError("--generation-batch must be at least 1 (got \(generationBatch))")
            }
            options.batchSize = generationBatch
            let progress = ProgressBar(total: sample.count, label: "generating", unit: "replies")
            let scored = try GenerationEvaluation.run(sample, generator: generator, options: options) {
                progress.update($0)
            }
            progress.finish(sample.count)
            print(
                String(
                    format:
                        "ROUGE-1 %.4f  ROUGE-2 %.4f  ROUGE-L %.4f  (F-measure, stemmed; %d replies, %.1f new tokens/s)",
                    scored.rouge1, scored.rouge2, scored.rougeL, scored.items.count, scored.newTokensPerSecond))
            for (key, value) in scored.summary { summary[key] = value }
            if let predictions { try writeOutputFile(predictions, try scored.jsonLines()) }
        }
        if let json {
            try writeOutputFile(
                json,
                String(
                    decoding: try JSONSerialization.data(
                        withJSONObject: summary, options: [.sortedKeys, .prettyPrinted]), as: UTF8.self))
        }
    }
}
