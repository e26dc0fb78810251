import Foundation
import Models
import RankwiseCore

/// The settings every LoRA-family method shares: which linear layers get an adapter, its rank,
/// alpha and dropout (PEFT's meanings).
public struct LoRATargeting: Settings, Sendable, Equatable {
    public var r = 8
    public var alpha: Float = 16
    public var loraDropout: Float = 0.05
    /// PEFT `target_modules`: a module is adapted when its path equals an entry or ends with "." + entry.
    /// Empty: the backbone's defaults (`Backbone.defaultTargetModules`), filled in before a method is built.
    public var targetModules: [String] = []
    public init() {}

    public static let help = [
        "r": "rank of every adapter (adaptive methods: the average final rank per module, PEFT's target_r)",
        "alpha": "LoRA alpha (output scale alpha/r)",
        "loraDropout": "dropout on the adapter's input",
        "targetModules": "modules to adapt, PEFT's suffix rule (path equals or ends with .NAME) "
            + "[none: the model's defaults, every linear layer of its blocks]",
    ]

    /// PEFT's matching rule for a list of target names.
    public func matches(_ path: String) -> Bool {
        targetModules.contains { path == $0 || path.hasSuffix("." + $0) }
    }

    public func validate(method: String = "LoRA") throws {
        guard r > 0 else { throw ModelError("\(method): r must be positive (got \(r))") }
        guard loraDropout >= 0 && loraDropout < 1 else {
            throw ModelError("\(method): lora_dropout must be in [0, 1) (got \(loraDropout))")
        }
    }

    /// These settings with an empty `targetModules` replaced by `backbone`'s defaults.
    public func resolved(for backbone: any Backbone) -> LoRATargeting {
        var copy = self
        if copy.targetModules.isEmpty { copy.targetModules = backbone.defaultTargetModules }
        return copy
    }

    /// The targeted linear layers of `model`, or an error listing what could be targeted. `rank` (the
    /// most ranks an adapter will hold) is checked against every target's width before anything is
    /// allocated: a rank above min(in, out) adds nothing and a huge one would exhaust memory.
    public func targets(in model: any Backbone, method: String, rank: Int) throws -> [Linear] {
        let targeting = resolved(for: model)
        let found = model.adaptableLinears.filter { targeting.matches($0.path) }
        guard !found.isEmpty else {
            let shortPaths = model.adaptableLinears.map {
                $0.path.split(separator: ".").suffix(2).joined(separator: ".")
            }
            let available = Set(shortPaths)
            throw ModelError(
                "\(method): target_modules \(targeting.targetModules) match no linear layer (available: "
                    + "\(available.sorted().joined(separator: ", ")))")
        }
        guard rank > 0 else { throw ModelError("\(method): rank must be positive (got \(rank))") }
        if let narrow = found.min(by: { min($0.inDim, $0.outDim) < min($1.inDim, $1.outDim) }),
            rank > min(narrow.inDim, narrow.outDim)
        {
            throw ModelError(
                "\(method): rank \(rank) exceeds the width of \(narrow.path) (\(narrow.outDim) x \(narrow.inDim)); "
                    + "use at most \(min(narrow.inDim, narrow.outDim))"
            )
        }
        return found
    }
}

/// LoRA: `y += scaling · B A dropout(x)` on every targeted module, PEFT's `LoraConfig`.
public struct LoRAConfig: Settings, Sendable, Equatable {
    public var lora = LoRATargeting()
    /// rsLoRA: scale by alpha / √r instead of alpha / r.
    public var rslora = false
    public init() {}
    public static let help = ["rslora": "rsLoRA scaling alpha/sqrt(r) instead of alpha/r"]

    public init(
        r: Int = 8, alpha: Float = 16, dropout: Float = 0.05,
        targetModules: [String] = LoRATargeting().targetModules, useRSLoRA: Bool = false
    ) {
        lora.r = r
        lora.alpha = alpha
        lora.loraDropout = dropout
        lora.targetModules = targetModules
        rslora = useRSLoRA
    }

    public var r: Int { lora.r }
    public var alpha: Float { lora.alpha }
    public var dropout: Float { lora.loraDropout }
    public var targetModules: [String] { lora.targetModules }
    public var useRSLoRA: Bool { rslora }
    public var scaling: Float { useRSLoRA ? alpha / Float(r).squareRoot() : alpha / Float(r) }
    public func matches(_ path: String) -> Bool { lora.matches(path) }
    public func validate() throws { try lora.validate() }
}

/// `y += scaling · B A dropout(x)` with A `[r, in]` and B `[out, r]` (PEFT's `lora_A` / `lora_B`).
public final class LoRAAdapter: LinearAdapter {
    public let a: Param
    public let b: Param
    public let r: Int
    public let scaling: Float
    public let dropout: Float
    public var params: [Param] { [a, b] }
    let inDim: Int, outDim: Int
    // Saved between forward and backward: u = dropout(x) Aᵀ [n, r], and dropout(x) when dropout is on.
    private let uBuf = Scratch(), duBuf = Scratch()
    let inputDropout: InputDropout
    public var perExample: PerExampleNorms?

