import Foundation
import Testing

@testable import Models
import RankwiseCore

/// The chunked next-token loss against the plain formula in double precision: losses, the hidden states' gradient and
/// the projection's, with rows that have no target, chunks smaller than the rows and a last partial chunk; the
/// formula itself checked by central differences.
@Suite struct ChunkedCrossEntropyTests {
    @Test(arguments: [1, 4, 64]) func matchesThePlainFormula(chunkRows: Int) throws {
        _ = try BLAS.load()
        let rows = 11, width = 8, vocab = 37
        var rng = SplitMix64(seed: 3)
        let hidden = (0..<(rows * width)).map { _ in rng.nextNormal() }
        let projection = (0..<(vocab * width)).map { _ in 2 * rng.nextNormal() }
        let targets: [Int32] = [5, -1, 0, 36, 12, -1, -1, 7, 7, 30, 1]
        let scales: [Float] = (0..<rows).map { Float($0 % 3 + 1) / 10 }
        var dHidden = [Float](repeating: .nan, count: rows * width)
        var dProjection = [Float](repeating: 0.5, count: vocab * width)
        let loss = ChunkedCrossEntropy(chunkRows: chunkRows)
        let losses = loss.run(
            hidden: hidden, rows: rows, width: width, projection: projection, vocab: vocab, targets: targets,
            scales: scales, dHidden: &dHidden, dProjection: &dProjection)
        func reference(_ hidden: [Float], _ projection: [Float]) -> (losses: [Double], total: Double, dHidden: [Double], dProjection: [Double]) {
            var losses = [Double](repeating: 0, count: rows)
            var dHidden = [Double](repeating: 0, count: rows * width)
            var dProjection = [Double](repeating: 0, count: vocab * width)
            var total = 0.0
            for r in 0..<rows where targets[r] >= 0 {
                let logits = (0..<vocab).map { v in (0..<width).reduce(0.0) { $0 + Double(hidden[r * width + $1]) * Double(projection[v * width + $1]) } }
                let top = logits.max()!
                let sum = logits.reduce(0.0) { $0 + exp($1 - top) }
                losses[r] = top + log(sum) - logits[Int(targets[r])]
                total += Double(scales[r]) * losses[r]
                for v in 0..<vocab {
                    let dLogit = Double(scales[r]) * (exp(logits[v] - top) / sum - (v == Int(targets[r]) ? 1 : 0))
                    for j in 0..<width {
                        dHidden[r * width + j] += dLogit * Double(projection[v * width + j])
                        dProjection[v * width + j] += dLogit * Double(hidden[r * width + j])
                    }
                }
            }
            return (losses, total, dHidden, dProjection)
        }
        let expected = reference(hidden, projection)
        for r in 0..<rows { #expect(abs(Double(losses[r]) - expected.losses[r]) < 1e-4, "row \(r) loss") }
        for i in 0..<(rows * width) { #expect(abs(Double(dHidden[i]) - expected.dHidden[i]) < 1e-5, "dHidden[\(i)]") }
        for i in 0..<(vocab * width) {
            #expect(abs(Double(dProjection[i]) - 0.5 - expected.dProjection[i]) < 1e-5, "dProjection[\(i)]")
        }
        // The formula: central differences of the weighted total on a few entries.
        for index in [0, 17, 40, 87] {
            var plus = hidden, minus = hidden
            plus[index] += 1e-2
            minus[index] -= 1e-2
            let numeric = (reference(plus, projection).total - reference(minus, projection).total) / 2e-2
            #expect(abs(numeric - expected.dHidden[index]) < 1e-3, "central difference at \(index)")
        }
        // Without gradients: the same losses.
        let plain = loss.run(
            hidden: hidden, rows: rows, width: width, projection: projection, vocab: vocab, targets: targets,
            scales: scales)
        #expect(plain == losses)
    }
}
