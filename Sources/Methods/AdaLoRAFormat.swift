import Adapters
import Foundation
import Models
import RankwiseCore
import SafeTensors
import Training

/// PEFT's on-disk AdaLoRA format: tensors sliced to the kept ranks, `rank_pattern` in the config.
public enum AdaLoRAFormat {
    /// Writes any SVD-form adapters (AdaLoRA, SalientLoRA, ElaLoRA) in PEFT's AdaLoRA format, as PEFT's
    /// `save_pretrained` does: `adapter_config.json` (peft_type ADALORA, `rank_pattern`) and
    /// `adapter_model.safetensors` with A/E/B sliced to each module's kept ranks (modules pruned to
    /// rank 0 get empty tensors). `initR` must equal every adapter's `rMax` (PEFT indexes its
    /// `init_r` rows with the pattern); PEFT scales by `alpha / (init_r + 1e-5)`, so adapters whose own
    /// `ranknum` differs have E rescaled to give the same output. `schedule` adds the method's
    /// schedule fields (tinit, tfinal, …) to the config for the record.
    public static func save(
        directory: String, model: TaskModel, adapters: [(String, SVDAdapter)], pattern: [String: [Bool]],
        targeting t: LoRATargeting, initR: Int, schedule: [String: Any], extra: AdapterMetadata
    ) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var tensors: [TensorToWrite] = []
        var rp: [String: [Bool]] = [:]
        let prefix = PEFTNames.backbonePrefix(model.backbone)
        for (path, ad) in adapters {
            let keep = pattern[path] ?? [Bool](repeating: true, count: ad.rMax)
            precondition(
                keep.count == initR && ad.rMax == initR,
                "AdaLoRA format: \(path) has \(ad.rMax) ranks, init_r is \(initR)")
            let idx = keep.indices.filter { keep[$0] }
            let r = idx.count
            var a: [Float] = []
            var e: [Float] = []
            var b = [Float](repeating: 0, count: ad.outDim * r)
            for j in idx {
                a += Array(UnsafeBufferPointer(start: ad.a.value.data + j * ad.inDim, count: ad.inDim))
                e.append(
                    Float(initR) == ad.ranknum
                        ? ad.e.value[j] : ad.e.value[j] * ((Float(initR) + 1e-5) / (ad.ranknum + 1e-5)))
            }
            for o in 0..<ad.outDim { for (c, j) in idx.enumerated() { b[o * r + c] = ad.b.value[o * ad.rMax + j] } }
            tensors.append(TensorToWrite(name: prefix + path + ".lora_A", shape: [r, ad.inDim], floats: a))
            tensors.append(TensorToWrite(name: prefix + path + ".lora_E", shape: [r, 1], floats: e))
            tensors.append(TensorToWrite(name: prefix + path + ".lora_B", shape: [ad.outDim, r], floats: b))
            // PEFT keys rank_pattern by the wrapped model's names
            rp[model.backbone.huggingFace.prefix + path + ".lora_E"] = keep
        }
        tensors += PEFTNames.headTensors(model)
        try SafeTensorsWriter.write(tensors, metadata: ["format": "pt"], to: directory + "/adapter_model.safetensors")
        let targets = t.targetModules.isEmpty ? adapters.map(\.0).sorted() : t.targetModules
        var cfg: [String: Any] = [
            "peft_type": "ADALORA", "r": 8, "init_r": initR, "target_r": t.r, "lora_alpha": Double(t.alpha),
            "lora_dropout": Double(t.loraDropout), "target_modules": targets, "total_step": 1, "tinit": 0,
            "tfinal": 0,
            "rank_pattern": rp, "bias": "none", "fan_in_fan_out": false, "inference_mode": true,
            "init_lora_weights": true,
            "use_dora": false, "use_rslora": false,
            "alpha_pattern": [String: Any](), "layers_to_transform": NSNull(), "layers_pattern": NSNull(),
            "revision": NSNull(),
        ]
        cfg.merge(PEFTNames.configBase(model: model, baseModel: extra.baseModel)) { $1 }
        cfg.merge(schedule) { $1 }
        try PEFTNames.writeConfigFiles(cfg, metadata: extra, directory: directory)
    }

    /// Reads an AdaLoRA adapter directory's config: targeting, init_r and the rank pattern (nil when
    /// the directory is not AdaLoRA). The pattern's keys are the saved module names without `base_model.model.`,
    /// `.lora_E` and `.default` (`bert.encoder.layer.0…`); `loadWeights` matches them to the adapted modules.
    public static func readConfig(
        directory: String
    ) throws -> (targeting: LoRATargeting, initR: Int, pattern: [String: [Bool]])? {
        let file = directory + "/adapter_config.json"
        guard let d = FileManager.default.contents(atPath: file),
            let o = (try? JSONSerialization.jsonObject(with: d)) as? [String: Any]
        else {
            throw ModelError("\(file): missing or not JSON")
        }
        guard (o["peft_type"] as? String) == "ADALORA" else { return nil }
        var t = LoRATargeting()
        guard let initR = (o["init_r"] as? NSNumber)?.intValue, initR > 0, initR <= 4096 else {
            throw ModelError("\(file): init_r missing or out of range")
        }
        t.r = (o["target_r"] as? NSNumber)?.intValue ?? t.r
        t.alpha = (o["lora_alpha"] as? NSNumber)?.floatValue ?? t.alpha
        t.loraDropout = (o["lora_dropout"] as? NSNumber)?.floatValue ?? 0
        if let m = o["target_modules"] as? [String] {
            t.targetModules = m.sorted()
        } else if let m = o["target_modules"] as? String {
            t.targetModules = [m]
        }
        // An empty list would mean "the backbone's defaults" to the attach routine: a saved adapter names its modules.
        guard !t.targetModules.isEmpty else {
            throw ModelError("\(file): target_modules missing or empty (no module to load)")
        }
        var pattern: [String: [Bool]] = [:]
        if let rp = o["rank_pattern"] as? [String: Any] {
            for (k, v) in rp {
                guard let flags = v as? [Any] else { throw ModelError("\(file): rank_pattern[\(k)] is not a list") }
                var path = k.replacingOccurrences(of: ".lora_E", with: "").replacingOccurrences(
                    of: ".default", with: "")
                if path.hasPrefix(PEFTNames.modelPrefix) { path.removeFirst(PEFTNames.modelPrefix.count) }
                pattern[path] = try flags.map { x in
                    if let b = x as? Bool { return b }
                    if let n = x as? NSNumber, n.doubleValue == 0 || n.doubleValue == 1 { return n.doubleValue == 1 }
                    throw ModelError("\(file): rank_pattern[\(k)] holds \(x); entries must be true/false (or 1/0)")
                }
            }
        }
        return (t, initR, pattern)
    }

    /// Attaches SVD adapters to `backbone` as a saved AdaLoRA-format directory describes and fills them.
    /// Returns the adapters, the pattern and the classifier weights (nil when the file has none); nil
    /// when the directory is not in AdaLoRA format.
    public static func load(
        directory: String, into backbone: any Backbone
    ) throws -> (adapters: [String: SVDAdapter], pattern: [String: [Bool]], head: WeightSource?)? {
        guard let (t, initR, pattern) = try readConfig(directory: directory) else { return nil }
        let ads = try SVDAdapter.attach(to: backbone, targeting: t, initialRank: initR, seed: 0, method: "AdaLoRA")
        let head = try loadWeights(directory: directory, adapters: ads, pattern: pattern)
        return (ads, pattern, head)
    }

    /// Fills attached adapters (rMax = init_r) from a saved directory: kept ranks get the saved rows,
    /// the others stay inactive with E = 0. Returns the classifier as a weight source.
    public static func loadWeights(
        directory: String, adapters: [String: SVDAdapter], pattern: [String: [Bool]]
    ) throws -> WeightSource? {
        let file = directory + "/adapter_model.safetensors"
        var patternByPath: [String: [Bool]] = [:]
        for (saved, flags) in pattern.sorted(by: { $0.key < $1.key }) {
            guard let path = PEFTNames.modulePath(of: saved, among: adapters.keys) else {
                throw ModelError(
                    "\(directory)/adapter_config.json: rank_pattern names \(saved), which target_modules does not adapt"
                )
            }
            patternByPath[path] = flags
        }
        let f: SafeTensorsFile
        do { f = try SafeTensorsFile(path: file) } catch { throw ModelError("\(error)") }
        for (path, ad) in adapters {
            let keep = patternByPath[path] ?? [Bool](repeating: true, count: ad.rMax)
            guard keep.count == ad.rMax else {
                throw ModelError("\(file): rank_pattern for \(path) has \(keep.count) entries, init_r is \(ad.rMax)")
            }
            let idx = keep.indices.filter { keep[$0] }
            let r = idx.count
            func get(_ k: String, _ shape: [Int]) throws -> [Float] {
                guard let name = PEFTNames.find([path + "." + k, path + "." + k + ".default"], in: f) else {
                    throw ModelError("\(file): missing \(path).\(k)")
                }
                guard f.info(name)!.shape == shape else {
                    throw ModelError(
                        "\(file): \(name) has shape \(f.info(name)!.shape), expected \(shape) from rank_pattern")
                }
                return try f.floats(name)
            }
            let a = try get("lora_A", [r, ad.inDim])
            let e = try get("lora_E", [r, 1])
            let b = try get("lora_B", [ad.outDim, r])
            ad.a.value.zero()
            ad.e.value.zero()
            ad.b.value.zero()
            for (c, j) in idx.enumerated() {
                for k in 0..<ad.inDim { ad.a.value[j * ad.inDim + k] = a[c * ad.inDim + k] }
                ad.e.value[j] = e[c]
                for o in 0..<ad.outDim { ad.b.value[o * ad.rMax + j] = b[o * r + c] }
            }
            ad.active = keep
        }
        return PEFTNames.headWeights(in: f)
    }
}

