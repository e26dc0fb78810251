import Foundation
import GGUF
import RankwiseCore

/// A GGUF file's tensors under Hugging Face LLaMA names (`model.layers.0.self_attn.q_proj.weight` reads
/// `blk.0.attn_q.weight`), dequantised to float32, with the query and key rows put back in Hugging Face's order
/// (llama.cpp's converter interleaves each head's rotary halves; `RotaryEmbedding.unpermuteRows`).
public final class GGUFWeights: WeightSource {
    public let file: GGUFFile
    let config: LlamaConfig

    public init(file: GGUFFile, config: LlamaConfig) {
        self.file = file
        self.config = config
    }

    /// The GGUF name of a Hugging Face LLaMA tensor name, or nil when the name is not one.
    public static func ggufName(_ name: String) -> String? {
        let fixed = [
            "model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
            "lm_head.weight": "output.weight",
        ]
        if let name = fixed[name] { return name }
        let parts = name.split(separator: ".", maxSplits: 3).map(String.init)
        guard parts.count == 4, parts[0] == "model", parts[1] == "layers", let layer = Int(parts[2]) else { return nil }
        let modules = [
            "input_layernorm.weight": "attn_norm.weight", "self_attn.q_proj.weight": "attn_q.weight",
            "self_attn.k_proj.weight": "attn_k.weight", "self_attn.v_proj.weight": "attn_v.weight",
            "self_attn.o_proj.weight": "attn_output.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
            "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
            "mlp.down_proj.weight": "ffn_down.weight",
        ]
        return modules[parts[3]].map { "blk.\(layer).\($0)" }
    }

    public func has(_ name: String) -> Bool {
        guard let gguf = Self.ggufName(name) else { return false }
        return (try? file.info(gguf)) != nil
    }

    public func tensor(_ name: String, shape: [Int]) throws -> Tensor {
        guard let gguf = Self.ggufName(name) else {
            throw ModelError("\(file.path): no GGUF name for the LLaMA tensor \"\(name)\"")
        }
        let info = try file.info(gguf)
        guard info.shape == shape else {
            throw ModelError(
                "\(file.path): tensor \"\(gguf)\" (\(name)) has shape \(info.shape), the config implies \(shape)")
        }
        var values = try file.floats(gguf)
        if name.hasSuffix("q_proj.weight") {
            values = RotaryEmbedding.unpermuteRows(values, heads: config.numHeads, columns: shape[1])
        } else if name.hasSuffix("k_proj.weight") {
            values = RotaryEmbedding.unpermuteRows(values, heads: config.numKeyValueHeads, columns: shape[1])
        }
        return Tensor(shape: shape, values: values)
    }
}
