import FineTuning
import Foundation
import SafeTensors
import Training

/// A `rankwise compare` directory as one page: the results table of every task and every run's curves
/// overlaid (one colour per method), plus where each method put its ranks.
public enum ComparePage {
    /// The finished runs under `directory`, in the order of the grid its results.json records.
    public static func cells(in directory: String) -> [CompareTable.Cell] {
        var grid: CompareOptions? = nil
        if let d = FileManager.default.contents(atPath: directory + "/results.json"),
            let o = (try? JSONSerialization.jsonObject(with: d)) as? [String: Any],
            let stored = o["grid"] as? [String: Any],
            let defaultGrid = try? JSONEncoder().encode(CompareOptions()),
            let defaults = try? JSONSerialization.jsonObject(with: defaultGrid) as? [String: Any],
            let gd = try? JSONSerialization.data(withJSONObject: defaults.merging(stored) { $1 })
        {
            // Over the defaults: a grid written before an option existed (such as --lrs) still gives its order.
            grid = try? JSONDecoder().decode(CompareOptions.self, from: gd)
        }
        return CompareTable.finished(in: directory, first: grid)
    }

    /// Whether `directory` holds a comparison (a results table and task folders) rather than one run.
    public static func isComparison(_ directory: String) -> Bool {
        !FileManager.default.fileExists(atPath: directory + "/run.json") && !cells(in: directory).isEmpty
    }

