import Data
import FineTuning
import Foundation
import Models
import SafeTensors

/// One run directory as a self-contained HTML page (`rankwise report RUN_DIR`): loss and metric curves,
/// the rank of every module over training, the final ranks per layer and module type, TsqLoRA's quality
/// scores with the lowest- and highest-scoring examples, the confusion matrix and the configuration.
public enum RunReport {
    /// A run directory's files, read once.
    public struct Run {
        public var directory: String
        public var record: [String: Any]  // run.json
        public var results: [String: Any]  // results.json ([:] while unfinished)
        public var events: [[String: Any]]  // metrics.jsonl
        public var name: String { (directory as NSString).lastPathComponent }
        public var method: String { record["method"] as? String ?? results["method"] as? String ?? "?" }
        public var regression: Bool { (record["data"] as? [String: Any])?["regression"] as? Bool ?? false }
        /// A causal language model's run (its head's primary metric is perplexity).
        public var isLanguageModel: Bool { results["primary_metric"] as? String == "perplexity" }
        public func events(_ kind: String) -> [[String: Any]] { events.filter { $0["event"] as? String == kind } }
        /// Block and kind of every module: results.json's map, or one guessed from the module paths of an older run.
        public var modules: ModuleMap {
            var paths = Set((results["ranks"] as? [String: Int] ?? [:]).keys)
            for e in events("initial_ranks") + events("ranks") {
                paths.formUnion((e["ranks"] as? [String: Any] ?? [:]).keys)
            }
            return ModuleMap(stored: results["modules"], paths: paths)
        }

        public init(directory: String) throws {
            self.directory = directory
            guard let d = FileManager.default.contents(atPath: directory + "/run.json") else {
                throw DataError("\(directory): no run.json (not a Rankwise run directory)")
            }
            guard let r = (try? JSONSerialization.jsonObject(with: d)) as? [String: Any] else {
                throw DataError("\(directory)/run.json: not a JSON object")
            }
            record = r
            if let d = FileManager.default.contents(atPath: directory + "/results.json") {
                guard let r = (try? JSONSerialization.jsonObject(with: d)) as? [String: Any] else {
                    throw DataError("\(directory)/results.json: not a JSON object (damaged?)")
                }
                results = r
            } else {
                results = [:]
            }
            events = []
            if let m = FileManager.default.contents(atPath: directory + "/metrics.jsonl") {
                for line in m.split(separator: UInt8(ascii: "\n")) {
                    if let o = (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any] {
                        events.append(o)
                    }
                }
            }
        }

        /// The training loss per logged step.
        public var lossCurve: [(Double, Double)] {
            events("train").compactMap { e in num(e["step"]).flatMap { s in num(e["loss"]).map { (s, $0) } } }
        }
        /// A dev metric per evaluation.
        public func devCurve(_ key: String) -> [(Double, Double)] {
            events("eval").compactMap { e in
                num(e["step"]).flatMap { s in num(e["dev_" + key] ?? e[key]).map { (s, $0) } }
            }
        }
    }

    static func num(_ v: Any?) -> Double? { (v as? NSNumber)?.doubleValue }

    /// A per-layer x per-module-type grid of `values` (module name → value) as a labelled heatmap.
    static func layerGrid(
        _ values: [String: Double], modules: ModuleMap, title: String, lo: Double? = nil, hi: Double? = nil
    ) -> String {
        let parsed = values.compactMap { k, v in modules.place(k).map { ($0.layer, $0.kind, v) } }
        let layers = Set(parsed.map(\.0)).sorted()
        let types = Set(parsed.map(\.1)).sorted {
            modules.kindRank($0) != modules.kindRank($1) ? modules.kindRank($0) < modules.kindRank($1) : $0 < $1
        }
        let grid = layers.map { l in types.map { t in parsed.first { $0.0 == l && $0.1 == t }?.2 } }
        let vs = parsed.map(\.2)
        return SVG.heatmap(
            rows: layers.map { "layer \($0)" }, columns: types, values: grid, lo: lo ?? (vs.min() ?? 0),
            hi: hi ?? (vs.max() ?? 1),
            title: title, cell: (w: 58, h: 20), labels: true)
    }

