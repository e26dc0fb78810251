import Data
import Foundation
import Methods
import Metrics
import Models
import RankwiseCore
import SafeTensors
import Training

/// One training example's audit line.
public struct QualityRow: Sendable {
    /// The example's line (CSV/TSV: the line its record starts on, header = 1) or record number (JSONL).
    public var row: Int
    public var quality: Float, gradNorm: Float, reduction: Float, alignment: Float, loss: Float
    public var probability: Double
    public var label: String, predicted: String, text: String
    /// With `--flip-labels`: the label before flipping (nil: not flipped).
    public var originalLabel: String?
    /// The value of `--correlate`'s column, when given.
    public var extra: String?
}

/// How well one signal finds the flipped rows (`--flip-labels`), in the direction that flags them.
public struct NoiseDetection: Sendable {
    public var signal: String
    /// "low" or "high": which end of the signal flags a row.
    public var flags: String
    public var auroc: Double
    /// Precision among the rows flagged first, as many as were flipped.
    public var precision: Double
}

/// `rankwise quality`: scores every training example with TsqLoRA's quality components, using a
/// trained adapter or a short fine-tune first, and writes one CSV line per example, lowest quality first.
public final class QualityAudit {
    public let options: FineTuneOptions
    public let quality: QualityConfig
    /// Score with this trained adapter instead of fine-tuning first.
    public var adapter: String?
    /// A numeric column of the training file to correlate the scores with (e.g. annotator confidence).
    public var correlate: String?
    public var print: (String) -> Void = { Swift.print($0) }
    public var onEvent: (TrainEvent, Trainer) -> Void = { _, _ in }

    public struct Result {
        /// Lowest quality first.
        public var rows: [QualityRow]
        public var detection: [NoiseDetection]
        /// Signal → Spearman correlation with `correlate`'s column.
        public var correlations: [(String, Double)]
    }

    public init(options: FineTuneOptions, quality: QualityConfig) {
        self.options = options
        self.quality = quality
    }

    public func run() throws -> Result {
        try quality.validate()
        let model: TaskModel
        let data: FineTuneData
        if let adapter {
            let l = try AdapterLoader(directory: adapter, modelDirectory: try ModelStore.resolve(options.data.model))
            data = try FineTuneData.load(options: options, print: print)
            guard l.labelNames == data.train.labelNames || data.train.regression else {
                throw TrainError(
                    "\(adapter) was trained with labels \(l.labelNames), the data has \(data.train.labelNames)")
            }
            model = l.model
            model.setTrainable(adapted: l.method.isTrainable)  // gradients of the adapter and the head
        } else {
            print(
                "== fine-tuning first (\(options.method), \(options.training.epochs) epoch(s)): scores are taken from "
                    + "the model at the end"
            )
            let job = FineTuneJob(options: options)
            job.print = print
            job.onEvent = onEvent
            _ = try job.run()
            model = job.trainer!.model
            data = job.data!
        }
        print(
            "== scoring \(data.train.examples.count) training examples (\(quality.scoring.rawValue) gradients, "
                + "loss reduction \(quality.lossReduction.rawValue))"
        )
        let all = Array(0..<data.trainTokens.count)
        let s = try QualityScorer.score(
            model: model, data: data.trainTokens, indices: all, config: quality,
            learningRate: options.training.lr, batchSize: 64)
        let q = s.quality(quality)
        let p = QualityScores.probabilities(quality: q, tau: quality.tau, floor: quality.floor)
        let names = data.train.labelNames
        func label(_ i: Int) -> String {
            data.train.regression ? "\(data.train.examples[i].target)" : names[data.train.examples[i].label]
        }
        var extra: [Int: String] = [:]
        if let correlate { extra = try columnValues(correlate) }
        var rows = all.map { i -> QualityRow in
            let e = data.train.examples[i]
            return QualityRow(
                row: e.line, quality: q[i], gradNorm: s.gradNorm[i], reduction: s.reduction[i],
                alignment: s.alignment[i], loss: s.loss[i],
                probability: p[i], label: label(i), predicted: data.train.regression ? "" : names[s.predicted[i]],
                text: e.pair.map { e.text + " [SEP] " + $0 } ?? e.text,
                originalLabel: data.flipped[i].map { names[$0] }, extra: extra[e.line])
        }
        var result = Result(rows: [], detection: [], correlations: [])
        let signals: [(String, String, [Float])] = [
            ("quality", "low", q), ("grad_norm", "high", s.gradNorm), ("reduction", "high", s.reduction),
            ("alignment", "low", s.alignment), ("loss", "high", s.loss),
        ]
        if !data.flipped.isEmpty {
            let positive = all.map { data.flipped[$0] != nil }
            for (name, end, v) in signals {
                let score = v.map { Double(end == "low" ? -$0 : $0) }
                result.detection.append(
                    NoiseDetection(
                        signal: name, flags: end, auroc: Ranking.auroc(scores: score, positives: positive),
                        precision: Ranking.precision(atTop: data.flipped.count, scores: score, positives: positive)))
            }
        }
        if correlate != nil {
            let have = all.filter { Double(extra[data.train.examples[$0].line] ?? "") != nil }
            let target = have.map { Double(extra[data.train.examples[$0].line]!)! }
            for (name, _, v) in signals {
                result.correlations.append((name, Ranking.spearman(have.map { Double(v[$0]) }, target)))
            }
        }
        rows.sort { ($0.quality, $0.row) < ($1.quality, $1.row) }
        result.rows = rows
        return result
    }

    /// Values of `column` in the training file by line number.
    func columnValues(_ column: String) throws -> [Int: String] {
        let path = try ModelStore.resolveData(options.data.train!, quiet: true)
        let (columns, records, _) = try TableReader.read(path: path)
        guard columns.contains(column) else {
            throw TrainError(
                "--correlate: \(path) has no column \"\(column)\" (it has \(columns.joined(separator: ", ")))")
        }
        var out: [Int: String] = [:]
        for r in records { if let v = r.fields[column] { out[r.line] = v } }
        return out
    }

    /// The CSV: one line per example, lowest quality first.
    public static func csv(_ rows: [QualityRow], correlate: String?) -> String {
        func field(_ s: String) -> String {
            s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
                ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
        }
        let flipped = rows.contains { $0.originalLabel != nil }
        var out =
            "row,quality,grad_norm,reduction,alignment,probability,label,predicted,loss"
            + (flipped ? ",flipped,original_label" : "")
            + (correlate.map { "," + field($0) } ?? "") + ",text\n"
        for r in rows {
            var line =
                "\(r.row),\(r.quality),\(r.gradNorm),\(r.reduction),\(r.alignment),\(r.probability),"
                + "\(field(r.label)),\(field(r.predicted)),\(r.loss)"
            if flipped { line += r.originalLabel.map { ",1," + field($0) } ?? ",0," + field(r.label) }
            if correlate != nil { line += "," + field(r.extra ?? "") }
            out += line + "," + field(r.text) + "\n"
        }
        return out
    }
}
