import Foundation
import Models

/// Phase lengths of the adaptive methods (warm-up, final phase, allocation interval, windows), given in
/// steps or as fractions of the run. A fraction is the default, so that a 63-step run and a 10,000-step
/// run both prune and grow at sensible moments; an explicit step count wins.
public enum RunPhases {
    /// `explicit` when given, else `fraction` of `total` steps rounded down, and at least `minimum`.
    public static func steps(_ explicit: Int?, fraction: Double, of total: Int, minimum: Int = 0) -> Int {
        if let explicit { return explicit }
        return max(minimum, Int((Double(total) * fraction + 1e-9).rounded(.down)))
    }

    /// Rejects fractions outside [0, 1] (`name` is the option's flag without dashes).
    public static func validate(_ fractions: [(name: String, value: Double)], method: String) throws {
        for (name, v) in fractions where !(v.isFinite && v >= 0 && v <= 1) {
            throw ModelError("\(method): --\(name) must be a fraction between 0 and 1 (got \(v))")
        }
    }

    /// Help for a step option with a fraction default.
    public static func stepHelp(_ what: String, fractionFlag: String) -> String {
        "\(what) in steps [none: --\(fractionFlag) of the run's steps]"
    }
}
