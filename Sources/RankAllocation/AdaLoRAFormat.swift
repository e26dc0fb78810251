import Adapters
import Foundation
import Models
import RankwiseCore
import SafeTensors

/// PEFT's on-disk AdaLoRA format: tensors sliced to the kept ranks, `rank_pattern` in the config.
public enum AdaLoRAFormat {
    static let encoderPrefix = "base_model.model.bert."

    /// Writes `adapter_config.json` (peft_type ADALORA, rank_pattern) and `adapter_model.safetensors`
    /// with A/E/B sliced to each module's kept ranks, as PEFT's `save_pretrained` does. Modules pruned to
    /// rank 0 get empty tensors.
    public static func save(directory: String, model: SequenceClassifier, allocator: AdaLoRAAllocator, extra: PEFTFormat.Extra) throws {
        try save(directory: directory, model: model, adapters: allocator.adapters, pattern: allocator.patternForSaving, config: allocator.config, extra: extra)
    }

    /// Any SVD-form adapters (AdaLoRA, SalientLoRA) in PEFT's AdaLoRA format, which has the same forward.
    public static func save(directory: String, model: SequenceClassifier, adapters: [(String, SVDAdapter)], pattern: [String: [Bool]],
                            config c: AdaLoRAConfig, extra: PEFTFormat.Extra) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var tensors: [TensorToWrite] = []
        var rp: [String: [Bool]] = [:]
        for (path, ad) in adapters {
            let keep = pattern[path] ?? [Bool](repeating: true, count: ad.rMax)
            let idx = keep.indices.filter { keep[$0] }
            let r = idx.count
            var a: [Float] = [], e: [Float] = [], b = [Float](repeating: 0, count: ad.outDim * r)
            for j in idx {
                a += Array(UnsafeBufferPointer(start: ad.a.value.data + j * ad.inDim, count: ad.inDim))
                e.append(ad.e.value[j])
            }
            for o in 0..<ad.outDim { for (c, j) in idx.enumerated() { b[o * r + c] = ad.b.value[o * ad.rMax + j] } }
            tensors.append(TensorToWrite(name: encoderPrefix + path + ".lora_A", shape: [r, ad.inDim], floats: a))
            tensors.append(TensorToWrite(name: encoderPrefix + path + ".lora_E", shape: [r, 1], floats: e))
            tensors.append(TensorToWrite(name: encoderPrefix + path + ".lora_B", shape: [ad.outDim, r], floats: b))
            rp["bert." + path + ".lora_E"] = keep  // PEFT keys rank_pattern by the wrapped model's names
        }
        tensors.append(TensorToWrite(name: "base_model.model.classifier.weight", shape: model.classifier.weight.shape, floats: model.classifier.weight.value.array))
        tensors.append(TensorToWrite(name: "base_model.model.classifier.bias", shape: model.classifier.bias!.shape, floats: model.classifier.bias!.value.array))
        try SafeTensorsWriter.write(tensors, metadata: ["format": "pt"], to: directory + "/adapter_model.safetensors")
        let cfg: [String: Any] = [
            "peft_type": "ADALORA", "task_type": "SEQ_CLS", "r": 8, "init_r": c.initR, "target_r": c.targetR, "lora_alpha": Double(c.alpha),
            "lora_dropout": Double(c.dropout), "target_modules": c.targetModules, "beta1": Double(c.beta1), "beta2": Double(c.beta2),
            "tinit": c.tinit, "tfinal": c.tfinal, "deltaT": c.deltaT, "total_step": c.totalStep, "orth_reg_weight": Double(c.orthRegWeight),
            "rank_pattern": rp, "bias": "none", "fan_in_fan_out": false, "inference_mode": true, "init_lora_weights": true,
            "modules_to_save": ["classifier", "score"], "base_model_name_or_path": extra.baseModel, "use_dora": false, "use_rslora": false,
            "alpha_pattern": [String: Any](), "layers_to_transform": NSNull(), "layers_pattern": NSNull(), "revision": NSNull(),
        ]
        try AtomicFile.write(String(decoding: try JSONSerialization.data(withJSONObject: cfg, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self), to: directory + "/adapter_config.json")
        let enc = JSONEncoder(); enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(String(decoding: try enc.encode(extra), as: UTF8.self), to: directory + "/rankwise.json")
    }

