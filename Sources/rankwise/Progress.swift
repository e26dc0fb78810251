import Foundation

/// A one-line terminal progress bar on stderr (count, rate, ETA). Silent when stderr is not a
/// terminal, except for a final summary line.
final class ProgressBar {
    let total: Int
    let label: String
    let unit: String
    let start = Date()
    private var last = Date.distantPast
    private let tty = isatty(2) != 0
    var extra: () -> String = { "" }

    init(total: Int, label: String, unit: String = "it") {
        self.total = total
        self.label = label
        self.unit = unit
    }

    func update(_ done: Int, force: Bool = false) {
        guard tty else { return }
        let now = Date()
        if !force && now.timeIntervalSince(last) < 0.1 && done < total { return }
        last = now
        let el = now.timeIntervalSince(start)
        let rate = el > 0 ? Double(done) / el : 0
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let width = 28
        let filled = total > 0 ? min(width, width * done / total) : 0
        let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
        let x = extra()
        stderr(
            String(
                format: "\r\u{1B}[K%@ %@ %d/%d  %.1f %@/s  ETA %@%@", label, bar, done, total, rate, unit,
                Self.clock(eta), x.isEmpty ? "" : "  " + x))
    }

    func finish(_ done: Int) {
        update(done, force: true)
        if tty { stderr("\n") }
    }

    static func clock(_ s: Double) -> String {
        let t = Int(s.rounded())
        return t >= 3600
            ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60) : String(format: "%d:%02d", t / 60, t % 60)
    }
}
