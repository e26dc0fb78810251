import Foundation
import Models
import RankwiseCore

/// Per-group gradient, update and value norms of the trainable parameters, written with the trainer's
/// `train` lines so that a run shows which parts of the adapter learn and how fast (for example whether
/// an SVD adapter's A, E and B get gradient in the first steps). A group is the adapter part a
/// parameter belongs to (`lora_A`, `lora_E`, `lora_B`, `lora_gate.weight`, …: the name from the first
/// `lora_` component on), and anything else is grouped by its first name component (`classifier`).
public final class GroupNorms {
    /// Group names, in order of first appearance, and each parameter's group index.
    public let groups: [String]
    let groupOf: [Int]
    let params: [Param]
    /// The trainable values before the step, so that the update is the difference after it.
    private let before: Tensor
    private var gradSquares: [Double], updateSquares: [Double], valueSquares: [Double]

    public init(params: [Param]) {
        var names: [String] = []
        var index: [String: Int] = [:]
        var of: [Int] = []
        for p in params {
            let g = Self.group(of: p.name)
            if index[g] == nil {
                index[g] = names.count
                names.append(g)
            }
            of.append(index[g]!)
        }
        self.params = params
        groups = names
        groupOf = of
        before = Tensor(zeros: [max(1, params.reduce(0) { $0 + $1.count })])
        gradSquares = Array(repeating: 0, count: names.count)
        updateSquares = gradSquares
        valueSquares = gradSquares
    }

    /// The group of a parameter name: from its first `lora_` component on, else its first component.
    public static func group(of name: String) -> String {
        let parts = name.split(separator: ".")
        if let i = parts.firstIndex(where: { $0.hasPrefix("lora_") }) { return parts[i...].joined(separator: ".") }
        return String(parts.first ?? "")
    }

    /// Before the optimizer step: the gradients' squared norms per group and a copy of the values.
    public func beforeStep() {
        for g in groups.indices { gradSquares[g] = 0 }
        var off = 0
        for (p, g) in zip(params, groupOf) {
            if let grad = p.grad { gradSquares[g] += Self.squares(grad.data, p.count) }
            (before.data + off).update(from: p.value.data, count: p.count)
            off += p.count
        }
    }

    /// After the optimizer step: the updates' and values' squared norms per group.
    public func afterStep() {
        for g in groups.indices {
            updateSquares[g] = 0
            valueSquares[g] = 0
        }
        var off = 0
        for (p, g) in zip(params, groupOf) {
            let w = p.value.data
            let old = before.data + off
            var s: Double = 0
            for i in 0..<p.count {
                let d = Double(w[i] - old[i])
                s += d * d
            }
            updateSquares[g] += s
            valueSquares[g] += Self.squares(w, p.count)
            off += p.count
        }
    }

    /// `{group: {"grad": ‖g‖, "update": ‖Δp‖, "norm": ‖p‖}}` of the last step: gradients before clipping, the
    /// optimizer's update and the values after it (a method's own changes after the step, such as pruning,
    /// growing or SoRA's threshold, are not in them).
    public var record: [String: [String: Double]] {
        var out: [String: [String: Double]] = [:]
        for (g, name) in groups.enumerated() {
            out[name] = [
                "grad": gradSquares[g].squareRoot(), "update": updateSquares[g].squareRoot(),
                "norm": valueSquares[g].squareRoot(),
            ]
        }
        return out
    }

    static func squares(_ p: UnsafePointer<Float>, _ n: Int) -> Double {
        var s: Double = 0
        for i in 0..<n { s += Double(p[i]) * Double(p[i]) }
        return s
    }
}
