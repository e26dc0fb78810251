import Foundation
import Testing

@testable import RankwiseCore

/// Finite-difference checks of the decoder's kernels (RMS norm, SwiGLU, rotary embeddings), the rotation against
/// its definition, and GGUF's query/key row order.
@Suite struct DecoderOpsTests {
    @Test func rmsNormGradients() {
        var fd = FD()
        let rows = 5
        let width = 12
        var x = fd.randn(rows * width)
        var weight = fd.randn(width, scale: 0.5).map { $0 + 1 }
        let upstream = fd.randn(rows * width)
        func loss(_ x: [Float], _ weight: [Float]) -> Double {
            var y = [Float](repeating: 0, count: rows * width)
            var rstd = [Float](repeating: 0, count: rows)
            Ops.rmsNormForward(x: x, weight: weight, y: &y, rstd: &rstd, n: rows, d: width, eps: 1e-5)
            return dot(upstream, y)
        }
        var y = [Float](repeating: 0, count: rows * width)
        var rstd = [Float](repeating: 0, count: rows)
        Ops.rmsNormForward(x: x, weight: weight, y: &y, rstd: &rstd, n: rows, d: width, eps: 1e-5)
        let root = (x[0..<width].map { Double($0 * $0) }.reduce(0, +) / Double(width) + 1e-5).squareRoot()
        #expect(abs(Double(y[3]) - Double(x[3]) / root * Double(weight[3])) < 1e-5)
        var dx = [Float](repeating: 0, count: rows * width)
        var dweight = [Float](repeating: 0, count: width)
        Ops.rmsNormBackward(
            dy: upstream, x: x, weight: weight, rstd: rstd, dx: &dx, dweight: &dweight, n: rows, d: width)
        FD.check("rmsnorm dx", x: &x, grad: dx, eps: 1e-3) { loss($0, weight) }
        FD.check("rmsnorm dweight", x: &weight, grad: dweight, eps: 1e-3) { loss(x, $0) }
    }

    @Test func swigluGradients() {
        var fd = FD()
        let count = 64
        var gate = fd.randn(count, scale: 2)
        var up = fd.randn(count)
        let upstream = fd.randn(count)
        func loss(_ gate: [Float], _ up: [Float]) -> Double {
            var y = [Float](repeating: 0, count: count)
            Ops.swigluForward(gate: gate, up: up, y: &y, count: count)
            return dot(upstream, y)
        }
        var y = [Float](repeating: 0, count: count)
        Ops.swigluForward(gate: gate, up: up, y: &y, count: count)
        #expect(abs(y[0] - gate[0] / (1 + exp(-gate[0])) * up[0]) < 1e-6)
        var dgate = [Float](repeating: 0, count: count)
        var dup = [Float](repeating: 0, count: count)
        Ops.swigluBackward(dy: upstream, gate: gate, up: up, dgate: &dgate, dup: &dup, count: count)
        FD.check("swiglu dgate", x: &gate, grad: dgate, eps: 1e-3) { loss($0, up) }
        FD.check("swiglu dup", x: &up, grad: dup, eps: 1e-3) { loss(gate, $0) }
    }

    /// The rotation is Hugging Face's (x·cos + rotate_half(x)·sin, angles position·base^(-2i/d)), its inverse undoes
    /// it, and its backward (the inverse applied to the upstream gradient) matches finite differences.
    @Test func rotaryEmbeddingDefinitionInverseAndGradient() {
        var fd = FD()
        let heads = 3
        let headDim = 8
        let rows = 4
        let rope = RotaryEmbedding(headDim: headDim, base: 10_000, maxPositions: 64)
        let positions: [Int32] = [0, 5, 17, 63]
        var x = fd.randn(rows * heads * headDim)
        var rotated = x
        rope.apply(&rotated, positions: positions, rows: rows, heads: heads)
        for row in 0..<rows {
            for head in 0..<heads {
                for i in 0..<headDim {
                    let half = headDim / 2
                    let angle = Double(positions[row]) * pow(10_000, -Double(2 * (i % half)) / Double(headDim))
                    let base = row * heads * headDim + head * headDim
                    let partner = i < half ? -Double(x[base + i + half]) : Double(x[base + i - half])
                    let expected = Double(x[base + i]) * cos(angle) + partner * sin(angle)
                    #expect(abs(Double(rotated[base + i]) - expected) < 1e-4, "row \(row) head \(head) dim \(i)")
                }
            }
        }
        var restored = rotated
        rope.apply(&restored, positions: positions, rows: rows, heads: heads, inverse: true)
        #expect(zip(restored, x).allSatisfy { abs($0 - $1) < 1e-5 })
        let upstream = fd.randn(rows * heads * headDim)
        var gradient = upstream
        rope.apply(&gradient, positions: positions, rows: rows, heads: heads, inverse: true)
        FD.check("rope dx", x: &x, grad: gradient, eps: 1e-3) { input in
            var y = input
            rope.apply(&y, positions: positions, rows: rows, heads: heads)
            return dot(upstream, y)
        }
    }

    /// GGUF's query/key rows: per head, row 2i holds Hugging Face row i and row 2i+1 row i + headDim/2.
    @Test func ggufRowOrderRoundTrips() {
        let heads = 2
        let headDim = 4
        let columns = 3
        let huggingFace = (0..<(heads * headDim * columns)).map { Float($0) }
        let gguf = RotaryEmbedding.permuteRows(huggingFace, heads: heads, columns: columns)
        let rowOf = { (weight: [Float], row: Int) in Int(weight[row * columns]) / columns }
        #expect((0..<(heads * headDim)).map { rowOf(gguf, $0) } == [0, 2, 1, 3, 4, 6, 5, 7])
        #expect(RotaryEmbedding.unpermuteRows(gguf, heads: heads, columns: columns) == huggingFace)
    }
}
