import Adapters
import Foundation
import Models
import RankwiseCore
import Training

/// `--method lora`: fixed-rank LoRA on every targeted module, saved in PEFT's LoRA format.
public final class LoRAMethod: TuningMethod {
    public let name = "lora"
    public let config: LoRAConfig
    public let loraAdapters: [(String, LoRAAdapter)]

    public init(config: LoRAConfig, backbone: any Backbone, seed: UInt64) throws {
        self.config = config
        loraAdapters = try LoRA.attach(to: backbone, config: config, seed: seed).sorted { $0.key < $1.key }
    }

    /// Reads a PEFT LoRA directory into `backbone`; returns the method and the classifier weights.
    public static func load(directory: String, backbone: any Backbone) throws -> (TuningMethod, WeightSource?) {
        let m = try LoRAMethod(config: try PEFTFormat.readConfig(directory: directory), backbone: backbone, seed: 0)
        let head = try PEFTFormat.loadWeights(
            directory: directory, adapters: Dictionary(uniqueKeysWithValues: m.loraAdapters))
        return (m, head)
    }

    public var adapters: [(String, LinearAdapter)] { loraAdapters.map { ($0.0, $0.1 as LinearAdapter) } }

    public func save(directory: String, model: TaskModel, metadata: AdapterMetadata) throws {
        try PEFTFormat.save(
            directory: directory, model: model, adapters: Dictionary(uniqueKeysWithValues: loraAdapters),
            config: config, extra: metadata)
    }

    public var ranks: [String: Int] { Dictionary(uniqueKeysWithValues: loraAdapters.map { ($0.0, $0.1.r) }) }
    public var maxRank: Int { config.r }
    public var summary: String { "r \(config.r), alpha \(config.alpha)" + (config.rslora ? ", rsLoRA" : "") }
}
