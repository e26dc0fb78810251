import Foundation

/// Optional wall-clock accounting per named section (`rankwise bench ... --profile`). Off by default;
/// when off a section costs one branch.
public enum Profiler {
    nonisolated(unsafe) public static var enabled = false
    nonisolated(unsafe) private static var totals: [String: UInt64] = [:]
    nonisolated(unsafe) private static var order: [String] = []

    @inline(__always)
    public static func section<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
        if !enabled { return try body() }
        let t0 = DispatchTime.now().uptimeNanoseconds
        let r = try body()
        let dt = DispatchTime.now().uptimeNanoseconds - t0
        if totals[name] == nil { order.append(name) }
        totals[name, default: 0] += dt
        return r
    }

    public static func reset() {
        totals = [:]
        order = []
    }

    /// Sections with their total seconds, in first-seen order.
    public static var report: [(String, Double)] { order.map { ($0, Double(totals[$0]!) / 1e9) } }
}

/// Peak resident memory of the process (Linux `VmHWM`), in MiB; 0 where unavailable.
public func peakRSSMiB() -> Double {
    guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = s.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
    else { return 0 }
    return statusMiB(line)
}

/// The MiB of a `/proc/self/status` line such as "VmHWM:\t 123456 kB": the number follows the tab padded to 8
/// columns, so from 10 GB on no space separates them.
func statusMiB(_ line: Substring) -> Double {
    let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
    return (fields.dropFirst().first.flatMap { Double($0) } ?? 0) / 1024
}

/// Resets the peak resident memory to the current one (Linux `/proc/self/clear_refs`), so that
/// `peakRSSMiB` measures the next piece of work alone. Returns false where unsupported.
@discardableResult
public func resetPeakRSS() -> Bool {
    guard let h = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return false }
    defer { try? h.close() }
    return (try? h.write(contentsOf: Data("5".utf8))) != nil
}
