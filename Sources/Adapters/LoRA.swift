import Foundation
import Models
import RankwiseCore

/// LoRA settings with PEFT's meanings.
public struct LoRAConfig: Sendable, Equatable, Codable {
    public var r: Int
    public var alpha: Float
    public var dropout: Float
    /// PEFT `target_modules`: a module is adapted when its path equals an entry or ends with "." + entry.
    public var targetModules: [String]
    /// rsLoRA: scale by alpha / √r instead of alpha / r.
    public var useRSLoRA: Bool

    public init(r: Int = 8, alpha: Float = 16, dropout: Float = 0.05,
                targetModules: [String] = ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"],
                useRSLoRA: Bool = false) {
        self.r = r; self.alpha = alpha; self.dropout = dropout; self.targetModules = targetModules; self.useRSLoRA = useRSLoRA
    }

    public var scaling: Float { useRSLoRA ? alpha / Float(r).squareRoot() : alpha / Float(r) }

    /// PEFT's matching rule for a list of target names.
    public func matches(_ path: String) -> Bool {
        targetModules.contains { path == $0 || path.hasSuffix("." + $0) }
    }

    public func validate() throws {
        guard r > 0 else { throw ModelError("LoRA: r must be positive (got \(r))") }
        guard dropout >= 0 && dropout < 1 else { throw ModelError("LoRA: dropout must be in [0, 1) (got \(dropout))") }
        guard !targetModules.isEmpty else { throw ModelError("LoRA: target_modules is empty") }
    }
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
    private let uBuf = Scratch(), xdBuf = Scratch(), maskBuf = Scratch(), duBuf = Scratch()
    private var usedDropout = false

    public init(path: String, inDim: Int, outDim: Int, config: LoRAConfig, a: Tensor, b: Tensor) {
        self.inDim = inDim; self.outDim = outDim; r = config.r
        scaling = config.scaling; dropout = config.dropout
        self.a = Param(name: path + ".lora_A.weight", value: a)
        self.b = Param(name: path + ".lora_B.weight", value: b)
    }

    public func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, n: Int, training: Bool, seed: UInt64) {
        let u = uBuf.get(n * r)
        var src = x
        usedDropout = training && dropout > 0
        if usedDropout {
            let xd = xdBuf.get(n * inDim), mask = maskBuf.get(n * inDim)
            Ops.dropoutForward(x: x, y: xd, mask: mask, count: n * inDim, p: dropout, seed: seed)
            src = UnsafePointer(xd)
        }
        BLAS.sgemm(transB: true, m: n, n: r, k: inDim, a: src, lda: inDim, b: a.value.data, ldb: inDim, c: u, ldc: r)
        BLAS.sgemm(transB: true, m: n, n: outDim, k: r, alpha: scaling, a: u, lda: r, b: b.value.data, ldb: r, beta: 1, c: y, ldc: outDim)
    }

    public func backward(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?, n: Int) {
        let u = uBuf.get(n * r), du = duBuf.get(n * r)
        let src = usedDropout ? UnsafePointer(xdBuf.get(n * inDim)) : x
        if let gb = b.grad {  // dB += scaling · dyᵀ u
            BLAS.sgemm(transA: true, m: outDim, n: r, k: n, alpha: scaling, a: dy, lda: outDim, b: u, ldb: r, beta: 1, c: gb.data, ldc: r)
        }
        // du = scaling · dy B
        BLAS.sgemm(m: n, n: r, k: outDim, alpha: scaling, a: dy, lda: outDim, b: b.value.data, ldb: r, c: du, ldc: r)
        if let ga = a.grad {  // dA += duᵀ dropout(x)
            BLAS.sgemm(transA: true, m: r, n: inDim, k: n, a: du, lda: r, b: src, ldb: inDim, beta: 1, c: ga.data, ldc: inDim)
        }
        guard let dx else { return }
        if usedDropout {  // dx += mask ⊙ (du A)
            let tmp = xdBuf.get(n * inDim)  // dropout(x) is no longer needed
            BLAS.sgemm(m: n, n: inDim, k: r, a: du, lda: r, b: a.value.data, ldb: inDim, c: tmp, ldc: inDim)
            let mask = maskBuf.get(n * inDim)
            for i in 0..<(n * inDim) { dx[i] += tmp[i] * mask[i] }
        } else {
            BLAS.sgemm(m: n, n: inDim, k: r, a: du, lda: r, b: a.value.data, ldb: inDim, beta: 1, c: dx, ldc: inDim)
        }
    }

    /// The dense update `scaling · B A` `[out, in]`, for merging.
    public func delta() -> Tensor {
        let d = Tensor(zeros: [outDim, inDim])
        BLAS.sgemm(m: outDim, n: inDim, k: r, alpha: scaling, a: b.value.data, lda: r, b: a.value.data, ldb: inDim, c: d.data, ldc: inDim)
        return d
    }
}

public enum LoRA {
    /// Adds LoRA adapters to every linear layer of `model` that `config` targets, initialised as PEFT
    /// does (A: Kaiming-uniform with a = √5, i.e. U(±1/√in); B: zeros), and registers their
    /// parameters. Returns the adapters by module path. Throws if nothing matches.
    @discardableResult
    public static func attach(to model: BertModel, config: LoRAConfig, seed: UInt64) throws -> [String: LoRAAdapter] {
        try config.validate()
        var rng = SplitMix64(seed: seed)
        var out: [String: LoRAAdapter] = [:]
        for lin in model.linears where config.matches(lin.path) {
            let a = Tensor(zeros: [config.r, lin.inDim])
            let bound = 1 / Float(lin.inDim).squareRoot()
            for i in 0..<a.count { a[i] = (2 * rng.nextFloat() - 1) * bound }
            let ad = LoRAAdapter(path: lin.path, inDim: lin.inDim, outDim: lin.outDim, config: config, a: a, b: Tensor(zeros: [lin.outDim, config.r]))
            lin.adapter = ad
            for p in ad.params { model.params.add(p) }
            out[lin.path] = ad
        }
        guard !out.isEmpty else {
            throw ModelError("LoRA: target_modules \(config.targetModules) match no linear layer (available: \(Set(model.linears.map { $0.path.split(separator: ".").suffix(2).joined(separator: ".") }).sorted().joined(separator: ", ")))")
        }
        return out
    }
}
