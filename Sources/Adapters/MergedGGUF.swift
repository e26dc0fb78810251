import Foundation
import GGUF
import Models
import RankwiseCore

/// A decoder with its adapters folded into the weights, written as a GGUF file llama.cpp and Ollama run without an
/// adapter: every tensor of the base GGUF file in its order, the adapted weights `W + ΔW` (query and key rows back in
/// GGUF's interleaved order), matrices stored as F16 or Q8_0 and vectors as F32, and the base file's metadata copied
/// byte for byte (tokenizer, chat template, hyper-parameters) except `general.file_type`.
public enum MergedGGUF {
    /// ggml's `general.file_type` of a file whose matrices are `type`.
    static func fileType(_ type: GGMLType) -> UInt32 { type == .f16 ? 1 : 7 }

    public static func write(model: TaskModel, base: GGUFFile, type: GGMLType, to path: String) throws {
        guard type == .f16 || type == .q8_0 else { throw ModelError("a merged GGUF is F16 or Q8_0, not \(type.name)") }
        guard let backbone = model.backbone as? any GGUFNamedBackbone else {
            throw ModelError("the model's family has no GGUF tensor names")
        }
        var parameters: [String: (param: Param, heads: Int?)] = [:]
        for param in backbone.params.all {
            if let (name, heads) = backbone.ggufTensor(forParameter: param.name) { parameters[name] = (param, heads) }
        }
        var deltas: [ObjectIdentifier: LinearAdapter] = [:]
        for linear in backbone.adaptableLinears {
            if let adapter = linear.adapter { deltas[ObjectIdentifier(linear.weight)] = adapter }
        }
        if let gated = backbone.adaptableLinears.first(where: { ($0.adapter as? DynamicLoRAAdapter)?.gateWeight != nil }
        ) {
            throw ModelError(
                "merge: \(gated.path) has Dynamic LoRA's input gate, which depends on each input and cannot be folded "
                    + "into a weight; train with --gate false to get a mergeable adapter")
        }
        var writer = GGUFWriter()
        writer.alignment = base.alignment
        for key in base.keys {
            if key == "general.file_type" { continue }
            writer.add(key, .raw(base.rawEntries[key]!))
        }
        writer.add("general.file_type", .uint32(fileType(type)))
        var merged = 0
        for tensor in base.tensors {
            guard let (param, heads) = parameters[tensor.name] else {
                throw ModelError("\(base.path): tensor \(tensor.name) has no parameter in the model")
            }
            guard param.shape == tensor.shape else {
                throw ModelError(
                    "\(tensor.name): the model's shape \(param.shape) differs from the file's \(tensor.shape)")
            }
            var values = param.value.array
            if let adapter = deltas[ObjectIdentifier(param)] {
                let delta = adapter.delta()
                for index in 0..<values.count { values[index] += delta[index] }
                merged += 1
            }
            guard values.allSatisfy(\.isFinite) else { throw ModelError("merge: \(tensor.name) is not finite") }
            if let heads { values = RotaryEmbedding.permuteRows(values, heads: heads, columns: param.shape[1]) }
            let stored: GGMLType = tensor.shape.count == 1 || tensor.shape.last! % type.blockSize != 0 ? .f32 : type
            writer.addTensor(tensor.name, shape: tensor.shape, type: stored, bytes: stored.encode(values))
        }
        guard merged == deltas.count else {
            throw ModelError("merge: \(deltas.count - merged) adapted weights have no tensor in \(base.path)")
        }
        try writer.write(to: path)
    }
}