    /// The page for `directory`.
    public static func html(runDirectory directory: String) throws -> String {
        let run = try Run(directory: directory)
        var body = "<h1>Rankwise run \(SVG.escape(run.name))</h1>"
        let data = run.record["data"] as? [String: Any] ?? [:]
        let train = data["train"] as? String ?? "?"
        let trainShown = train.split(separator: "/").suffix(2).joined(separator: "/")
        body +=
            "<p class=\"sub\">\(SVG.escape(run.method)) on \(SVG.escape(trainShown))"
            + (run.results.isEmpty ? " (unfinished: no results.json yet)" : "") + " · \(SVG.escape(directory))</p>"
        body += collapse(run)
        body += kpis(run)
        body += "<h2>Training</h2><div class=\"grid\">" + curves(run) + "</div>"
        body += ranks(run)
        body += quality(run)
        body += confusion(run)
        body += generations(run)
        let config =
            (try? JSONSerialization.data(withJSONObject: run.record, options: [.prettyPrinted, .sortedKeys])).map {
                String(decoding: $0, as: UTF8.self)
            } ?? ""
        body += "<h2>Configuration (run.json)</h2><pre>\(SVG.escape(config))</pre>"
        body +=
            "<p class=\"note\">Written by <code>rankwise report</code> from run.json, metrics.jsonl, results.json and "
            + "the adapters' quality.csv.</p>"
        return SVG.page(title: "Rankwise · \(run.name)", body: body)
    }

    /// Writes the page atomically to `output` (default `RUN_DIR/report.html`); returns the path.
    @discardableResult
    public static func write(runDirectory: String, output: String? = nil) throws -> String {
        try SVG.write(try html(runDirectory: runDirectory), to: output ?? runDirectory + "/report.html")
    }

    /// A banner when the run's model collapsed (results.json), else nothing.
    static func collapse(_ run: Run) -> String {
        guard let c = run.results["collapse"] as? [String: [String: Any]], !c.isEmpty else { return "" }
        let lines = c.keys.sorted().compactMap { set in
            (c[set]?["message"] as? String).map { "<b>Collapsed (\(SVG.escape(set)))</b>: \(SVG.escape($0))" }
        }
        return "<div class=\"alert\">" + lines.joined(separator: "<br>") + "</div>"
    }

    static func kpis(_ run: Run) -> String {
        let r = run.results
        var items: [(String, String)] = []
        let keys =
            run.isLanguageModel
            ? ["test_perplexity", "test_rouge1", "test_rouge2", "test_rougeL", "dev_perplexity"]
            : run.regression
                ? ["test_pearson", "test_spearman", "test_mse", "dev_pearson"]
                : ["test_accuracy", "test_macro_f1", "test_mcc", "dev_macro_f1"]
        for k in keys {
            if let v = num(r[k]) {
                items.append((k.replacingOccurrences(of: "_", with: " "), String(format: "%.4f", v)))
            }
        }
        if let v = num(r["trainable_parameters"]) { items.append(("trainable parameters", String(format: "%.0f", v))) }
        if let ranks = r["ranks"] as? [String: Int] {
            items.append(("final rank total", "\(ranks.values.reduce(0, +)) over \(ranks.count) modules"))
        }
        if let v = num(r["steps"]) { items.append(("steps", String(format: "%.0f", v))) }
        if let v = num(r["train_seconds"]) { items.append(("train time", String(format: "%.0f s", v))) }
        if let v = num(r["tokens_per_s"]) { items.append(("tokens/s", String(format: "%.0f", v))) }
        if let v = num(r["peak_rss_mib"]) { items.append(("peak memory", String(format: "%.0f MiB", v))) }
        return items.map { "<span class=\"kpi\">\(SVG.escape($0.0))<b>\(SVG.escape($0.1))</b></span>" }.joined()
    }

