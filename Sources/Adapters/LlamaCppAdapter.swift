import Foundation
import GGUF
import Models
import RankwiseCore

/// A model's adapters as a llama.cpp LoRA adapter: a GGUF file with `general.type` "adapter", the base model's
/// `general.architecture`, `adapter.type` "lora" and `adapter.lora.alpha`, and for each adapted linear the tensors
/// `<its GGUF name>.lora_a` (`[r, in]`) and `.lora_b` (`[out, r]`), float32. llama.cpp scales each pair by
/// alpha / r (r: that pair's rank), so every method's own scale (LoRA's alpha / r, AdaLoRA's E and 1 / ranknum,
/// SoRA's gate, Dynamic LoRA's layer weight) is folded into B against it: ranks may differ between modules, and a
/// module pruned to rank 0 is left out. The query and key rows of B are put in GGUF's order (rotary halves
/// interleaved per head), as llama.cpp's converter stores those weights.
public enum LlamaCppAdapter {
    public struct Summary: Sendable {
        /// Rank written for each module path.
        public var ranks: [String: Int]
        /// Adapted modules whose update is zero (pruned to rank 0), not written.
        public var leftOut: [String]
    }

    /// Builds the GGUF adapter of `model`'s adapters; `alpha` is the file's `adapter.lora.alpha` (the method's
    /// LoRA alpha keeps a uniform-rank LoRA's B as trained).
    public static func build(model: TaskModel, alpha: Float) throws -> (GGUFWriter, Summary) {
        guard let backbone = model.backbone as? any GGUFNamedBackbone else {
            throw ModelError("the model's family has no GGUF tensor names: llama.cpp cannot load its adapters")
        }
        guard alpha > 0, alpha.isFinite else { throw ModelError("adapter.lora.alpha must be positive") }
        var writer = GGUFWriter()
        writer.add("general.type", .string("adapter"))
        writer.add("general.architecture", .string(backbone.ggufArchitecture))
        writer.add("adapter.type", .string("lora"))
        writer.add("adapter.lora.alpha", .float32(alpha))
        var summary = Summary(ranks: [:], leftOut: [])
        for linear in backbone.adaptableLinears {
            guard let adapter = linear.adapter else { continue }
            guard let (factorB, factorA) = adapter.lowRankFactors() else {
                throw ModelError(
                    "\(linear.path): a \(type(of: adapter)) update is not a fixed low-rank matrix (DoRA's magnitudes, "
                        + "Dynamic LoRA's input gate), which a llama.cpp LoRA cannot hold; merge the model instead "
                        + "(rankwise merge --gguf)")
            }
            guard let (name, heads) = backbone.ggufTensor(forLinear: linear.path) else {
                throw ModelError("\(linear.path): no GGUF tensor name")
            }
            let (inDim, outDim, rank) = (linear.inDim, linear.outDim, factorA.shape[0])
            // Rank components that contribute nothing (a zero row of A or column of B) are dropped.
            let kept = (0..<rank).filter { component in
                (0..<inDim).contains { factorA[component * inDim + $0] != 0 }
                    && (0..<outDim).contains { factorB[$0 * rank + component] != 0 }
            }
            guard !kept.isEmpty else {
                summary.leftOut.append(linear.path)
                continue
            }
            let keptRank = kept.count
            let unscale = Float(keptRank) / alpha  // llama.cpp multiplies by alpha / rank
            var loraA = [Float](repeating: 0, count: keptRank * inDim)
            var loraB = [Float](repeating: 0, count: outDim * keptRank)
            for (slot, component) in kept.enumerated() {
                for i in 0..<inDim { loraA[slot * inDim + i] = factorA[component * inDim + i] }
                for o in 0..<outDim { loraB[o * keptRank + slot] = factorB[o * rank + component] * unscale }
            }
            if let heads { loraB = RotaryEmbedding.permuteRows(loraB, heads: heads, columns: keptRank) }
            guard loraA.allSatisfy(\.isFinite), loraB.allSatisfy(\.isFinite) else {
                throw ModelError("\(linear.path): the adapter holds non-finite values")
            }
            writer.addTensor(name + ".lora_a", shape: [keptRank, inDim], values: loraA)
            writer.addTensor(name + ".lora_b", shape: [outDim, keptRank], values: loraB)
            summary.ranks[linear.path] = keptRank
        }
        guard !summary.ranks.isEmpty else { throw ModelError("no adapted module has a non-zero update to write") }
        return (writer, summary)
    }

    /// Writes the GGUF adapter of `model` to `path` (atomically).
    @discardableResult
    public static func write(model: TaskModel, alpha: Float, to path: String) throws -> Summary {
        let (writer, summary) = try build(model: model, alpha: alpha)
        try writer.write(to: path)
        return summary
    }
}
