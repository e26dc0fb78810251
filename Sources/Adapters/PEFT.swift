import Foundation
import Models
import RankwiseCore
import SafeTensors

/// Hugging Face PEFT's on-disk adapter format for LoRA (`adapter_config.json` + `adapter_model.safetensors`),
/// plus `rankwise.json` for label names; tensor names come from the backbone and the head (`PEFTNames`).
public enum PEFTFormat {
    public typealias Extra = AdapterMetadata

    /// Writes the adapter directory. Every file is written atomically.
    /// `magnitudes` (DoRA's `lora_magnitude_vector` per module path) makes it a DoRA adapter (`use_dora`).
    /// `patterns`: PEFT's per-module `rank_pattern` and `alpha_pattern` (module path → r, alpha).
    public static func save(
        directory: String, model: TaskModel, adapters: [String: LoRAAdapter], config: LoRAConfig, extra: Extra,
        magnitudes: [String: Param] = [:], patterns: (rank: [String: Int], alpha: [String: Float])? = nil
    ) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var tensors: [TensorToWrite] = []
        let prefix = PEFTNames.backbonePrefix(model.backbone)
        for (path, ad) in adapters {
            tensors.append(
                TensorToWrite(name: prefix + path + ".lora_A.weight", shape: ad.a.shape, floats: ad.a.value.array))
            tensors.append(
                TensorToWrite(name: prefix + path + ".lora_B.weight", shape: ad.b.shape, floats: ad.b.value.array))
            if let m = magnitudes[path] {
                tensors.append(
                    TensorToWrite(name: prefix + path + ".lora_magnitude_vector", shape: m.shape, floats: m.value.array)
                )
            }
        }
        tensors += PEFTNames.headTensors(model)
        try SafeTensorsWriter.write(tensors, metadata: ["format": "pt"], to: directory + "/adapter_model.safetensors")
        // A configuration built without the registry may leave target_modules to the backbone: name the modules.
        let targets = config.targetModules.isEmpty ? adapters.keys.sorted() : config.targetModules
        var cfg: [String: Any] = [
            "peft_type": "LORA", "r": config.r, "lora_alpha": Double(config.alpha),
            "lora_dropout": Double(config.dropout), "target_modules": targets, "bias": "none",
            "fan_in_fan_out": false, "inference_mode": true, "init_lora_weights": true, "use_rslora": config.useRSLoRA,
            "use_dora": !magnitudes.isEmpty,
            "rank_pattern": patterns?.rank ?? [:], "alpha_pattern": (patterns?.alpha ?? [:]).mapValues { Double($0) },
            "layers_to_transform": NSNull(),
            "layers_pattern": NSNull(), "revision": NSNull(), "lora_bias": false,
        ]
        cfg.merge(PEFTNames.configBase(model: model, baseModel: extra.baseModel)) { $1 }
        try PEFTNames.writeConfigFiles(cfg, metadata: extra, directory: directory)
    }

    /// One module of an adapter whose modules keep different ranks: A `[R, in]` and B `[out, R]` of which
    /// the ranks `kept` are saved, at output scale `scaling`.
    public struct KeptRanks {
        public let a: Tensor, b: Tensor, kept: [Int], scaling: Float
        public init(a: Tensor, b: Tensor, kept: [Int], scaling: Float) {
            self.a = a
            self.b = b
            self.kept = kept
            self.scaling = scaling
        }
    }

    /// Saves modules of different ranks as PEFT LoRA (SoRA, Dynamic LoRA's rank mode): each module's kept
    /// ranks, `rank_pattern` and `alpha_pattern` keeping its scale; a module with no rank left is left out
    /// of `target_modules`.
    public static func save(
        directory: String, model: TaskModel, keptRanks: [String: KeptRanks], config: LoRAConfig, extra: Extra
    ) throws {
        var exported: [String: LoRAAdapter] = [:]
        var rankPattern: [String: Int] = [:]
        var alphaPattern: [String: Float] = [:]
        for (path, m) in keptRanks where !m.kept.isEmpty {
            let (inD, outD, R, k) = (m.a.shape[1], m.b.shape[0], m.a.shape[0], m.kept.count)
            let a = Tensor(zeros: [k, inD])
            let b = Tensor(zeros: [outD, k])
            for (j, r) in m.kept.enumerated() {
                for i in 0..<inD { a[j * inD + i] = m.a[r * inD + i] }
                for o in 0..<outD { b[o * k + j] = m.b[o * R + r] }
            }
            exported[path] = LoRAAdapter(
                path: path, inDim: inD, outDim: outD, config: LoRAConfig(r: k, alpha: m.scaling * Float(k)), a: a, b: b)
            rankPattern[path] = k
            alphaPattern[path] = m.scaling * Float(k)
        }
        var cfg = config
        cfg.lora.targetModules = exported.keys.sorted()
        try save(
            directory: directory, model: model, adapters: exported, config: cfg, extra: extra,
            patterns: (rank: rankPattern, alpha: alphaPattern))
    }

    /// Reads a PEFT LoRA directory with per-module ranks (`rank_pattern`, `alpha_pattern`) for `backbone`'s
    /// linear layers: the configuration, one loaded LoRA adapter per matched module (not attached) and the
    /// classifier.
    public static func loadKeptRanks(
        directory: String, backbone: any Backbone
    ) throws -> (LoRAConfig, [String: LoRAAdapter], WeightSource?) {
        let (loraConfig, rankPattern, alphaPattern) = try readConfigWithPatterns(directory: directory)
        var adapters: [String: LoRAAdapter] = [:]
        for lin in backbone.adaptableLinears where loraConfig.matches(lin.path) {
            func pattern<V>(_ p: [String: V]) -> V? {
                p.first { lin.path == $0.key || lin.path.hasSuffix("." + $0.key) }?.value
            }
            let r = pattern(rankPattern) ?? loraConfig.r
            let alpha = pattern(alphaPattern) ?? loraConfig.alpha
            adapters[lin.path] = LoRAAdapter(
                path: lin.path, inDim: lin.inDim, outDim: lin.outDim, config: LoRAConfig(r: r, alpha: alpha),
                a: Tensor(zeros: [r, lin.inDim]), b: Tensor(zeros: [lin.outDim, r]))
        }
        return (loraConfig, adapters, try loadWeights(directory: directory, adapters: adapters))
    }

    /// Reads `adapter_config.json` as a LoRA configuration; clear errors for what is not LoRA.
    /// Whether the directory's `adapter_config.json` says `use_dora`.
    public static func isDoRA(directory: String) -> Bool {
        guard let d = FileManager.default.contents(atPath: directory + "/adapter_config.json"),
            let o = (try? JSONSerialization.jsonObject(with: d)) as? [String: Any]
        else { return false }
        return (o["use_dora"] as? Bool) == true
    }

    /// The configuration and its per-module `rank_pattern` and `alpha_pattern` (module path or suffix → r, alpha).
    public static func readConfigWithPatterns(directory: String) throws -> (LoRAConfig, [String: Int], [String: Float])
    {
        let (c, o) = try parseConfig(directory: directory, dora: false, patterns: true)
        let file = directory + "/adapter_config.json"
        let rp = (o["rank_pattern"] as? [String: Any] ?? [:]).compactMapValues { ($0 as? NSNumber)?.intValue }
        let ap = (o["alpha_pattern"] as? [String: Any] ?? [:]).compactMapValues { ($0 as? NSNumber)?.floatValue }
        guard rp.values.allSatisfy({ $0 > 0 && $0 <= 4096 }) else {
            throw ModelError("\(file): rank_pattern holds a rank outside 1...4096")
        }
        return (c, rp, ap)
    }

    /// `dora`: whether the caller loads DoRA (otherwise a DoRA adapter is an error naming `--method dora`).
    public static func readConfig(directory: String, dora: Bool = false) throws -> LoRAConfig {
        try parseConfig(directory: directory, dora: dora, patterns: false).0
    }

    /// The LoRA configuration and the JSON object it came from; per-module patterns are an error unless `patterns`.
    static func parseConfig(directory: String, dora: Bool, patterns: Bool) throws -> (LoRAConfig, [String: Any]) {
        let file = directory + "/adapter_config.json"
        guard let d = FileManager.default.contents(atPath: file),
            let o = (try? JSONSerialization.jsonObject(with: d)) as? [String: Any]
        else {
            throw ModelError("\(file): missing or not JSON")
        }
        guard (o["peft_type"] as? String) == "LORA" else {
            throw ModelError("\(file): peft_type \(o["peft_type"] ?? "missing") is not LORA")
        }
        if (o["use_dora"] as? Bool) == true && !dora {
            throw ModelError("\(file): a DoRA adapter (use_dora); load it as --method dora")
        }
        if (o["use_dora"] as? Bool) != true && dora {
            throw ModelError("\(file): not a DoRA adapter (use_dora is not true)")
        }
        for k in ["rank_pattern", "alpha_pattern"] where !patterns {
            if let p = o[k] as? [String: Any], !p.isEmpty {
                throw ModelError("\(file): per-module \(k) is not supported yet")
            }
        }
        guard let r = (o["r"] as? NSNumber)?.intValue, let alpha = (o["lora_alpha"] as? NSNumber)?.floatValue else {
            throw ModelError("\(file): r or lora_alpha missing")
        }
        var targets: [String]
        if let t = o["target_modules"] as? [String] {
            targets = t
        } else if let t = o["target_modules"] as? String {
            targets = [t]
        }  // a regex in PEFT; treated as a suffix here
        else {
            throw ModelError("\(file): target_modules missing")
        }
        // An empty list would mean "the backbone's defaults" to the attach routine: a saved adapter names its modules.
        guard !targets.isEmpty else { throw ModelError("\(file): target_modules is empty (no module to load)") }
        targets.sort()
        return (
            LoRAConfig(
                r: r, alpha: alpha, dropout: (o["lora_dropout"] as? NSNumber)?.floatValue ?? 0, targetModules: targets,
                useRSLoRA: (o["use_rslora"] as? Bool) ?? false), o
        )
    }

    public static func readExtra(directory: String) -> Extra? {
        guard let d = FileManager.default.contents(atPath: directory + "/rankwise.json") else { return nil }
        return try? JSONDecoder().decode(Extra.self, from: d)
    }

    /// Loads adapter weights (PEFT key names, with or without `.weight`/`.default`) into attached
    /// adapters and returns the classifier as a weight source (nil when the file has none).
    public static func loadWeights(
        directory: String, adapters: [String: LoRAAdapter], magnitudes: [String: Param] = [:]
    ) throws -> WeightSource? {
        let file = directory + "/adapter_model.safetensors"
        let f: SafeTensorsFile
        do { f = try SafeTensorsFile(path: file) } catch { throw ModelError("\(error)") }
        func find(_ path: String, _ which: String) throws -> [Float] {
            let stem = path + "." + which
            guard let name = PEFTNames.find([stem + ".weight", stem + ".default.weight"], in: f) else {
                throw ModelError("\(file): no \(which) for \(path)")
            }
            return try f.floats(name)
        }
        for (path, ad) in adapters {
            let a = try find(path, "lora_A")
            let b = try find(path, "lora_B")
            guard a.count == ad.a.count, b.count == ad.b.count else {
                throw ModelError(
                    "\(file): \(path) has \(a.count)/\(b.count) values for lora_A/lora_B, expected "
                        + "\(ad.a.count)/\(ad.b.count)"
                )
            }
            _ = ad.a.value.buffer.update(from: a)
            _ = ad.b.value.buffer.update(from: b)
            if let m = magnitudes[path] {
                let stem = path + ".lora_magnitude_vector"
                guard let name = PEFTNames.find([stem, stem + ".weight"], in: f) else {
                    throw ModelError("\(file): no lora_magnitude_vector for \(path)")
                }
                let v = try f.floats(name)
                guard v.count == m.count, v.allSatisfy({ $0.isFinite && $0 > 0 }) else {
                    throw ModelError(
                        "\(file): \(name) has \(v.count) values (expected \(m.count), all positive and finite)")
                }
                _ = m.value.buffer.update(from: v)
            }
        }
        for name in f.names where name.contains("lora_") {
            let target = name.components(separatedBy: ".lora_").first ?? ""
            if PEFTNames.modulePath(of: target, among: adapters.keys) == nil {
                let shown =
                    target.hasPrefix(PEFTNames.modelPrefix)
                    ? String(target.dropFirst(PEFTNames.modelPrefix.count)) : target
                throw ModelError("\(file): tensor \(name) targets \(shown), which the model does not adapt")
            }
        }
        return PEFTNames.headWeights(in: f)
    }
}