/// A method whose adapters are SVD-form (`SVDAdapter`): AdaLoRA, SalientLoRA, ElaLoRA.
public protocol SVDTuningMethod: TuningMethod {
    var svdAdapters: [(String, SVDAdapter)] { get }
}

extension SVDTuningMethod {
    public var adapters: [(String, LinearAdapter)] { svdAdapters.map { ($0.0, $0.1 as LinearAdapter) } }
    public var ranks: [String: Int] { Dictionary(uniqueKeysWithValues: svdAdapters.map { ($0.0, $0.1.rank) }) }
    /// Active ranks of every module.
    public var svdPattern: [String: [Bool]] {
        Dictionary(uniqueKeysWithValues: svdAdapters.map { ($0.0, $0.1.active) })
    }
}

/// SVD adapters read back from an AdaLoRA-format directory, for inference, merging and re-saving.
public final class LoadedSVDMethod: SVDTuningMethod {
    public let name: String
    public let svdAdapters: [(String, SVDAdapter)]
    let targeting: LoRATargeting
    public let maxRank: Int

    /// Loads `directory` into `backbone`; returns the method and the classifier weights.
    public static func load(
        name: String, directory: String, backbone: any Backbone
    ) throws -> (TuningMethod, WeightSource?) {
        guard let (t, initR, _) = try AdaLoRAFormat.readConfig(directory: directory),
            let (ads, _, head) = try AdaLoRAFormat.load(directory: directory, into: backbone)
        else {
            throw ModelError(
                "\(directory)/adapter_config.json: not an AdaLoRA-format adapter (peft_type ADALORA), which \(name) "
                    + "saves"
            )
        }
        return (LoadedSVDMethod(name: name, adapters: ads, targeting: t, maxRank: initR), head)
    }

    init(name: String, adapters: [String: SVDAdapter], targeting: LoRATargeting, maxRank: Int) {
        self.name = name
        svdAdapters = adapters.sorted { $0.key < $1.key }
        self.targeting = targeting
        self.maxRank = maxRank
    }

    public func save(directory: String, model: TaskModel, metadata: AdapterMetadata) throws {
        try AdaLoRAFormat.save(
            directory: directory, model: model, adapters: svdAdapters, pattern: svdPattern, targeting: targeting,
            initR: maxRank, schedule: [:], extra: metadata)
    }

    public var summary: String { "\(name) adapters loaded in AdaLoRA format (init_r \(maxRank))" }
}
