import Foundation
import SafeTensors

/// Inline SVG charts for the HTML reports: plain strings, no script, no external resource.
public enum SVG {
    /// Escapes text for HTML and SVG content and attribute values.
    public static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.count)
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }

    /// Categorical colours (colour-blind friendly, Okabe-Ito), by series index.
    public static let palette = [
        "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
    ]

    /// A sequential colour from white (0) to dark blue (1).
    public static func ramp(_ t: Double) -> String {
        let x = max(0, min(1, t.isFinite ? t : 0))
        let (r, g, b) = (247 - x * (247 - 8), 251 - x * (251 - 48), 255 - x * (255 - 107))
        return String(format: "#%02x%02x%02x", Int(r), Int(g), Int(b))
    }

    static func num(_ v: Double) -> String { String(format: "%.1f", v) }

    /// Tick label text for a value on an axis spanning `span`.
    static func tick(_ v: Double, span: Double) -> String {
        if span >= 100 { return String(format: "%.0f", v) }
        if span >= 1 {
            return String(format: "%.2g", v).count > 5 ? String(format: "%.1f", v) : String(format: "%.2g", v)
        }
        return String(format: "%.3g", v)
    }

    /// One line of a chart: its points (sorted by x), a name for the legend and whether to draw dots only.
    public struct Series {
        public var name: String
        public var points: [(Double, Double)]
        public var color: String
        public var dots: Bool
        public var width: Double
        public init(name: String, points: [(Double, Double)], color: String, dots: Bool = false, width: Double = 1.6) {
            self.name = name
            self.points = points.filter { $0.0.isFinite && $0.1.isFinite }
            self.color = color
            self.dots = dots
            self.width = width
        }
    }

    /// A line chart with axes, ticks, axis titles and a legend (one entry per distinct name).
    /// `xRange`: the x axis to show at least (e.g. 0 to the last step, when one evaluation is all there is).
    public static func lineChart(
        _ series: [Series], title: String, x xTitle: String, y yTitle: String,
        width: Double = 560, height: Double = 260, xRange: (Double, Double)? = nil
    ) -> String {
        let all = series.flatMap(\.points)
        guard !all.isEmpty else { return "<p class=\"note\">\(escape(title)): no data.</p>" }
        let (l, r, t, b) = (58.0, 12.0, 26.0, 40.0)
        var x0 = all.map(\.0).min()!
        var x1 = all.map(\.0).max()!
        var y0 = all.map(\.1).min()!
        var y1 = all.map(\.1).max()!
        if let (a, z) = xRange {
            x0 = min(x0, a)
            x1 = max(x1, z)
        }
        if x1 == x0 {
            x0 -= 1
            x1 += 1
        }
        if y1 == y0 {
            let d = max(abs(y0) * 0.1, 1e-9)
            y0 -= d
            y1 += d
        }
        let pad = (y1 - y0) * 0.05
        let nonNegative = y0 >= 0
        y0 -= pad
        y1 += pad
        if nonNegative { y0 = max(0, y0) }
        let pw = width - l - r
        let ph = height - t - b
        func px(_ x: Double) -> Double { l + (x - x0) / (x1 - x0) * pw }
        func py(_ y: Double) -> Double { t + (1 - (y - y0) / (y1 - y0)) * ph }
        var s =
            "<svg class=\"chart\" viewBox=\"0 0 \(num(width)) \(num(height))\" width=\"\(num(width))\" "
            + "height=\"\(num(height))\" role=\"img\" aria-label=\"\(escape(title))\">"
        s += "<text x=\"\(num(l))\" y=\"16\" class=\"title\">\(escape(title))</text>"
        s +=
            "<rect x=\"\(num(l))\" y=\"\(num(t))\" width=\"\(num(pw))\" height=\"\(num(ph))\" fill=\"#fff\" "
            + "stroke=\"#ccc\"/>"
        for i in 0...4 {
            let yv = y0 + (y1 - y0) * Double(i) / 4
            let xv = x0 + (x1 - x0) * Double(i) / 4
            s +=
                "<line x1=\"\(num(l))\" x2=\"\(num(l + pw))\" y1=\"\(num(py(yv)))\" y2=\"\(num(py(yv)))\" "
                + "stroke=\"#eee\"/>"
            s +=
                "<text x=\"\(num(l - 4))\" y=\"\(num(py(yv) + 4))\" text-anchor=\"end\" "
                + "class=\"tick\">\(tick(yv, span: y1 - y0))</text>"
            s +=
                "<text x=\"\(num(px(xv)))\" y=\"\(num(t + ph + 14))\" text-anchor=\"middle\" "
                + "class=\"tick\">\(tick(xv, span: x1 - x0))</text>"
        }
        s +=
            "<text x=\"\(num(l + pw / 2))\" y=\"\(num(height - 6))\" text-anchor=\"middle\" "
            + "class=\"axis\">\(escape(xTitle))</text>"
        s +=
            "<text x=\"12\" y=\"\(num(t + ph / 2))\" text-anchor=\"middle\" class=\"axis\" transform=\"rotate(-90 12 "
            + "\(num(t + ph / 2)))\">\(escape(yTitle))</text>"
        for se in series where !se.points.isEmpty {
            if se.dots || se.points.count == 1 {
                for (x, y) in se.points {
                    s +=
                        "<circle cx=\"\(num(px(x)))\" cy=\"\(num(py(y)))\" r=\"3\" "
                        + "fill=\"\(se.color)\"><title>\(escape(se.name)): \(tick(y, span: y1 - y0)) at "
                        + "\(tick(x, span: x1 - x0))</title></circle>"
                }
            } else {
                let d = se.points.map { "\(num(px($0.0))),\(num(py($0.1)))" }.joined(separator: " ")
                s +=
                    "<polyline fill=\"none\" stroke=\"\(se.color)\" stroke-width=\"\(num(se.width))\" "
                    + "stroke-opacity=\"0.85\" points=\"\(d)\"><title>\(escape(se.name))</title></polyline>"
            }
        }
        var seen = Set<String>()
        var lx = l + 8
        for se in series where !se.points.isEmpty && seen.insert(se.name).inserted && seen.count <= 10 {
            s +=
                "<rect x=\"\(num(lx))\" y=\"\(num(t + 6))\" width=\"10\" height=\"10\" fill=\"\(se.color)\"/><text "
                + "x=\"\(num(lx + 13))\" y=\"\(num(t + 15))\" class=\"tick\">\(escape(se.name))</text>"
            lx += 24 + Double(se.name.count) * 6.2
        }
        return s + "</svg>"
    }

    /// A heatmap: one row per `rows` label, one column per `columns` label, each cell coloured by its
    /// value between `lo` and `hi` (nil: empty cell); `labels` writes the value in each cell.
    public static func heatmap(
        rows: [String], columns: [String], values: [[Double?]], lo: Double, hi: Double, title: String,
        cell: (w: Double, h: Double) = (22, 16), labels: Bool = false, columnTitle: String = ""
    ) -> String {
        guard !rows.isEmpty, !columns.isEmpty else { return "<p class=\"note\">\(escape(title)): no data.</p>" }
        let left = Double(rows.map(\.count).max() ?? 4) * 6.4 + 10
        let top = 30.0 + (labels ? Double(columns.map(\.count).max() ?? 3) * 0 + 14 : 14)
        let w = max(left + Double(columns.count) * cell.w + 10, Double(title.count) * 8 + 16)
        let h = top + Double(rows.count) * cell.h + 24
        var s =
            "<svg class=\"chart\" viewBox=\"0 0 \(num(w)) \(num(h))\" width=\"\(num(w))\" height=\"\(num(h))\" "
            + "role=\"img\" aria-label=\"\(escape(title))\">"
        s += "<text x=\"4\" y=\"16\" class=\"title\">\(escape(title))</text>"
        let every = max(1, columns.count / 12)
        for (j, c) in columns.enumerated() where labels || j % every == 0 || j == columns.count - 1 {
            s +=
                "<text x=\"\(num(left + (Double(j) + 0.5) * cell.w))\" y=\"\(num(top - 4))\" text-anchor=\"middle\" "
                + "class=\"tick\">\(escape(c))</text>"
        }
        for (i, r) in rows.enumerated() {
            let y = top + Double(i) * cell.h
            s +=
                "<text x=\"\(num(left - 4))\" y=\"\(num(y + cell.h - 4))\" text-anchor=\"end\" "
                + "class=\"tick\">\(escape(r))</text>"
            for (j, v) in values[i].enumerated() {
                guard let v else { continue }
                let t = hi > lo ? (v - lo) / (hi - lo) : 0.5
                s +=
                    "<rect x=\"\(num(left + Double(j) * cell.w))\" y=\"\(num(y))\" width=\"\(num(cell.w))\" "
                    + "height=\"\(num(cell.h))\" fill=\"\(ramp(t))\"><title>\(escape(r)) @ \(escape(columns[j])): "
                    + "\(tick(v, span: 100))</title></rect>"
                if labels {
                    s +=
                        "<text x=\"\(num(left + (Double(j) + 0.5) * cell.w))\" y=\"\(num(y + cell.h - 4))\" "
                        + "text-anchor=\"middle\" class=\"cell\" "
                        + "fill=\"\(t > 0.55 ? "#fff" : "#222")\">\(tick(v, span: 100))</text>"
                }
            }
        }
        if !columnTitle.isEmpty {
            s += "<text x=\"\(num(left))\" y=\"\(num(h - 6))\" class=\"axis\">\(escape(columnTitle))</text>"
        }
        s +=
            "<text x=\"\(num(w - 10))\" y=\"\(num(h - 6))\" text-anchor=\"end\" class=\"tick\">colour: "
            + "\(tick(lo, span: 100)) (light) to \(tick(hi, span: 100)) (dark)</text>"
        return s + "</svg>"
    }

    /// A histogram of `values` in `bins` equal bins.
    public static func histogram(
        _ values: [Double], bins: Int = 30, title: String, x xTitle: String, width: Double = 560, height: Double = 220
    ) -> String {
        let v = values.filter(\.isFinite)
        guard let lo = v.min(), let hi = v.max(), !v.isEmpty else {
            return "<p class=\"note\">\(escape(title)): no data.</p>"
        }
        let span = hi > lo ? hi - lo : 1
        var counts = [Int](repeating: 0, count: bins)
        for x in v { counts[min(bins - 1, Int((x - lo) / span * Double(bins)))] += 1 }
        let (l, r, t, b) = (50.0, 12.0, 26.0, 40.0)
        let pw = width - l - r
        let ph = height - t - b
        let top = Double(counts.max()!)
        var s =
            "<svg class=\"chart\" viewBox=\"0 0 \(num(width)) \(num(height))\" width=\"\(num(width))\" "
            + "height=\"\(num(height))\" role=\"img\" aria-label=\"\(escape(title))\">"
        s += "<text x=\"\(num(l))\" y=\"16\" class=\"title\">\(escape(title))</text>"
        for (i, c) in counts.enumerated() {
            let bh = top > 0 ? Double(c) / top * ph : 0
            s +=
                "<rect x=\"\(num(l + Double(i) * pw / Double(bins)))\" y=\"\(num(t + ph - bh))\" "
                + "width=\"\(num(pw / Double(bins) - 1))\" height=\"\(num(bh))\" fill=\"#0072B2\"><title>\(c) "
                + "examples in [\(tick(lo + Double(i) * span / Double(bins), span: span)), "
                + "\(tick(lo + Double(i + 1) * span / Double(bins), span: span)))</title></rect>"
        }
        for i in 0...4 {
            let xv = lo + span * Double(i) / 4
            s +=
                "<text x=\"\(num(l + pw * Double(i) / 4))\" y=\"\(num(t + ph + 14))\" text-anchor=\"middle\" "
                + "class=\"tick\">\(tick(xv, span: span))</text>"
        }
        s +=
            "<text x=\"\(num(l - 4))\" y=\"\(num(t + 8))\" text-anchor=\"end\" class=\"tick\">\(Int(top))</text><text "
            + "x=\"\(num(l - 4))\" y=\"\(num(t + ph))\" text-anchor=\"end\" class=\"tick\">0</text>"
        s +=
            "<text x=\"\(num(l + pw / 2))\" y=\"\(num(height - 6))\" text-anchor=\"middle\" "
            + "class=\"axis\">\(escape(xTitle))</text>"
        return s + "</svg>"
    }

    /// Writes a page atomically to `path` and returns the path.
    @discardableResult
    public static func write(_ html: String, to path: String) throws -> String {
        try AtomicFile.write(html, to: path)
        return path
    }

    /// The page around the sections: inline style only.
    public static func page(title: String, body: String) -> String {
        """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(escape(title))</title>
        <style>
        body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1180px; \
        padding: 0 16px; color: #222; background: #fafafa; }
        h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid \
        #ddd; padding-bottom: 3px; }
        .sub { color: #666; margin-top: 0; } .note { color: #666; }
        .alert { background: #fff1f0; border: 1px solid #e0a0a0; border-left: 5px solid #c0392b; padding: 8px 12px; \
        margin: 10px 0; }
        .grid { display: flex; flex-wrap: wrap; gap: 14px; }
        table { border-collapse: collapse; margin: 8px 0; background: #fff; } td, th { border: 1px solid #ddd; \
        padding: 3px 8px; text-align: right; }
        th { background: #f0f0f0; } td.l, th.l { text-align: left; } td.text { text-align: left; max-width: 640px; }
        .kpi { display: inline-block; background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 6px 12px; \
        margin: 4px 8px 4px 0; }
        .kpi b { font-size: 18px; display: block; }
        svg.chart { background: #fff; border: 1px solid #e4e4e4; border-radius: 4px; }
        svg .title { font-size: 13px; font-weight: 600; } svg .tick { font-size: 10px; fill: #555; } svg .axis { \
        font-size: 11px; fill: #333; } svg .cell { font-size: 9px; }
        pre { background: #fff; border: 1px solid #ddd; padding: 8px; overflow-x: auto; font-size: 12px; }
        </style></head><body>
        \(body)
        </body></html>

        """
    }

    /// An HTML table: `header` and `rows` are cell texts (escaped here); the first `leftColumns` columns align left.
    public static func table(header: [String], rows: [[String]], leftColumns: Int = 1, textColumn: Int? = nil) -> String
    {
        var s =
            "<table><tr>"
            + header.enumerated().map {
                "<th class=\"\($0.offset < leftColumns ? "l" : "")\">\(escape($0.element))</th>"
            }.joined() + "</tr>"
        for r in rows {
            s +=
                "<tr>"
                + r.enumerated().map { i, c in
                    "<td class=\"\(i == textColumn ? "text" : i < leftColumns ? "l" : "")\">\(escape(c))</td>"
                }.joined() + "</tr>"
        }
        return s + "</table>"
    }
}