    static func curves(_ run: Run) -> String {
        let loss = run.lossCurve
        let devLoss = run.devCurve("loss")
        var s = SVG.lineChart(
            [
                SVG.Series(name: "train loss (window mean)", points: loss, color: SVG.palette[0]),
                SVG.Series(name: "dev loss", points: devLoss, color: SVG.palette[1], dots: true),
            ],
            title: "Loss", x: "step", y: "loss", xRange: (0, loss.last?.0 ?? 1))
        let keys =
            run.isLanguageModel ? ["perplexity"] : run.regression ? ["pearson", "spearman"] : ["accuracy", "macro_f1"]
        let last = loss.last?.0 ?? 1
        s += SVG.lineChart(
            keys.enumerated().map {
                SVG.Series(
                    name: "dev " + $0.element, points: run.devCurve($0.element), color: SVG.palette[$0.offset + 2],
                    dots: run.devCurve($0.element).count < 3)
            },
            title: "Dev metrics", x: "step", y: keys.joined(separator: " / "), xRange: (0, last))
        let lr = run.events("train").compactMap { e in num(e["step"]).flatMap { st in num(e["lr"]).map { (st, $0) } } }
        s += SVG.lineChart(
            [SVG.Series(name: "learning rate", points: lr, color: SVG.palette[4])], title: "Learning rate", x: "step",
            y: "lr", width: 360)
        return s
    }

    static func ranks(_ run: Run) -> String {
        var s = "<h2>Ranks</h2>"
        var snapshots: [(Double, [String: Int])] = []
        if let i = run.events("initial_ranks").first, let r = i["ranks"] as? [String: Int] {
            snapshots.append((num(i["step"]) ?? 0, r))
        }
        for e in run.events("ranks") {
            if let r = e["ranks"] as? [String: Int] { snapshots.append((num(e["step"]) ?? 0, r)) }
        }
        let final = run.results["ranks"] as? [String: Int] ?? [:]
        if !final.isEmpty, let steps = num(run.results["steps"]) { snapshots.append((steps, final)) }
        if snapshots.count > 1 {
            let map = run.modules
            let modules = map.sorted(Set(snapshots.flatMap(\.1.keys)))
            // At most ~60 columns: keep evenly spaced snapshots, always the first and the last.
            let stride = max(1, (snapshots.count + 59) / 60)
            let kept = snapshots.enumerated().filter { $0.offset % stride == 0 || $0.offset == snapshots.count - 1 }
                .map(\.element)
            let all = kept.flatMap { $0.1.values }
            s +=
                "<p>Rank of every adapted module over training (rows: modules; columns: rank allocations, by step).</p>"
            s += SVG.heatmap(
                rows: modules.map(map.shortName), columns: kept.map { String(format: "%.0f", $0.0) },
                values: modules.map { m in kept.map { $0.1[m].map(Double.init) } }, lo: Double(all.min() ?? 0),
                hi: Double(all.max() ?? 1),
                title: "Rank per module over training steps",
                cell: (w: max(8, min(22, 900 / Double(kept.count))), h: 11), columnTitle: "step")
        } else if !final.isEmpty {
            s += "<p class=\"note\">\(SVG.escape(run.method)) keeps every module's rank fixed during training.</p>"
        }
        if !final.isEmpty {
            let map = run.modules
            s +=
                "<div class=\"grid\">"
                + layerGrid(
                    final.mapValues(Double.init), modules: map,
                    title: "Final rank per layer and module type (total \(final.values.reduce(0, +)))")
            var perKind: [String: Int] = [:]
            var perLayer: [Int: Int] = [:]
            for (m, r) in final {
                if let p = map.place(m) {
                    perKind[p.kind, default: 0] += r
                    perLayer[p.layer, default: 0] += r
                }
            }
            let kindsShown = perKind.keys.sorted {
                map.kindRank($0) != map.kindRank($1) ? map.kindRank($0) < map.kindRank($1) : $0 < $1
            }
            s += SVG.table(header: ["module type", "total rank"], rows: kindsShown.map { [$0, "\(perKind[$0]!)"] })
            s +=
                SVG.table(
                    header: ["layer", "total rank"], rows: perLayer.keys.sorted().map { ["\($0)", "\(perLayer[$0]!)"] })
                + "</div>"
        }
        if let i = run.events("initial_ranks").first, let sens = i["sensitivity"] as? [String: Any] {
            s +=
                "<p>TsqLoRA's warm-up sensitivity S = mean |W ⊙ ∂L/∂W| of each frozen weight, from which the initial "
                + "ranks were set at step \(num(i["step"]).map { String(format: "%.0f", $0) } ?? "?").</p>"
            s += layerGrid(
                sens.compactMapValues { num($0).map { $0 * 1e6 } }, modules: run.modules,
                title: "Warm-up sensitivity per layer and module type (x 1e-6)")
        }
        return s
    }

