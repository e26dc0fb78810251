import Foundation
import RankwiseCore

/// Something added to a linear layer's output: LoRA, SVD-form adapters. `forward` adds its
/// contribution to `y`; `backward` adds its input gradient to `dx` and accumulates its own parameter
/// gradients. It keeps whatever it needs between the two calls.
public protocol LinearAdapter: AnyObject {
    /// The adapter's parameters (registered in the model's parameter set).
    var params: [Param] { get }
    /// `rowKeys` (`n`, or nil for the rows' indices) key each row's dropout mask (`DropoutKeys`).
    func forward(
        x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, n: Int, training: Bool, seed: UInt64,
        rowKeys: UnsafePointer<UInt64>?)
    func backward(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?, n: Int)
    /// The dense weight update `[out, in]` this adapter is equivalent to (for merging).
    func delta() -> Tensor
    /// When set, `backward` adds each example's squared gradient norm of the adapter's parameters.
    var perExample: PerExampleNorms? { get set }
    /// The update as two factors, `delta() = b · a` with every scale folded into `b` (`[out, r]`, `[r, in]`), for
    /// formats that store low-rank adapters (llama.cpp's); nil when the update is not low-rank or not a fixed matrix
    /// (DoRA's magnitudes, an input gate).
    func lowRankFactors() -> (b: Tensor, a: Tensor)?
}

extension LinearAdapter {
    public func lowRankFactors() -> (b: Tensor, a: Tensor)? { nil }

    /// `forward` with rows keyed by their index.
    public func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, n: Int, training: Bool, seed: UInt64) {
        forward(x: x, y: y, n: n, training: training, seed: seed, rowKeys: nil)
    }
}

/// A linear layer `y = x Wᵀ + b` over a frozen or trainable weight, optionally with an adapter.
public final class Linear {
    /// The module path in Hugging Face naming (the backbone's tensor names without `.weight`).
    public let path: String
    /// The transformer block the layer belongs to (0-based), set by the backbone that built it; nil outside the blocks.
    public let layer: Int?
    /// The layer's role, a short label the backbone gives (`query`, `attn.out`, …): rank tables group by it.
    public let kind: String?
    public let weight: Param
    public let bias: Param?
    public var adapter: LinearAdapter?
    /// When set, `backward` calls it with `(dy, x, n)`: the weight's gradient is `dyᵀ x`, which a method
    /// can measure for a frozen weight without storing it (TsqLoRA's sensitivity warm-up).
    public var weightGradientObserver: ((UnsafePointer<Float>, UnsafePointer<Float>, Int) -> Void)?
    public var inDim: Int { weight.shape[1] }
    public var outDim: Int { weight.shape[0] }

    public init(path: String, weight: Param, bias: Param?, layer: Int? = nil, kind: String? = nil) {
        self.path = path
        self.weight = weight
        self.bias = bias
        self.layer = layer
        self.kind = kind
    }

    /// True when this layer or its adapter has a trainable parameter.
    public var hasTrainable: Bool {
        weight.trainable || (bias?.trainable ?? false) || (adapter?.params.contains { $0.trainable } ?? false)
    }

    @inline(__always)
    public func forward(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, n: Int, training: Bool = false, seed: UInt64 = 0,
        rowKeys: UnsafePointer<UInt64>? = nil
    ) {
        Ops.linearForward(x: x, w: weight.value.data, b: bias?.value.data, y: y, n: n, inDim: inDim, outDim: outDim)
        adapter?.forward(x: x, y: y, n: n, training: training, seed: seed, rowKeys: rowKeys)
    }

    /// Writes (or accumulates) `dx` when given; accumulates weight and bias gradients when trainable.
    @inline(__always)
    public func backward(
        dy: UnsafePointer<Float>, x: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?, n: Int,
        accumulate: Bool = false
    ) {
        Ops.linearBackward(
            dy: dy, x: x, w: weight.value.data, dx: dx, dw: weight.grad?.data, db: bias?.grad?.data,
            n: n, inDim: inDim, outDim: outDim, accumulateDx: accumulate)
        weightGradientObserver?(dy, x, n)
        adapter?.backward(dy: dy, x: x, dx: dx, n: n)
    }
}

/// A layer norm's parameters.
public struct LayerNormParams {
    public let gamma: Param
    public let beta: Param
}
