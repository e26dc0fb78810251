import ArgumentParser
import FineTuning
import Foundation
import Methods
import RankwiseCore
import SafeTensors
import Training

/// `rankwise quality`: which training examples look mislabelled or useless. Parses, shows progress and
/// prints; the audit itself is `QualityAudit` in the FineTuning library.
struct Quality: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score every training example (TsqLoRA's quality) and write them to a CSV, lowest quality first.",
        discussion: """
            Examples:
              rankwise quality --train tweets --output tweets-quality.csv
              rankwise quality --train data.csv --adapter runs/x/best --output q.csv
              rankwise quality --train tweets --max-train-examples 4000 --flip-labels 0.2 --output noisy.csv

            Takes the model and data options of `train`. Without --adapter it fine-tunes first (method and options as \
            for train; --epochs defaults to 1 here, because a model trained longer memorises wrong labels) into \
            --run-output, then scores the training examples with the model at the end.

            Columns: row (the example's line in the file), quality (low: look at this row), grad_norm, reduction, \
            alignment, probability (TsqLoRA's sampling probability), label, predicted, loss, text.

            With --flip-labels F a seeded fraction F of the labels is flipped first, and the summary says how well \
            each score finds them (AUROC, precision): a check of the audit on your own data.

            Scoring options (TsqLoRA's, with the same defaults): --a1, --a2, --a3 (weights of the gradient norm, the \
            loss reduction and the alignment), --tau, --floor (the probability column), --scoring head|full, \
            --loss-reduction approx|exact.
            """)

    @Option(help: "Score with this trained adapter directory instead of fine-tuning first.") var adapter: String?
    @Option(help: "The CSV to write.") var output = "quality.csv"
    @Option(help: "Run directory of the short fine-tune [default: OUTPUT without .csv, plus .run].") var runOutput:
        String?
    @Option(
        help:
            "A numeric column of the training file to correlate the scores with (Spearman), e.g. annotator confidence.")
    var correlate: String?
    @Option(help: "How many of the lowest-quality rows to print.") var show = 10
    @Argument(
        parsing: .allUnrecognized, help: "Model, data, training and quality options (see `rankwise train --help`).")
    var options: [String] = []

    func run() throws {
        let audit: QualityAudit
        do {
            let qualityTable = SettingsTable.options(of: QualityConfig.self)
            var qualityValues: [String: String] = [:]
            var rest: [(key: String, value: String)] = []
            for (k, v) in try FineTuneOptions.values(fromArguments: options) {
                let n = SettingsTable.normalise(k)
                if qualityTable.contains(where: { $0.key == n || $0.aliases.contains(n) }) {
                    qualityValues[n] = v
                } else {
                    rest.append((k, v))
                }
            }
            if !rest.contains(where: { SettingsTable.normalise($0.key) == "epochs" }) { rest.append(("epochs", "1")) }
            rest.append(
                ("output", runOutput ?? (output.hasSuffix(".csv") ? String(output.dropLast(4)) : output) + ".run"))
            audit = QualityAudit(
                options: try FineTuneOptions.from(rest),
                quality: try SettingsTable.decode(QualityConfig.self, values: qualityValues))
        } catch { fail("\(error)") }
        audit.adapter = adapter
        audit.correlate = correlate
        let view = TrainProgress()
        audit.onEvent = { ev, trainer in view.show(ev, trainer) }
        let result: QualityAudit.Result
        do { result = try audit.run() } catch { fail("\(error)") }
        do { try writeOutputFile(output, QualityAudit.csv(result.rows, correlate: correlate)) } catch {
            fail("\(error)")
        }
        summarise(result)
        do { try writeOutputFile(summaryPath, summaryJSON(result)) } catch { fail("\(error)") }
        print("wrote \(output) (\(result.rows.count) rows, lowest quality first) and \(summaryPath)")
    }

    var summaryPath: String { (output.hasSuffix(".csv") ? String(output.dropLast(4)) : output) + ".summary.json" }

    func summarise(_ r: QualityAudit.Result) {
        let q = r.rows.map(\.quality).sorted()
        func pct(_ p: Double) -> Float { q.isEmpty ? 0 : q[min(q.count - 1, Int(p * Double(q.count - 1)))] }
        print(
            String(
                format: "\n== quality over %d examples: min %.2f  p10 %.2f  median %.2f  p90 %.2f  max %.2f", q.count,
                pct(0), pct(0.1), pct(0.5), pct(0.9), pct(1)))
        print("== the \(min(show, r.rows.count)) lowest (row: quality, label -> predicted, loss: text)")
        for row in r.rows.prefix(show) {
            let text = row.text.count > 90 ? String(row.text.prefix(87)) + "..." : row.text
            print(
                String(
                    format: "  %6d: %6.2f  %@ -> %@  %.2f: ", row.row, row.quality, row.label, row.predicted, row.loss)
                    + text.replacingOccurrences(of: "\n", with: " ")
                    + (row.originalLabel.map { "  [flipped from \($0)]" } ?? ""))
        }
        if !r.detection.isEmpty {
            let flipped = r.rows.filter { $0.originalLabel != nil }.count
            print(
                "== how well each score finds the \(flipped) flipped labels (AUROC; precision among the \(flipped) "
                    + "rows it flags first)"
            )
            for d in r.detection {
                print(
                    pad("  \(d.signal) (\(d.flags) flags)", 26)
                        + String(format: "AUROC %.3f  precision %.3f", d.auroc, d.precision))
            }
        }
        if let c = correlate {
            print("== Spearman correlation with column \(c)")
            for (s, v) in r.correlations { print(pad("  " + s, 14) + String(format: "%+.3f", v)) }
        }
    }

    func pad(_ s: String, _ n: Int) -> String {
        s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count)
    }

    func summaryJSON(_ r: QualityAudit.Result) -> String {
        var o: [String: Any] = ["examples": r.rows.count, "output": output]
        if !r.detection.isEmpty {
            o["flipped"] = r.rows.filter { $0.originalLabel != nil }.count
            o["detection"] = Dictionary(
                uniqueKeysWithValues: r.detection.map {
                    ($0.signal, ["flags": $0.flags, "auroc": $0.auroc, "precision": $0.precision] as [String: Any])
                })
        }
        if let c = correlate { o["spearman_" + c] = Dictionary(uniqueKeysWithValues: r.correlations) }
        let d = (try? JSONSerialization.data(withJSONObject: o, options: [.prettyPrinted, .sortedKeys])) ?? Data()
        return String(decoding: d, as: UTF8.self) + "\n"
    }
}
