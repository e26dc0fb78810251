import Adapters
import ArgumentParser
import Data
import Foundation
import Metrics
import Models
import RankwiseCore
import Tokenizers
import FineTuning
import GGUF
import Methods
import SafeTensors
import Training

struct AdapterOptions: ParsableArguments {
    @Option(help: "Adapter directory (PEFT format, e.g. runs/x/best); `eval` takes none for a decoder's base model.")
    var adapter: String
    @Option(help: "Base model directory or alias (default: the one recorded with the adapter).") var model: String?
    @Option(help: "Number of labels (default: from rankwise.json or the classifier).") var numLabels: Int?
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Evaluate an adapter on labelled data (accuracy, macro-F1, per class, confusion, MCC), or a decoder's on "
            + "causal-LM JSONL (perplexity).")
    @OptionGroup var a: AdapterOptions
    @Option(help: "Decoders: write each example's token ids, learnt positions and summed loss as JSONL to this file.")
    var tokens: String?
    @Option(help: "Decoders: maximum tokens per example (default: the adapter's; 1024 for --adapter none).")
    var maxLength: Int?
    @Option(help: "Decoders: cut an over-long example's prompt or end (default: as the run did; prompt for none).")
    var truncation: LanguageModelTruncation?
    @Flag(help: "Decoders: also generate a reply to each prompt (greedy) and score it with ROUGE-1/2/L.")
    var generate = false
    @Option(help: "Decoders, --generate: new tokens per reply at most.") var maxNewTokens = 128
    @Option(help: "Decoders, --generate: replies generated together (one pass a token for all; 1: one at a time).")
    var generationBatch = 8
    @Option(
        help: "Decoders, --generate: score at most N examples (the seeded sample a run's --rouge-examples N scores).")
    var maxExamples: Int?
    @Option(help: "Decoders, --generate: write each reference, reply and its ROUGE as JSONL to this file.")
    var predictions: String?
    @Option(help: "Labelled CSV, TSV or JSONL, or a suite data set (snli = its test part; snli:dev, snli:train).")
    var data: String
    @Option(help: "Text column.") var textColumn = "text"
    @Option(help: "Second text column.") var pairColumn: String?
    @Option(help: "Label column.") var labelColumn = "label"
    @Option(help: "Write metrics as JSON to this file.") var json: String?

    func run() throws {
        do {
            if a.adapter == "none" {
                guard let model = a.model else { throw ModelError("--adapter none needs --model (a decoder)") }
                let base = try BaseModel.resolve(model)
                guard base.isDecoder else { throw ModelError("--adapter none evaluates a decoder's base model") }
                let task = try TaskModel(backbone: try base.backbone(), numLabels: 0, problem: .causalLanguageModel)
                return try evaluateLanguageModel(
                    task, base: base, maxLength: maxLength ?? 1024, truncation: truncation ?? .prompt)
            }
            let l = try AdapterLoader(directory: a.adapter, modelDirectory: a.model, numLabels: a.numLabels)
            if l.base.isDecoder {
                return try evaluateLanguageModel(
                    l.model, base: l.base, maxLength: maxLength ?? l.maxLength, truncation: truncation ?? l.truncation)
            }
            var spec = DataSpec()
            spec.textColumn = textColumn
            spec.pairColumn = ModelStore.pairColumn(forData: data, given: pairColumn)
            spec.labelColumn = ModelStore.labelColumn(forData: data, given: labelColumn)
            spec.regression = l.regression
            // A suite name alone means its test part here (training data is what train reads by that name).
            var data = self.data
            if DataSuite.dataSet(data) != nil {
                data += ":test"
                print("evaluating on \(data)")
            }
            let (ds, rep) = try Dataset.load(
                path: try ModelStore.resolveData(data), spec: spec, labelNames: spec.regression ? nil : l.labelNames)
            for p in rep.problems { print("  - " + p) }
            let set = TokenizedSet(ds, tokenizer: l.tokenizer, maxLength: l.maxLength)
            let r = try Evaluator.evaluate(l.model, set)
            print("\(ds.examples.count) examples")
            if let c = r.classification { print(c.table(labelNames: l.labelNames), terminator: "") }
            if let g = r.regression {
                print(String(format: "pearson %.4f  spearman %.4f  mse %.4f", g.pearson, g.spearman, g.mse))
            }
            if let json {
                try writeOutputFile(
                    json,
                    String(
                        decoding: try JSONSerialization.data(
                            withJSONObject: r.summary, options: [.sortedKeys, .prettyPrinted]), as: UTF8.self))
            }
        } catch { fail("\(error)") }
    }
}

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Predict labels with probabilities, as JSONL.",
        discussion: "Input: CSV/TSV/JSONL with a text column, or plain text (one per line, .txt or stdin).")
    @OptionGroup var a: AdapterOptions
    @Option(help: "Input file (default: standard input, one text per line).") var input: String?
    @Option(help: "Text column for CSV/TSV/JSONL input.") var textColumn = "text"
    @Option(help: "Second text column.") var pairColumn: String?
    @Option(help: "Output JSONL (default: standard output).") var output: String?

    func run() throws {
        do {
            let l = try AdapterLoader(directory: a.adapter, modelDirectory: a.model, numLabels: a.numLabels)
            var texts: [String] = []
            var pairs: [String?] = []
            if let input, !input.hasSuffix(".txt") {
                let (cols, recs, bad) = try TableReader.read(path: input)
                guard cols.contains(textColumn) else {
                    throw DataError("\(input): no column \"\(textColumn)\" (columns: \(cols.joined(separator: ", ")))")
                }
                if !bad.isEmpty {
                    stderr("warning: \(input): \(bad.count) malformed rows skipped (first: line \(bad[0].0))\n")
                }
                texts = recs.map { $0.fields[textColumn] ?? "" }
                pairs = recs.map { r in pairColumn.flatMap { r.fields[$0] } }
            } else {
                let data =
                    input.flatMap { FileManager.default.contents(atPath: $0) }
                    ?? FileHandle.standardInput.readDataToEndOfFile()
                texts = Embed.lines(data).0
                pairs = texts.map { _ in nil }
            }
            let ds = Dataset(
                examples: zip(texts, pairs).enumerated().map {
                    Example(text: $1.0, pair: $1.1, label: 0, target: 0, line: $0 + 1)
                },
                labelNames: l.labelNames, regression: l.regression)
            let set = TokenizedSet(ds, tokenizer: l.tokenizer, maxLength: l.maxLength)
            let r = try Evaluator.evaluate(l.model, set, withLabels: false)
            var out = ""
            for i in 0..<texts.count {
                var obj: [String: Any] = ["index": i, "text": texts[i]]
                if l.regression {
                    obj["value"] = Double(r.values[i])
                } else {
                    obj["label"] = l.labelNames[r.predictions[i]]
                    obj["probabilities"] = Dictionary(
                        uniqueKeysWithValues: zip(l.labelNames, r.probabilities[i].map(Double.init)))
                    obj["logits"] = r.logits[i].map(Double.init)
                }
                out +=
                    String(
                        decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self
                    ) + "\n"
            }
            if let output { try writeOutputFile(output, out) } else { print(out, terminator: "") }
        } catch { fail("\(error)") }
    }
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Export a training run's adapter (best or last checkpoint) in PEFT format; a decoder's also for llama.cpp "
            + "(--gguf) and Ollama (--ollama).")
    @Option(name: .customLong("run"), help: "Training output directory.") var runDir: String
    @Option(help: "best or last.") var which = "best"
    @Option(help: "Destination directory.") var output: String
    @Flag(help: "Decoders: also write OUTPUT/adapter.gguf, a LoRA adapter llama.cpp loads (--lora).") var gguf = false
    @Flag(help: "Decoders: also write OUTPUT/Modelfile for `ollama create` (FROM the base GGUF, ADAPTER adapter.gguf).")
    var ollama = false

    func run() throws {
        do {
            let src: String
            if which == "best" {
                src = runDir + "/best"
            } else if which == "last" {
                src = runDir + "/final"
                guard FileManager.default.fileExists(atPath: src + "/adapter_model.safetensors") else {
                    throw ModelError(
                        "\(runDir): no final adapter (the run did not finish); resume it with `rankwise train ... "
                            + "--output \(runDir) --resume`"
                    )
                }
            } else {
                throw ValidationError("--which must be best or last")
            }
            guard FileManager.default.fileExists(atPath: src + "/adapter_model.safetensors") else {
                throw ModelError("\(src): no adapter")
            }
            let fm = FileManager.default
            try Trainer.makeDirectory(output)
            // Dynamic LoRA's input gates live next to the PEFT files; a stale copy from an earlier export must not
            // stay.
            for f in ["adapter_model.safetensors", "adapter_config.json", "rankwise.json", DynamicLoRAMethod.gatesFile]
            {
                try? fm.removeItem(atPath: output + "/" + f)
                if fm.fileExists(atPath: src + "/" + f) {
                    try fm.copyItem(atPath: src + "/" + f, toPath: output + "/" + f)
                }
            }
            // Check that it reads back before saying so.
            // loads exactly as eval / predict / merge will
            let loaded = try AdapterLoader(directory: output)
            let modelClass = loaded.model.backbone.huggingFace.classStem + loaded.model.head.names.classSuffix
            print("exported \(src) -> \(output) (load with PeftModel.from_pretrained(\(modelClass)..., \"\(output)\"))")
            if fm.fileExists(atPath: output + "/" + DynamicLoRAMethod.gatesFile) {
                print(
                    "note: the input gates are in \(output)/\(DynamicLoRAMethod.gatesFile): Rankwise uses them; PEFT "
                        + "cannot express them and loads the adapter without them"
                )
            }
            if gguf || ollama { try exportForLlamaCpp(loaded) }
        } catch { fail("\(error)") }
    }
}

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Merge an adapter into the base weights and write a full model directory transformers loads, or (a "
            + "decoder from GGUF, --gguf) a GGUF file llama.cpp and Ollama run.")
    @OptionGroup var a: AdapterOptions
    @Option(help: "Destination directory (with --gguf: the .gguf file).") var output: String
    @Option(help: "Write a GGUF file with matrices in this type: f16 or q8_0 (the base must be a GGUF file).")
    var gguf: String?

    func run() throws {
        do {
            let l = try AdapterLoader(directory: a.adapter, modelDirectory: a.model, numLabels: a.numLabels)
            if let gguf {
                guard let type = ["f16": GGMLType.f16, "q8_0": .q8_0][gguf.lowercased()] else {
                    throw ValidationError("--gguf must be f16 or q8_0")
                }
                guard l.base.isDecoder, !l.base.path.hasSuffix("/") && !FileManager.default.isDirectory(l.base.path)
                else {
                    throw ModelError(
                        "--gguf merges a decoder whose base is a GGUF file (\(l.base.path) is not one); without "
                            + "--gguf the merged model is a Hugging Face directory")
                }
                let file: GGUFFile
                do { file = try GGUFFile(path: l.base.path) } catch { throw ModelError("\(error)") }
                try MergedGGUF.write(model: l.model, base: file, type: type, to: output)
                print(
                    "merged \(l.method.adapters.count) \(l.method.name) adapters into \(output) (\(type.name) "
                        + "matrices, the metadata and tokenizer of \(l.base.path))")
                return
            }
            try MergedModel.write(model: l.model, labelNames: l.labelNames, baseDirectory: l.modelDirectory, to: output)
            if l.base.isDecoder, !FileManager.default.isDirectory(l.base.path) {
                // A GGUF base has no tokenizer files to copy: its tokenizer is written as Hugging Face's.
                do {
                    for (name, contents) in try GGUFTokenizerFiles.files(try GGUFFile(path: l.base.path)) {
                        try AtomicFile.write([UInt8](contents), to: output + "/" + name)
                    }
                } catch { throw ModelError("merge: the tokenizer of \(l.base.path): \(error)") }
            }
            let modelClass = l.model.backbone.huggingFace.classStem + l.model.head.names.classSuffix
            print(
                "merged \(l.method.adapters.count) \(l.method.name) adapters into \(output) "
                    + "(\(modelClass), \(l.labelNames.count) labels)")
        } catch { fail("\(error)") }
    }
}

