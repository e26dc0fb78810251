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

/// A classifier or causal language model rebuilt from a saved adapter directory (PEFT files + rankwise.json), whichever
/// registered method saved it.
public struct AdapterLoader {
    public let model: TaskModel
    public let method: TuningMethod
    public let labelNames: [String]
    /// True when the adapter's head predicts one value (rankwise.json's problem `regression`).
    public let regression: Bool
    public let tokenizer: Tokenizer
    /// The base model's directory or GGUF file.
    public let modelDirectory: String
    public let base: BaseModel
    public let maxLength: Int
    /// How the run cut a causal-LM example longer than `maxLength` (adapters from before `--truncation`: the end).
    public let truncation: LanguageModelTruncation

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
        let resolved: BaseModel
        do { resolved = try BaseModel.resolve(base) } catch {
            throw ModelError("\(directory): base model \"\(base)\" not found (\(error)); pass --model DIR or an alias")
        }
        let dir = resolved.path
        modelDirectory = dir
        self.base = resolved
        let languageModel = extra?.problem == TaskModel.Problem.causalLanguageModel.rawValue
        guard languageModel == resolved.isDecoder else {
            throw ModelError(
                "\(directory): the adapter is for a \(languageModel ? "decoder (causal LM)" : "classifier") but "
                    + "\(dir) is \(resolved.isDecoder ? "a decoder" : "an encoder")")
        }
        let backbone = try resolved.backbone(pooled: languageModel ? nil : true)
        let (m, loaded) = try MethodRegistry.entry(forAdapter: directory).load(directory: directory, backbone: backbone)
        method = m
        regression = extra?.problem == TaskModel.Problem.regression.rawValue
        if languageModel {
            model = try TaskModel(backbone: backbone, numLabels: 0, problem: .causalLanguageModel)
            labelNames = []
        } else {
            guard let head = loaded else {
                throw ModelError("\(directory)/adapter_model.safetensors has no classifier (modules_to_save)")
            }
            var n = numLabels ?? extra?.labelNames.count ?? 0
            if regression { n = 1 }
            if n == 0 { throw ModelError("\(directory): cannot tell the number of labels; pass --num-labels") }
            model = try TaskModel(
                backbone: backbone, numLabels: n, problem: regression ? .regression : .singleLabel, head: head)
            labelNames = extra?.labelNames.isEmpty == false ? extra!.labelNames : (0..<n).map { "LABEL_\($0)" }
        }
        tokenizer = resolved.tokenizer
        guard (extra?.maxLength ?? 128) >= 2 else {
            throw ModelError("\(directory)/rankwise.json: maxLength \(extra!.maxLength) must be at least 2")
        }
        maxLength = min(extra?.maxLength ?? 128, backbone.maxPositions)
        truncation = extra?.truncation.flatMap(LanguageModelTruncation.init(rawValue:)) ?? .end
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