    static func quality(_ run: Run) -> String {
        let file = ["final", "best"].map { run.directory + "/\($0)/quality.csv" }.first {
            FileManager.default.fileExists(atPath: $0)
        }
        guard let file, let (cols, recs, _) = try? TableReader.read(path: file, format: .csv) else { return "" }
        guard cols.contains("quality"), cols.contains("example") else { return "" }
        let scored = recs.filter { ($0.fields["scored_at_step"] ?? "0") != "0" }
        var s = "<h2>Data quality (TsqLoRA)</h2>"
        s +=
            "<p>Each example's latest quality score Q = a1·z(‖g‖) + a2·z(ΔL) + a3·z(cos(g, mean g)) from the last "
            + "refresh that scored it "
            + "(\(scored.count) of \(recs.count) examples scored). Low Q means: look at this example; the sampler "
            + "draws it less often.</p>"
        let q = scored.compactMap { Double($0.fields["quality"] ?? "") }
        s += SVG.histogram(q, title: "Distribution of quality scores", x: "quality Q")
        // The examples' texts: the run's data loaded, split and sampled as the run did.
        var texts: [Int: (String, String, Int)] = [:]
        let options = run.record["data"].flatMap { try? JSONSerialization.data(withJSONObject: $0) }.flatMap {
            try? JSONDecoder().decode(DataOptions.self, from: $0)
        }
        if run.isLanguageModel, let options, let base = try? BaseModel.resolve(options.model, quiet: true),
            let training = run.record["training"] as? [String: Any],
            let splits = try? LanguageModelData.sets(
                try DataSuite.resolve(options, quiet: true), base: base,
                maxLength: training["maxLength"] as? Int ?? 128, print: { _ in })
        {
            for (index, entry) in splits.train.examples.enumerated() {
                let text: String
                switch entry.example {
                case .completion(let prompt, let completion): text = prompt + " → " + completion
                case .conversation(let messages):
                    text = messages.map { "\($0.role): \($0.content)" }.joined(separator: " | ")
                case .text(let plain): text = plain
                }
                texts[index] = (text, "", entry.line)
            }
        } else if let options, let sets = try? FineTuneData.sets(options, print: { _ in }) {
            for (i, e) in sets.train.examples.enumerated() {
                let label =
                    sets.train.regression
                    ? String(format: "%.3g", e.target)
                    : (e.label >= 0 && e.label < sets.train.labelNames.count ? sets.train.labelNames[e.label] : "?")
                texts[i] = (
                    e.text + (e.pair.map { " ‖ " + $0 } ?? ""), label + (sets.flipped[i] != nil ? " (flipped)" : ""),
                    e.line
                )
            }
        }
        let ranked = scored.compactMap { r -> (Int, Double, Record)? in
            guard let i = Int(r.fields["example"] ?? ""), let v = Double(r.fields["quality"] ?? "") else { return nil }
            return (i, v, r)
        }.sorted { $0.1 < $1.1 }
        func rows(_ xs: ArraySlice<(Int, Double, Record)>) -> [[String]] {
            xs.map { i, v, r in
                let t = texts[i]
                return [
                    t.map { "\($0.2)" } ?? "#\(i)", String(format: "%.2f", v),
                    r.fields["grad_norm"].flatMap(Double.init).map { String(format: "%.3g", $0) } ?? "",
                    r.fields["alignment"].flatMap(Double.init).map { String(format: "%.2f", $0) } ?? "",
                    r.fields["loss"].flatMap(Double.init).map { String(format: "%.3f", $0) } ?? "",
                    t?.1 ?? "", String((t?.0 ?? "(text unavailable: the data could not be loaded)").prefix(240)),
                ]
            }
        }
        let header = ["row", "quality", "grad norm", "alignment", "loss", "label", "text"]
        s += "<h3>Lowest quality</h3>" + SVG.table(header: header, rows: rows(ranked.prefix(12)), textColumn: 6)
        s +=
            "<h3>Highest quality</h3>"
            + SVG.table(header: header, rows: rows(ranked.suffix(12).reversed()[...]), textColumn: 6)
        if texts.isEmpty {
            s +=
                "<p class=\"note\">Texts are missing: the run's training data could not be loaded from run.json's "
                + "paths.</p>"
        }
        return s
    }

