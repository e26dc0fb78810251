import Adapters
import Foundation
import Models
import RankwiseCore
import Training

/// DoRA's options: LoRA's (the low-rank path is LoRA's), saved as PEFT's `LoraConfig(use_dora=True)`.
public struct DoRAConfig: Settings, Sendable, Equatable {
    public var lora = LoRATargeting()
    public var rslora = false
    public init() {}
    public static let help = ["rslora": "rsLoRA scaling alpha/sqrt(r) instead of alpha/r"]
    public func validate() throws { try loraConfig.validate() }
    var loraConfig: LoRAConfig {
        LoRAConfig(
            r: lora.r, alpha: lora.alpha, dropout: lora.loraDropout, targetModules: lora.targetModules,
            useRSLoRA: rslora)
    }
}

/// `--method dora`: weight-decomposed low-rank adaptation (Liu et al. 2024) on every targeted module, as
/// PEFT implements it (`DoRAAdapter`): a trainable magnitude per output row times the row-normalised
/// `W + s·B A`, the norm detached. Saved in PEFT's LoRA format with `use_dora` and the magnitude vectors.
public final class DoRAMethod: TuningMethod {
    public let name = "dora"
    public let config: DoRAConfig
    public let doraAdapters: [(String, DoRAAdapter)]

    public init(config: DoRAConfig, backbone: any Backbone, seed: UInt64) throws {
        self.config = config
        let loraConfig = config.loraConfig
        try loraConfig.validate()
        var rng = SplitMix64(seed: seed)
        var out: [(String, DoRAAdapter)] = []
        for lin in try config.lora.targets(in: backbone, method: "DoRA", rank: loraConfig.r) {
            // A and B as LoRA initialises them (B = 0, so W + s·B A = W); m = the rows' norms of W.
            let a = LoRA.initialA(r: loraConfig.r, inDim: lin.inDim, rng: &rng)
            let m = Tensor(zeros: [lin.outDim])
            for o in 0..<lin.outDim {
                var s: Float = 0
                for i in 0..<lin.inDim {
                    let w = lin.weight.value[o * lin.inDim + i]
                    s += w * w
                }
                m[o] = s.squareRoot()
            }
            let b = Tensor(zeros: [lin.outDim, loraConfig.r])
            let ad = DoRAAdapter(path: lin.path, layer: lin, config: loraConfig, a: a, b: b, magnitude: m)
            lin.adapter = ad
            for p in ad.params { backbone.params.add(p) }
            out.append((lin.path, ad))
        }
        doraAdapters = out.sorted { $0.0 < $1.0 }
    }

    /// Reads a PEFT DoRA directory into `backbone`; returns the method and the classifier weights.
    public static func load(directory: String, backbone: any Backbone) throws -> (TuningMethod, WeightSource?) {
        let loraConfig = try PEFTFormat.readConfig(directory: directory, dora: true)
        var c = DoRAConfig()
        c.lora.r = loraConfig.r
        c.lora.alpha = loraConfig.alpha
        c.lora.loraDropout = loraConfig.dropout
        c.lora.targetModules = loraConfig.targetModules
        c.rslora = loraConfig.useRSLoRA
        let m = try DoRAMethod(config: c, backbone: backbone, seed: 0)
        let head = try PEFTFormat.loadWeights(
            directory: directory, adapters: Dictionary(uniqueKeysWithValues: m.doraAdapters.map { ($0.0, $0.1.lora) }),
            magnitudes: Dictionary(uniqueKeysWithValues: m.doraAdapters.map { ($0.0, $0.1.magnitude) }))
        return (m, head)
    }

    public var adapters: [(String, LinearAdapter)] { doraAdapters.map { ($0.0, $0.1 as LinearAdapter) } }

    public func save(directory: String, model: TaskModel, metadata: AdapterMetadata) throws {
        try PEFTFormat.save(
            directory: directory, model: model,
            adapters: Dictionary(uniqueKeysWithValues: doraAdapters.map { ($0.0, $0.1.lora) }),
            config: config.loraConfig, extra: metadata,
            magnitudes: Dictionary(uniqueKeysWithValues: doraAdapters.map { ($0.0, $0.1.magnitude) }))
    }

    public var ranks: [String: Int] { Dictionary(uniqueKeysWithValues: doraAdapters.map { ($0.0, config.lora.r) }) }
    public var maxRank: Int { config.lora.r }
    public var summary: String {
        "DoRA r \(config.lora.r), alpha \(config.lora.alpha)" + (config.rslora ? ", rsLoRA" : "")
    }
}