    public static func html(directory: String) throws -> String {
        let cells = cells(in: directory)
        guard !cells.isEmpty else {
            throw TrainErrorText("\(directory): no finished runs (TASK/METHOD-rBUDGET[-lrLR]-seedSEED/results.json)")
        }
        let table = CompareTable(cells: cells)
        // One colour per method, or per method and budget when the grid has several budgets.
        let severalBudgets = Set(table.rows.map(\.budget)).count > 1
        func series(_ c: CompareTable.Cell) -> String {
            severalBudgets ? "\(c.cell.method) r\(c.cell.budget)" : c.cell.method
        }
        let methods = table.rows.map(\.method).uniqued()
        let names = cells.map(series).uniqued()
        func color(_ name: String) -> String { SVG.palette[(names.firstIndex(of: name) ?? 0) % SVG.palette.count] }
        var body =
            "<h1>Rankwise comparison</h1><p class=\"sub\">\(SVG.escape(directory)) · \(cells.count) finished runs · "
            + "methods: \(SVG.escape(methods.joined(separator: ", ")))</p>"
        body +=
            "<p>Test metrics: mean ± sample standard deviation over seeds (each run's best dev checkpoint); other "
            + "columns are means. "
            + "Final rank total: the sum of the final ranks over all adapted modules (the budget every method "
            + "spends).</p>"
        if table.hasLearningRates {
            body +=
                "<p>Each method's learning rate is the one with the best mean dev metric on the task; the curves and"
                + " ranks show those runs, and every rate tried is listed in results.md.</p>"
        }
        for task in table.rows.map(\.task).uniqued() {
            let rows = table.chosenRows.filter { $0.task == task }
            let mk = rows[0].metricKeys
            body += "<h2>\(SVG.escape(task))</h2>"
            let lrColumn = table.hasLearningRates ? ["lr"] : []
            let metricHeaders = mk.map { $0.replacingOccurrences(of: "_", with: " ") }
            let header =
                ["method", "budget"] + lrColumn + ["seeds"] + metricHeaders + ["collapsed"]
                + CompareTable.columns.map(\.1)
            body += SVG.table(
                header: header,
                rows: rows.map { r in
                    [r.method, "\(r.budget)"] + (table.hasLearningRates ? [r.rateText] : []) + ["\(r.runs.count)"]
                        + mk.map { CompareTable.fmt(r.stat($0), 4, runs: r.runs.count) }
                        + [r.collapsed.isEmpty ? "-" : "\(r.collapsed.count) of \(r.runs.count)"]
                        + CompareTable.columns.map { CompareTable.fmt(r.stat($0.0), $0.2, runs: r.runs.count) }
                }, leftColumns: 1)
            let collapsed = rows.flatMap(\.collapsed)
            if !collapsed.isEmpty {
                body +=
                    "<div class=\"alert\"><b>Collapsed runs</b> (the model stopped telling examples apart; "
                    + "\(SVG.escape(Collapse.fixes))):<br>"
                    + collapsed.map {
                        SVG.escape("\($0.cell.method) r\($0.cell.budget) seed \($0.cell.seed): \($0.collapse ?? "")")
                    }.joined(separator: "<br>") + "</div>"
            }
            let runs = rows.flatMap(\.runs).compactMap { c in
                (try? RunReport.Run(directory: c.directory)).map { (series(c), $0) }
            }
            let metric = rows[0].primaryMetric
            body += "<div class=\"grid\">"
            body += SVG.lineChart(
                runs.map { SVG.Series(name: $0.0, points: $0.1.lossCurve, color: color($0.0), width: 1.2) },
                title: "\(task): training loss, every run", x: "step", y: "loss")
            body += SVG.lineChart(
                runs.map {
                    SVG.Series(
                        name: $0.0, points: $0.1.devCurve(metric), color: color($0.0),
                        dots: $0.1.devCurve(metric).count < 3, width: 1.2)
                },
                title: "\(task): dev \(metric), every run", x: "step", y: metric,
                xRange: (0, runs.compactMap { $0.1.lossCurve.last?.0 }.max() ?? 1))
            // Where each method put its ranks: mean final rank per module type.
            var perKind: [String: [String: Double]] = [:]
            var kinds: [String] = []
            for r in rows {
                var sums: [String: Double] = [:]
                for run in r.runs {
                    let map = run.modules
                    for kind in map.kindOrder where !kinds.contains(kind) { kinds.append(kind) }
                    for (m, v) in (run.results["ranks"] as? [String: Int]) ?? [:] {
                        if let p = map.place(m) { sums[p.kind, default: 0] += Double(v) }
                    }
                }
                perKind[r.method + " r\(r.budget)"] = sums.mapValues { $0 / Double(max(1, r.runs.count)) }
            }
            let names = rows.map { $0.method + " r\($0.budget)" }
            let all = perKind.values.flatMap(\.values)
            body += SVG.heatmap(
                rows: names, columns: kinds, values: names.map { n in kinds.map { perKind[n]?[$0] } },
                lo: all.min() ?? 0, hi: all.max() ?? 1,
                title: "\(task): total final rank per module type (mean over seeds)", cell: (w: 58, h: 20), labels: true
            )
            body += "</div>"
        }
        if let d = FileManager.default.contents(atPath: directory + "/speed.json"),
            let speed = (try? JSONSerialization.jsonObject(with: d)) as? [[String: Any]], !speed.isEmpty
        {
            body +=
                "<h2>Speed next to PyTorch + PEFT</h2><p>Training steps on the same random batches of each task, same "
                + "thread count, measured in the same run.</p>"
            body += SVG.table(
                header: [
                    "task", "method", "Rankwise tokens/s", "PEFT tokens/s", "speed ratio", "Rankwise peak MiB",
                    "PEFT peak MiB", "memory ratio",
                ],
                rows: speed.map { o in
                    let n = { (k: String) in (o[k] as? NSNumber)?.doubleValue ?? .nan }
                    return [
                        o["task"] as? String ?? "", o["method"] as? String ?? "",
                        String(format: "%.0f", n("tokens_per_s")), String(format: "%.0f", n("peer_tokens_per_s")),
                        String(format: "%.2fx", n("tokens_per_s") / n("peer_tokens_per_s")),
                        String(format: "%.0f", n("peak_rss_mib")),
                        String(format: "%.0f", n("peer_peak_rss_mib")),
                        String(format: "%.2fx", n("peak_rss_mib") / n("peer_peak_rss_mib")),
                    ]
                }, leftColumns: 2)
        }
        body +=
            "<p class=\"note\">Written by <code>rankwise report</code>; every run's own page: <code>rankwise report "
            + "DIR/TASK/RUN</code>.</p>"
        return SVG.page(title: "Rankwise comparison", body: body)
    }

    @discardableResult
    public static func write(directory: String, output: String? = nil) throws -> String {
        try SVG.write(try html(directory: directory), to: output ?? directory + "/report.html")
    }
}

struct TrainErrorText: Error, CustomStringConvertible {
    let description: String
    init(_ s: String) { description = s }
}