    static func confusion(_ run: Run) -> String {
        guard let m = run.results["test_confusion"] as? [[Int]], let names = run.results["label_names"] as? [String],
            m.count == names.count,
            m.allSatisfy({ $0.count == names.count })
        else {
            if run.regression, let p = num(run.results["test_pearson"]) {
                return
                    "<h2>Test</h2><p>Regression: Pearson \(String(format: "%.4f", p)), Spearman "
                    + "\(String(format: "%.4f", num(run.results["test_spearman"]) ?? .nan)), MSE "
                    + "\(String(format: "%.4f", num(run.results["test_mse"]) ?? .nan)).</p>"
            }
            return ""
        }
        let hi = Double(m.flatMap { $0 }.max() ?? 1)
        return "<h2>Confusion matrix (test, best adapter)</h2>"
            + SVG.heatmap(
                rows: names.map { "gold " + $0 }, columns: names, values: m.map { $0.map { Double($0) } }, lo: 0,
                hi: hi,
                title: "rows: gold label; columns: predicted",
                cell: (w: max(54, Double(names.map(\.count).max() ?? 4) * 7), h: 22), labels: true)
    }

    /// A causal LM's test replies (OUTPUT/test_generations.jsonl): the best, middle and worst by ROUGE-L.
    static func generations(_ run: Run) -> String {
        guard let text = try? String(contentsOfFile: run.directory + "/test_generations.jsonl", encoding: .utf8) else {
            return ""
        }
        let items = text.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
        }.sorted { (num($0["rougeL"]) ?? 0) > (num($1["rougeL"]) ?? 0) }
        guard !items.isEmpty else { return "" }
        let picks = Array(Set([0, items.count / 2, items.count - 1])).sorted().map { items[$0] }
        let rows = picks.map { item in
            [
                "\(item["line"] ?? "?")", String(format: "%.3f", num(item["rougeL"]) ?? 0),
                String((item["reference"] as? String ?? "").prefix(300)),
                String((item["prediction"] as? String ?? "").prefix(300)),
            ]
        }
        return "<h2>Test generations (greedy, best adapter)</h2><p>\(items.count) replies scored; the best, the middle "
            + "and the worst by ROUGE-L.</p>"
            + SVG.table(header: ["line", "ROUGE-L", "reference", "reply"], rows: rows, textColumn: 3)
    }
}