extension Export {
    /// adapter.gguf for llama.cpp and, with --ollama, a Modelfile.
    func exportForLlamaCpp(_ loaded: AdapterLoader) throws {
        guard loaded.base.isDecoder else { throw ModelError("--gguf and --ollama export a decoder's adapter") }
        let config = FileManager.default.contents(atPath: output + "/adapter_config.json").flatMap {
            try? JSONSerialization.jsonObject(with: $0) as? [String: Any]
        }
        let alpha = (config?["lora_alpha"] as? NSNumber)?.floatValue ?? 16
        let adapterFile = output + "/adapter.gguf"
        let summary = try LlamaCppAdapter.write(model: loaded.model, alpha: alpha, to: adapterFile)
        let ranks = Set(summary.ranks.values).sorted().map(String.init).joined(separator: ", ")
        print(
            "wrote \(adapterFile): \(summary.ranks.count) modules (ranks \(ranks))"
                + (summary.leftOut.isEmpty ? "" : "; \(summary.leftOut.count) pruned to rank 0 left out")
                + "; llama.cpp: --lora \(adapterFile)")
        guard ollama else { return }
        let base = (loaded.base.path as NSString).standardizingPath
        var lines = ["FROM \(base.hasPrefix("/") ? base : FileManager.default.currentDirectoryPath + "/" + base)"]
        lines.append("ADAPTER ./adapter.gguf")
        if let template = loaded.base.chatTemplate {
            let format = template.ollama
            lines.append("TEMPLATE \"\"\"\(format.template)\"\"\"")
            if let system = format.system { lines.append("SYSTEM \"\"\"\(system)\"\"\"") }
            for stop in format.stops { lines.append("PARAMETER stop \"\(stop)\"") }
        }
        try writeOutputFile(output + "/Modelfile", lines.joined(separator: "\n") + "\n")
        print("wrote \(output)/Modelfile: ollama create NAME -f \(output)/Modelfile")
    }
}

extension FileManager {
    /// True when `path` is an existing directory.
    func isDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }
}

extension LanguageModelTruncation: ExpressibleByArgument {}