    public init(path: String, inDim: Int, outDim: Int, config: LoRAConfig, a: Tensor, b: Tensor) {
        self.inDim = inDim
        self.outDim = outDim
        r = config.r
        scaling = config.scaling
        dropout = config.dropout
        inputDropout = InputDropout(p: config.dropout, inDim: inDim)
        self.a = Param(name: path + ".lora_A.weight", value: a)
        self.b = Param(name: path + ".lora_B.weight", value: b)
    }

    public func forward(
        x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, n: Int, training: Bool, seed: UInt64,
        rowKeys: UnsafePointer<UInt64>?
    ) {
        let u = uBuf.get(n * r)
        let src = inputDropout.forward(x, n: n, training: training, seed: seed, rowKeys: rowKeys)
        BLAS.sgemm(transB: true, m: n, n: r, k: inDim, a: src, lda: inDim, b: a.value.data, ldb: inDim, c: u, ldc: r)
        BLAS.sgemm(
            transB: true, m: n, n: outDim, k: r, alpha: scaling, a: u, lda: r, b: b.value.data, ldb: r, beta: 1, c: y,
            ldc: outDim)
    }

    public func backward(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?, n: Int) {
        let u = uBuf.get(n * r)
        let du = duBuf.get(n * r)
        let src = inputDropout.saved(x, n: n)
        if let gb = b.grad {  // dB += scaling · dyᵀ u
            BLAS.sgemm(
                transA: true, m: outDim, n: r, k: n, alpha: scaling, a: dy, lda: outDim, b: u, ldb: r, beta: 1,
                c: gb.data, ldc: r)
        }
        // du = scaling · dy B
        BLAS.sgemm(m: n, n: r, k: outDim, alpha: scaling, a: dy, lda: outDim, b: b.value.data, ldb: r, c: du, ldc: r)
        if let ga = a.grad {  // dA += duᵀ dropout(x)
            BLAS.sgemm(
                transA: true, m: r, n: inDim, k: n, a: du, lda: r, b: src, ldb: inDim, beta: 1, c: ga.data, ldc: inDim)
        }
        if let pe = perExample {
            if b.grad != nil { pe.addLinear(dy: dy, x: u, outDim: outDim, inDim: r, scale: scaling, param: b) }
            if a.grad != nil { pe.addLinear(dy: du, x: src, outDim: r, inDim: inDim, param: a) }
        }
        if let dx { inputDropout.addInputGradient(du: du, a: a.value.data, n: n, r: r, dx: dx) }  // dx += mask ⊙ (du A)
    }

    /// The dense update `scaling · B A` `[out, in]`, for merging.
    public func delta() -> Tensor {
        let d = Tensor(zeros: [outDim, inDim])
        BLAS.sgemm(
            m: outDim, n: inDim, k: r, alpha: scaling, a: b.value.data, lda: r, b: a.value.data, ldb: inDim, c: d.data,
            ldc: inDim)
        return d
    }

    /// `scaling · B` and A.
    public func lowRankFactors() -> (b: Tensor, a: Tensor)? {
        let scaled = b.value.copy()
        for index in 0..<scaled.count { scaled[index] *= scaling }
        return (scaled, a.value.copy())
    }
}

public enum LoRA {
    /// Adds LoRA adapters to every linear layer of `model` that `config` targets, initialised as PEFT
    /// does (A: Kaiming-uniform with a = √5, i.e. U(±1/√in); B: zeros), and registers their
    /// parameters. Returns the adapters by module path. Throws if nothing matches.
    @discardableResult
    public static func attach(to model: any Backbone, config: LoRAConfig, seed: UInt64) throws -> [String: LoRAAdapter]
    {
        try config.validate()
        var rng = SplitMix64(seed: seed)
        var out: [String: LoRAAdapter] = [:]
        for lin in try config.lora.targets(in: model, method: "LoRA", rank: config.r) {
            let ad = LoRAAdapter(
                path: lin.path, inDim: lin.inDim, outDim: lin.outDim, config: config,
                a: initialA(r: config.r, inDim: lin.inDim, rng: &rng),
                b: Tensor(zeros: [lin.outDim, config.r]))
            lin.adapter = ad
            for p in ad.params { model.params.add(p) }
            out[lin.path] = ad
        }
        return out
    }

    /// A `[r, inDim]` as PEFT initialises it: Kaiming-uniform with a = √5, i.e. U(±1/√in), drawn from `rng`.
    public static func initialA(r: Int, inDim: Int, rng: inout SplitMix64) -> Tensor {
        let a = Tensor(zeros: [r, inDim])
        let bound = 1 / Float(inDim).squareRoot()
        for i in 0..<a.count { a[i] = (2 * rng.nextFloat() - 1) * bound }
        return a
    }
}
