import Adapters
import Foundation
import GGUF
import Methods
import RankwiseCore
import Testing
import TestSupport

@testable import Models

/// SmolLM2 with a LoRA on all 210 linears (B made non-zero) merged into a GGUF file: the metadata is the base file's
/// byte for byte except `general.file_type`, every tensor is there in order (matrices F16 or Q8_0, vectors F32), and
/// the merged model read back by Rankwise gives the adapted model's logits up to the rounding of its type: far closer
/// to them than the base model's are (the adapter is in), and for F16 within 0.1 with the same next token everywhere.
@Suite(.serialized) struct MergedGGUFTests {
    @Test(arguments: [GGMLType.f16, .q8_0]) func mergedFileGivesTheAdaptedModelsLogits(_ type: GGMLType) throws {
        guard let path = Fixtures.smollm2() else { return }
        try BLAS.load()
        let base = try GGUFFile(path: path)
        let model = try LlamaModel.load(gguf: base)
        let ids: [Int32] = [1, 504, 3458, 282, 4193, 314, 3601, 30, 2, 198, 1]
        let baseLogits = model.logits(try model.forward(TokenBatch(packed: [ids])).lastHidden, rows: ids.count)
        let (method, _) = try MethodRegistry.entry("lora").make(options: [:], backbone: model, seed: 1)
        var random = SplitMix64(seed: 2)
        for (_, adapter) in method.adapters {
            for parameter in adapter.params where parameter.name.contains("lora_B") {
                for i in 0..<parameter.count { parameter.value[i] = Float(Int(random.next() % 2001) - 1000) * 1e-4 }
            }
        }
        let task = try TaskModel(backbone: model, numLabels: 0, problem: .causalLanguageModel)
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("rankwise-merged-\(getpid()).gguf")
            .path
        defer { try? FileManager.default.removeItem(atPath: output) }
        try MergedGGUF.write(model: task, base: base, type: type, to: output)
        let merged = try GGUFFile(path: output)
        #expect(merged.keys.filter { $0 != "general.file_type" } == base.keys.filter { $0 != "general.file_type" })
        for key in base.keys where key != "general.file_type" { #expect(merged.rawEntries[key] == base.rawEntries[key]) }
        #expect(try merged.integer("general.file_type") == (type == .f16 ? 1 : 7))
        #expect(merged.tensors.map(\.name) == base.tensors.map(\.name))
        #expect(merged.tensors.allSatisfy { $0.type == ($0.dimensions.count == 1 ? .f32 : type) })
        let adapted = try model.forward(TokenBatch(packed: [ids]))
        let expected = model.logits(adapted.lastHidden, rows: ids.count)
        let plain = try LlamaModel.load(gguf: merged)
        let got = plain.logits(try plain.forward(TokenBatch(packed: [ids])).lastHidden, rows: ids.count)
        func meanDifference(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.reduce(0, +) / Float(a.count) }
        let rounding = meanDifference(expected, got)
        let adapterEffect = meanDifference(expected, baseLogits)
        #expect(rounding < (type == .f16 ? 0.1 : 0.5) * adapterEffect, "\(type.name): merged \(rounding) vs the adapter's effect \(adapterEffect)")
        guard type == .f16 else { return }
        let worst = zip(expected, got).map { abs($0 - $1) }.max()!
        #expect(worst < 0.1, "F16: worst logit difference \(worst)")
        let vocabulary = model.config.vocabSize
        for row in 0..<ids.count {
            let slice = { (logits: [Float]) in
                (0..<vocabulary).max { logits[row * vocabulary + $0] < logits[row * vocabulary + $1] }!
            }
            #expect(slice(expected) == slice(got), "\(type.name): next token differs at position \(row)")
        }
    }
}
