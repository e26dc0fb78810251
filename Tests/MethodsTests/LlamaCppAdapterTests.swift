import Adapters
import Foundation
import GGUF
import Methods
import Models
import RankwiseCore
import Testing
import TestSupport

/// Every registered method's adapters on the tiny LlamaForCausalLM, written as a llama.cpp LoRA adapter and read back
/// with Rankwise's GGUF reader: llama.cpp's update `alpha / r · lora_b · lora_a` (B's query and key rows put back in
/// Hugging Face's order) equals each adapter's own `delta()`, ranks a method switched off are not written, a module
/// with none left is left out, and what a llama.cpp LoRA cannot hold (DoRA, an input gate) is refused by name.
@Suite struct LlamaCppAdapterTests {
    static let directory = Fixtures.packageRoot.path + "/Tests/Fixtures/hf-llama/model"

    @Test(arguments: MethodRegistry.names + ["dynamic gate=false"]) func updatesEqualEachAdaptersDelta(_ name: String)
        throws
    {
        try BLAS.load()
        let words = name.split(separator: " ").map(String.init)
        let options = Dictionary(
            uniqueKeysWithValues: words.dropFirst().map { word in
                let parts = word.split(separator: "=")
                return (String(parts[0]), String(parts[1]))
            })
        let backbone = try LlamaModel.load(directory: Self.directory)
        let (method, _) = try MethodRegistry.entry(words[0]).make(options: options, backbone: backbone, seed: 3)
        let model = try TaskModel(backbone: backbone, numLabels: 0, problem: .causalLanguageModel)
        var random = SplitMix64(seed: 9)
        for parameter in method.adapters.flatMap(\.1.params) {
            for i in 0..<parameter.count { parameter.value[i] += Float(Int(random.next() % 2001) - 1000) * 1e-3 }
        }
        // SVD adapters: one rank off in every module, and every rank off in the first one (left out).
        var switchedOff: Set<String> = []
        for (index, (path, adapter)) in method.adapters.sorted(by: { $0.0 < $1.0 }).enumerated() {
            guard let svd = adapter as? SVDAdapter else { continue }
            for rank in 0..<(index == 0 ? svd.rMax : 1) { svd.deactivate(rank) }
            if index == 0 { switchedOff.insert(path) }
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("rankwise-llamacpp-\(getpid()).gguf")
            .path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let refuses = words[0] == "dora" || (words[0] == "dynamic" && options["gate"] == nil)
        do {
            try LlamaCppAdapter.write(model: model, alpha: 16, to: path)
            #expect(!refuses, "\(name): a llama.cpp LoRA cannot hold this update but it was written")
        } catch {
            #expect(refuses && "\(error)".contains("merge the model instead"), "\(name): \(error)")
            return
        }
        let file = try GGUFFile(path: path)
        let (kind, adapterType) = (try file.string("general.type"), try file.string("adapter.type"))
        let (architecture, alpha) = (try file.string("general.architecture"), try file.number("adapter.lora.alpha"))
        #expect(kind == "adapter" && adapterType == "lora" && architecture == "llama" && alpha == 16)
        var checked = 0
        for linear in backbone.adaptableLinears {
            guard let adapter = linear.adapter, let (name, heads) = backbone.ggufTensor(forLinear: linear.path) else {
                continue
            }
            guard file.tensors.contains(where: { $0.name == name + ".lora_a" }) else {
                #expect(switchedOff.contains(linear.path), "\(linear.path) was left out")
                continue
            }
            #expect(!switchedOff.contains(linear.path), "\(linear.path) has no rank on but was written")
            let a = try file.info(name + ".lora_a")
            let rank = a.shape[0]
            let b = try file.info(name + ".lora_b")
            #expect(a.shape == [rank, linear.inDim] && b.shape == [linear.outDim, rank])
            var loraB = try file.floats(name + ".lora_b")
            if let heads { loraB = RotaryEmbedding.unpermuteRows(loraB, heads: heads, columns: rank) }
            let loraA = try file.floats(name + ".lora_a")
            let expected = adapter.delta()
            var difference: Float = 0
            var norm: Float = 0
            for o in 0..<linear.outDim {
                for i in 0..<linear.inDim {
                    var value: Float = 0
                    for r in 0..<rank { value += loraB[o * rank + r] * loraA[r * linear.inDim + i] }
                    value *= 16 / Float(rank)
                    difference = max(difference, abs(value - expected[o * linear.inDim + i]))
                    norm = max(norm, abs(expected[o * linear.inDim + i]))
                }
            }
            #expect(norm > 0 && difference <= 1e-5 * max(norm, 1), "\(name) \(linear.path): differs by \(difference)")
            checked += 1
        }
        #expect(checked == 14 - switchedOff.count, "\(name): \(checked) modules checked")
    }
}
