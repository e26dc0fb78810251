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

    public static func reset() { totals = [:]; order = [] }

    /// Sections with their total seconds, in first-seen order.
    public static var report: [(String, Double)] { order.map { ($0, Double(totals[$0]!) / 1e9) } }
}
