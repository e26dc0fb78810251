import Foundation
import Models
import RankwiseCore

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
        for (name, value) in fractions where !(value.isFinite && value >= 0 && value <= 1) {
            throw ModelError("\(method): --\(name) must be a fraction between 0 and 1 (got \(value))")
        }
    }

    /// Help for a step option with a fraction default.
    public static func stepHelp(_ what: String, fractionFlag: String) -> String {
        "\(what) in steps [none: --\(fractionFlag) of the run's steps]"
    }
}

/// The warm-up before an adaptive method starts changing ranks and the final phase in which they stay
/// fixed: explicit step counts, or (the default) fractions of the run. Every adaptive method's config
/// holds one as `phases`; the options keep their flat names (`--tinit`, `--tfinal-fraction`).
public struct PhaseSettings: Settings, Sendable, Equatable {
    public var tinit: Int? = nil
    public var tfinal: Int? = nil
    public var tinitFraction = 0.1
    public var tfinalFraction = 0.2
    public init() {}

    public static let help = [
        "tinit": RunPhases.stepHelp("warm-up before ranks change", fractionFlag: "tinit-fraction"),
        "tfinal": RunPhases.stepHelp("final phase with fixed ranks", fractionFlag: "tfinal-fraction"),
        "tinitFraction": "warm-up as a fraction of the run's steps (when --tinit is not given)",
        "tfinalFraction": "final phase as a fraction of the run's steps (when --tfinal is not given)",
    ]

    /// The warm-up and the final phase in steps, for a run of `totalStep` steps; a warm-up fraction above 0 is at
    /// least one step in a run of two or more (TsqLoRA measures its sensitivities in it).
    public func steps(of totalStep: Int) -> (tinit: Int, tfinal: Int) {
        (
            RunPhases.steps(
                tinit, fraction: tinitFraction, of: totalStep, minimum: tinitFraction > 0 && totalStep > 1 ? 1 : 0),
            RunPhases.steps(tfinal, fraction: tfinalFraction, of: totalStep)
        )
    }

    /// Rejects fractions outside [0, 1] and negative step counts.
    public func validate(method: String) throws {
        try RunPhases.validate(
            [("tinit-fraction", tinitFraction), ("tfinal-fraction", tfinalFraction)], method: method)
        guard (tinit ?? 0) >= 0, (tfinal ?? 0) >= 0 else {
            throw ModelError("\(method): --tinit and --tfinal must not be negative")
        }
    }
}
