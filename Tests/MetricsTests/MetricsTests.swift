import Testing
@testable import Metrics

@Suite struct MetricsTests {
    @Test func classificationAgainstHandComputedValues() {
        // gold:      0 0 0 1 1 2
        // predicted: 0 1 0 1 2 2
        let m = ClassificationMetrics(predictions: [0, 1, 0, 1, 2, 2], labels: [0, 0, 0, 1, 1, 2], numClasses: 3)
        #expect(abs(m.accuracy - 4.0 / 6) < 1e-12)
        #expect(m.confusion == [[2, 1, 0], [0, 1, 1], [0, 0, 1]])
        // class 0: P 1, R 2/3, F1 0.8; class 1: P 0.5, R 0.5, F1 0.5; class 2: P 0.5, R 1, F1 2/3
        #expect(abs(m.f1[0] - 0.8) < 1e-12 && abs(m.f1[1] - 0.5) < 1e-12 && abs(m.f1[2] - 2.0 / 3) < 1e-12)
        #expect(abs(m.macroF1 - (0.8 + 0.5 + 2.0 / 3) / 3) < 1e-12)
        // Gorodkin R_K (what sklearn.metrics.matthews_corrcoef computes), checked with numpy
        #expect(abs(m.mcc - 0.5222329678670935) < 1e-12)
    }

    @Test func binaryMCCAndDegenerateCases() {
        let m = ClassificationMetrics(predictions: [1, 1, 0, 0], labels: [1, 0, 0, 0], numClasses: 2)
        // TP 1, FP 1, TN 2, FN 0: (2 - 0) / sqrt(2·1·3·2) = 0.57735
        #expect(abs(m.mcc - 2 / (12.0).squareRoot()) < 1e-12)
        let constant = ClassificationMetrics(predictions: [0, 0, 0], labels: [0, 1, 0], numClasses: 2)
        #expect(constant.mcc == 0)
    }

    @Test func regression() {
        let r = RegressionMetrics(predictions: [1, 2, 3, 4], targets: [2, 4, 6, 9])
        #expect(r.spearman == 1)
        #expect(abs(r.pearson - 0.994376712684369) < 1e-9)  // numpy.corrcoef
        let ties = RegressionMetrics.ranks([10, 20, 10, 30])
        #expect(ties == [1.5, 3, 1.5, 4])
    }
}
