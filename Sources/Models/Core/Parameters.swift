import Foundation
import RankwiseCore
import SafeTensors

/// What a parameter is to the optimiser (weight decay skips biases and normalisation scales, as Hugging Face's
/// trainer does) and to random initialisation (a normalisation scale starts near one). Set by the model that
/// creates the parameter, never guessed from its name.
public enum ParamRole: Sendable {
    case weight, bias, normScale
}

/// One named parameter: its value and, when trainable, a gradient that is a slice of the set's flat
/// gradient buffer.
public final class Param: @unchecked Sendable {
    public let name: String
    public let shape: [Int]
    public let role: ParamRole
    public internal(set) var value: Tensor
    public internal(set) var grad: Tensor?
    public var count: Int { value.count }
    public var trainable: Bool { grad != nil }

    public init(name: String, value: Tensor, role: ParamRole = .weight) {
        self.name = name
        self.shape = value.shape
        self.role = role
        self.value = value
    }
}

/// All parameters of a model, in a fixed order. Gradients of the trainable ones live in one flat
/// buffer so that zeroing, clipping and optimiser steps are single loops.
public final class ParameterSet: @unchecked Sendable {
    public private(set) var all: [Param] = []
    private var index: [String: Param] = [:]
    public private(set) var gradBuffer: Tensor?

    public init() {}

    public func add(_ p: Param) {
        precondition(index[p.name] == nil, "duplicate parameter \(p.name)")
        all.append(p)
        index[p.name] = p
    }

    public subscript(name: String) -> Param? { index[name] }

    public var trainable: [Param] { all.filter(\.trainable) }
    public var trainableCount: Int { all.reduce(0) { $0 + ($1.trainable ? $1.count : 0) } }
    public var totalCount: Int { all.reduce(0) { $0 + $1.count } }

    /// Marks the parameters whose names satisfy `predicate` as trainable (all others frozen) and
    /// allocates one zeroed flat gradient buffer for them.
    public func setTrainable(_ predicate: (String) -> Bool) {
        let chosen = all.filter { predicate($0.name) }
        let total = chosen.reduce(0) { $0 + $1.count }
        for p in all { p.grad = nil }
        guard total > 0 else {
            gradBuffer = nil
            return
        }
        let buf = Tensor(zeros: [total])
        var off = 0
        for p in chosen {
            p.grad = Tensor(borrowing: buf.data + off, shape: p.shape, owner: buf)
            off += p.count
        }
        gradBuffer = buf
    }

    public func zeroGrad() { gradBuffer?.zero() }
}

/// Where weights come from: a checkpoint file or random initialisation.
public protocol WeightSource {
    /// The tensor `name` with exactly `shape`, or an error naming both.
    func tensor(_ name: String, shape: [Int]) throws -> Tensor
    /// The same for a parameter of `role` (a random source initialises each role its own way).
    func tensor(_ name: String, shape: [Int], role: ParamRole) throws -> Tensor
    func has(_ name: String) -> Bool
}

extension WeightSource {
    /// Stored weights are the same whatever the role.
    public func tensor(_ name: String, shape: [Int], role: ParamRole) throws -> Tensor {
        try tensor(name, shape: shape)
    }
}

/// Weights from a safetensors file, each name after `prefix` (a family's loader knows its checkpoints'
/// prefixes). F32 tensors are used in place from the memory map; F16/BF16 are converted.
public final class SafeTensorsWeights: WeightSource {
    public let file: SafeTensorsFile
    public let prefix: String

    public init(file: SafeTensorsFile, prefix: String) {
        self.file = file
        self.prefix = prefix
    }

    public func has(_ name: String) -> Bool { file.contains(prefix + name) }

    public func tensor(_ name: String, shape: [Int]) throws -> Tensor {
        let full = prefix + name
        guard let info = file.info(full) else {
            throw ModelError("\(file.path): missing tensor \"\(full)\" (expected shape \(shape))")
        }
        guard info.shape == shape else {
            throw ModelError("\(file.path): tensor \"\(full)\" has shape \(info.shape), expected \(shape)")
        }
        if let p = try file.f32Pointer(full) { return Tensor(borrowing: p, shape: shape, owner: file) }
        do {
            return Tensor(shape: shape, values: try file.floats(full))
        } catch {
            throw ModelError("\(error)")
        }
    }
}

/// The weights of a Hugging Face model directory: `model.safetensors`, or the shards that
/// `model.safetensors.index.json` maps each tensor to (each shard memory-mapped once).
public final class DirectoryWeights: WeightSource {
    public let directory: String
    private let files: [String: SafeTensorsWeights]
    /// Tensor name → shard file name.
    private let shardOf: [String: String]

    public init(directory: String) throws {
        self.directory = directory
        let single = (directory as NSString).appendingPathComponent("model.safetensors")
        let indexPath = (directory as NSString).appendingPathComponent("model.safetensors.index.json")
        func open(_ name: String) throws -> SafeTensorsWeights {
            let path = (directory as NSString).appendingPathComponent(name)
            do { return SafeTensorsWeights(file: try SafeTensorsFile(path: path), prefix: "") } catch {
                throw ModelError("\(error)")
            }
        }
        if FileManager.default.fileExists(atPath: single) {
            files = ["model.safetensors": try open("model.safetensors")]
            shardOf = [:]
            return
        }
        guard let data = FileManager.default.contents(atPath: indexPath) else {
            throw ModelError(
                "\(directory): no model.safetensors or model.safetensors.index.json (only safetensors weights are "
                    + "supported)")
        }
        guard let index = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
            let map = index["weight_map"] as? [String: String]
        else {
            throw ModelError("\(indexPath): not a safetensors index (no \"weight_map\" of tensor → file)")
        }
        for shard in Set(map.values) where shard.contains("/") || shard.hasPrefix(".") {
            throw ModelError("\(indexPath): shard \"\(shard)\" is not a file name in the directory")
        }
        var opened: [String: SafeTensorsWeights] = [:]
        for shard in Set(map.values).sorted() { opened[shard] = try open(shard) }
        files = opened
        shardOf = map
    }

    private func source(_ name: String) -> SafeTensorsWeights? {
        shardOf.isEmpty ? files.values.first : shardOf[name].flatMap { files[$0] }
    }

    public func has(_ name: String) -> Bool { source(name)?.has(name) ?? false }

    public func tensor(_ name: String, shape: [Int]) throws -> Tensor {
        guard let source = source(name) else {
            throw ModelError("\(directory): the safetensors index maps no file to tensor \"\(name)\"")
        }
        return try source.tensor(name, shape: shape)
    }
}

/// Random weights for tests and tiny models: normal(0, std) for weights and biases, 1 + normal(0, 0.1) for
/// normalisation scales.
public final class RandomWeights: WeightSource {
    var rng: SplitMix64
    let std: Float
    public init(seed: UInt64, std: Float = 0.02) {
        rng = SplitMix64(seed: seed)
        self.std = std
    }
    public func has(_ name: String) -> Bool { true }
    public func tensor(_ name: String, shape: [Int]) throws -> Tensor {
        try tensor(name, shape: shape, role: .weight)
    }
    public func tensor(_ name: String, shape: [Int], role: ParamRole) throws -> Tensor {
        let values = Tensor(zeros: shape)
        if role == .normScale {
            for i in 0..<values.count { values[i] = 1 + 0.1 * rng.nextNormal() }
        } else {
            for i in 0..<values.count { values[i] = std * rng.nextNormal() }
        }
        return values
    }
}