    /// Reads an AdaLoRA adapter directory's config (nil when it is not AdaLoRA).
    public static func readConfig(directory: String) throws -> (AdaLoRAConfig, [String: [Bool]])? {
        let file = directory + "/adapter_config.json"
        guard let d = FileManager.default.contents(atPath: file), let o = (try? JSONSerialization.jsonObject(with: d)) as? [String: Any] else {
            throw ModelError("\(file): missing or not JSON")
        }
        guard (o["peft_type"] as? String) == "ADALORA" else { return nil }
        var c = AdaLoRAConfig()
        func int(_ k: String) -> Int? { (o[k] as? NSNumber)?.intValue }
        func flt(_ k: String) -> Float? { (o[k] as? NSNumber)?.floatValue }
        c.initR = int("init_r") ?? c.initR; c.targetR = int("target_r") ?? c.targetR
        c.alpha = flt("lora_alpha") ?? c.alpha; c.dropout = flt("lora_dropout") ?? 0
        c.beta1 = flt("beta1") ?? c.beta1; c.beta2 = flt("beta2") ?? c.beta2
        c.tinit = int("tinit") ?? 0; c.tfinal = int("tfinal") ?? 0; c.deltaT = int("deltaT") ?? 1
        c.totalStep = int("total_step") ?? 1; c.orthRegWeight = flt("orth_reg_weight") ?? c.orthRegWeight
        if let t = o["target_modules"] as? [String] { c.targetModules = t.sorted() } else if let t = o["target_modules"] as? String { c.targetModules = [t] }
        var pattern: [String: [Bool]] = [:]
        if let rp = o["rank_pattern"] as? [String: Any] {
            for (k, v) in rp {
                guard let flags = v as? [Any] else { throw ModelError("\(file): rank_pattern[\(k)] is not a list") }
                var path = k.replacingOccurrences(of: encoderPrefix, with: "").replacingOccurrences(of: ".lora_E", with: "").replacingOccurrences(of: ".default", with: "")
                if path.hasPrefix("bert.") { path.removeFirst(5) }
                pattern[path] = flags.map { ($0 as? Bool) ?? (($0 as? NSNumber)?.boolValue ?? false) }
            }
        }
        return (c, pattern)
    }

    /// Fills attached adapters (rMax = init_r) from a saved directory: kept ranks get the saved rows,
    /// the others stay inactive with E = 0. Returns the classifier as a weight source.
    public static func loadWeights(directory: String, adapters: [String: SVDAdapter], pattern: [String: [Bool]]) throws -> WeightSource? {
        let file = directory + "/adapter_model.safetensors"
        let f: SafeTensorsFile
        do { f = try SafeTensorsFile(path: file) } catch { throw ModelError("\(error)") }
        for (path, ad) in adapters {
            let keep = pattern[path] ?? [Bool](repeating: true, count: ad.rMax)
            guard keep.count == ad.rMax else { throw ModelError("\(file): rank_pattern for \(path) has \(keep.count) entries, init_r is \(ad.rMax)") }
            let idx = keep.indices.filter { keep[$0] }
            let r = idx.count
            func get(_ k: String, _ shape: [Int]) throws -> [Float] {
                let name = [encoderPrefix + path + "." + k, encoderPrefix + path + "." + k + ".default"].first(where: f.contains)
                guard let name else { throw ModelError("\(file): missing \(encoderPrefix + path).\(k)") }
                guard f.info(name)!.shape == shape else { throw ModelError("\(file): \(name) has shape \(f.info(name)!.shape), expected \(shape) from rank_pattern") }
                return try f.floats(name)
            }
            let a = try get("lora_A", [r, ad.inDim]), e = try get("lora_E", [r, 1]), b = try get("lora_B", [ad.outDim, r])
            ad.a.value.zero(); ad.e.value.zero(); ad.b.value.zero()
            for (c, j) in idx.enumerated() {
                for k in 0..<ad.inDim { ad.a.value[j * ad.inDim + k] = a[c * ad.inDim + k] }
                ad.e.value[j] = e[c]
                for o in 0..<ad.outDim { ad.b.value[o * ad.rMax + j] = b[o * r + c] }
            }
            ad.active = keep
        }
        if f.contains("base_model.model.classifier.weight") { return ClassifierWeights(file: f) }
        return nil
    }

    struct ClassifierWeights: WeightSource {
        let file: SafeTensorsFile
        func has(_ name: String) -> Bool { file.contains("base_model.model." + name) }
        func tensor(_ name: String, shape: [Int]) throws -> Tensor {
            let k = "base_model.model." + name
            guard let i = file.info(k), i.shape == shape else { throw ModelError("\(file.path): \(k) missing or not of shape \(shape)") }
            return Tensor(shape: shape, values: try file.floats(k))
        }
    }
}
