import Testing

@testable import RankwiseCore

/// `BLAS.sgemm` against a naive product for every transpose, with leading dimensions wider than the matrices, on
/// general shapes and on the one-row and one-column shapes the shim hands to sgemv.
@Suite struct BLASTests {
    @Test(arguments: [(1, 7, 5), (6, 1, 5), (1, 1, 4), (3, 4, 5), (1, 300, 33)])
    func productsMatchNaive(shape: (Int, Int, Int)) throws {
        _ = try BLAS.load()
        let (m, n, k) = shape
        var rng = SplitMix64(seed: UInt64(m * 100 + n * 10 + k))
        for transA in [false, true] {
            for transB in [false, true] {
                // Stored shapes with 3 spare columns: A is m x k (or k x m), B is k x n (or n x k).
                let (aRows, aColumns) = transA ? (k, m) : (m, k)
                let (bRows, bColumns) = transB ? (n, k) : (k, n)
                let lda = aColumns + 3
                let ldb = bColumns + 3
                let ldc = n + 3
                let a = (0..<(aRows * lda)).map { _ in rng.nextNormal() }
                let b = (0..<(bRows * ldb)).map { _ in rng.nextNormal() }
                let start = (0..<(m * ldc)).map { _ in rng.nextNormal() }
                var c = start
                BLAS.sgemm(
                    transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5, a: a, lda: lda, b: b, ldb: ldb,
                    beta: 2, c: &c, ldc: ldc)
                for i in 0..<m {
                    for j in 0..<ldc {
                        var expected = Double(start[i * ldc + j])
                        if j < n {
                            var sum = 0.0
                            for p in 0..<k {
                                let x = transA ? a[p * lda + i] : a[i * lda + p]
                                let y = transB ? b[j * ldb + p] : b[p * ldb + j]
                                sum += Double(x) * Double(y)
                            }
                            expected = 0.5 * sum + 2 * expected
                        }
                        #expect(
                            abs(Double(c[i * ldc + j]) - expected) < 1e-4,
                            "m \(m) n \(n) k \(k) transA \(transA) transB \(transB) at \(i),\(j)")
                    }
                }
            }
        }
    }
}
