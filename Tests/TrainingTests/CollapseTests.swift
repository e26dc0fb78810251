import Foundation
import Testing
@testable import Metrics
@testable import Training

/// The collapse guard: a model that predicts one class, is at the majority-class level, or (regression)
/// predicts a constant or nothing that follows the targets is flagged with a plain message.
@Suite struct CollapseTests {
    func classification(_ predictions: [Int], _ labels: [Int32], classes: Int) -> Evaluator.Result {
        let m = ClassificationMetrics(predictions: predictions, labels: labels.map(Int.init), numClasses: classes)
        return Evaluator.Result(predictions: predictions, probabilities: [], logits: [], values: [], classification: m, regression: nil, loss: 0)
    }

    func regression(_ values: [Float], _ targets: [Float]) -> Evaluator.Result {
        Evaluator.Result(predictions: [], probabilities: [], logits: [], values: values, classification: nil,
                         regression: RegressionMetrics(predictions: values, targets: targets), loss: 0)
    }

    @Test func byHand() {
        let labels: [Int32] = [0, 0, 0, 1, 1, 2]  // majority share 1/2: majority macro-F1 (2 * 0.5 / 1.5) / 3 = 0.2222
        #expect(abs(Collapse.majorityMacroF1(labels: labels, numClasses: 3) - 2.0 / 9) < 1e-12)
        let one = Collapse.diagnose(classification([1, 1, 1, 1, 1, 1], labels, classes: 3), labels: labels, labelNames: ["a", "b", "c"], setName: "dev")
        #expect(one?.kind == .singleClass)
        #expect(one?.message.contains("one class (b) for all 6 dev examples") == true)
        #expect(one?.message.contains("--lr") == true)
        // Two classes predicted, macro-F1 (0.5 + 0 + 0)/3 = 0.1667: below the majority level.
        let major = Collapse.diagnose(classification([0, 0, 1, 0, 0, 0], labels, classes: 3), labels: labels, labelNames: ["a", "b", "c"], setName: "dev")
        #expect(major?.kind == .majorityLevel, "\(String(describing: major))")
        let healthy = Collapse.diagnose(classification([0, 0, 0, 1, 1, 2], labels, classes: 3), labels: labels, labelNames: [], setName: "dev")
        #expect(healthy == nil)
        let constant = Collapse.diagnose(regression([0.5, 0.5, 0.5, 0.5], [1, 2, 3, 4]), labels: [], targets: [1, 2, 3, 4], labelNames: [], setName: "test")
        #expect(constant?.kind == .constant)
        #expect(constant?.finding.contains("constant 0.5 for every test example") == true)
        let flat = Collapse.diagnose(regression([1, -1, 1, -1], [1, 2, 3, 4]), labels: [], targets: [1, 2, 3, 4], labelNames: [], setName: "dev")
        #expect(flat?.kind == .noCorrelation)
        #expect(Collapse.diagnose(regression([1, 2, 2.5, 4], [1, 2, 3, 4]), labels: [], targets: [1, 2, 3, 4], labelNames: [], setName: "dev") == nil)
        // Nothing to judge: no predictions, or targets without spread (Pearson undefined).
        #expect(Collapse.diagnose(regression([], []), labels: [], targets: [], labelNames: [], setName: "dev") == nil)
        #expect(Collapse.diagnose(regression([1, 2], [3, 3]), labels: [], targets: [3, 3], labelNames: [], setName: "dev") == nil)
    }

    /// A run whose training labels are all one class collapses: the trainer logs a `collapse` event and
    /// warns with the message; a healthy run of the same task does neither.
    @Test func collapsedRunIsReported() throws {
        var cfg = TrainConfig()
        cfg.epochs = 2; cfg.batchSize = 16; cfg.lr = 5e-3; cfg.warmupRatio = 0.1
        for collapsed in [true, false] {
            let (m, method) = try tinyModel()
            var train = tinyTask(n: 200, seed: 1)
            if collapsed { train = TokenizedSet(ids: train.ids, types: train.types, labels: train.labels.map { _ in 0 }, targets: train.targets, regression: false) }
            let out = tmpDir("collapse-\(collapsed)")
            var runConfig = cfg
            runConfig.evalEvery = collapsed ? 1 : 0  // the collapsed run is evaluated at every step
            let t = try Trainer(model: m, method: method, config: runConfig, train: train, dev: tinyTask(n: 100, seed: 2), labelNames: ["no", "yes"], outputDir: out)
            var warnings: [String] = []
            t.onEvent = { if case let .warning(w) = $0 { warnings.append(w) } }
            try t.run()
            let log = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8)
            if collapsed {
                #expect(t.devCollapse?.kind == .singleClass)
                // Evaluated at every step, judged after the warm-up only (early on, one class is normal).
                let steps = log.split(separator: "\n").compactMap { line -> Int? in
                    guard let o = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any], o["event"] as? String == "collapse" else { return nil }
                    return o["step"] as? Int
                }
                #expect(t.warmup >= 1 && steps.min() == t.warmup + 1 && steps.count == t.totalSteps - t.warmup, "\(steps), warm-up \(t.warmup)")
                #expect(warnings.contains { $0.contains("the model predicts one class (no) for all 100 dev examples") && $0.contains("likely fixes") })
                #expect(log.contains("\"event\":\"collapse\"") && log.contains("\"kind\":\"single_class\""))
            } else {
                #expect(t.devCollapse == nil, "\(String(describing: t.devCollapse))")
                #expect(warnings.isEmpty && !log.contains("\"event\":\"collapse\""))
            }
        }
    }
}
