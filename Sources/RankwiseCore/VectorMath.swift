/// Vectorised transcendental functions on 16-lane SIMD (AVX-512 / 2x AVX2), used by the hot
/// element-wise kernels. Accuracy: exp within ~2 ulp on [-87, 88]; erf within 1.5e-7 absolute
/// (Abramowitz & Stegun 7.1.26), which keeps GELU within 1e-7·|x| of the exact-erf definition.
public enum VMath {
    public typealias V = SIMD16<Float>

    /// e^x, lanes clamped to [-87.3, 88.7] (0 and +large outside, as float32 allows).
    @inline(__always)
    public static func exp(_ x: V) -> V {
        let xc = x.clamped(lowerBound: V(repeating: -87.3), upperBound: V(repeating: 88.7))
        let log2e: Float = 1.442_695_040_888_963_4
        let n = (xc * log2e).rounded(.toNearestOrEven)
        // r = x - n ln2 in two parts for accuracy
        var r = xc - n * 0.693_145_751_953_125
        r = r - n * 1.428_606_765_330_187_045e-06
        // exp(r) on |r| <= ln2/2, degree-6 Taylor/minimax
        var p = V(repeating: 1.0 / 720)
        p = p * r + 1.0 / 120
        p = p * r + 1.0 / 24
        p = p * r + 1.0 / 6
        p = p * r + 0.5
        p = p * r + 1
        p = p * r + 1
        let bits = (SIMD16<Int32>(n) &+ 127) &<< 23
        return p * unsafeBitCast(bits, to: V.self)
    }

    /// erf(x) (A&S 7.1.26, max abs error 1.5e-7).
    @inline(__always)
    public static func erf(_ x: V) -> V {
        let ax = x.replacing(with: -x, where: x .< 0)
        let t = 1 / (1 + 0.327_591_1 * ax)
        var y = V(repeating: 1.061_405_429)
        y = y * t - 1.453_152_027
        y = y * t + 1.421_413_741
        y = y * t - 0.284_496_736
        y = y * t + 0.254_829_592
        y = y * t
        let r = 1 - y * exp(V(repeating: 0) - ax * ax)
        return r.replacing(with: V(repeating: 0) - r, where: x .< 0)
    }

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    @inline(__always)
    static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
    }
}

extension Ops {
    /// Vectorised exact-erf GELU over `count` elements (tail handled lane-wise).
    static func geluForwardSIMD(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, range: Range<Int>) {
        var i = range.lowerBound
        while i + 16 <= range.upperBound {
            let v = VMath.load(x + i)
            VMath.store(0.5 * v * (1 + VMath.erf(v * invSqrt2)), y + i)
            i += 16
        }
        while i < range.upperBound {
            var v = VMath.V(repeating: 0)
            v[0] = x[i]
            y[i] = (0.5 * v * (1 + VMath.erf(v * invSqrt2)))[0]
            i += 1
        }
    }

    static func geluBackwardSIMD(
        x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, range: Range<Int>
    ) {
        var i = range.lowerBound
        @inline(__always) func grad(_ v: VMath.V) -> VMath.V {
            let cdf = 0.5 * (1 + VMath.erf(v * invSqrt2))
            return cdf + v * invSqrt2Pi * VMath.exp(v * v * -0.5)
        }
        while i + 16 <= range.upperBound {
            VMath.store(VMath.load(dy + i) * grad(VMath.load(x + i)), dx + i)
            i += 16
        }
        while i < range.upperBound {
            var v = VMath.V(repeating: 0)
            v[0] = x[i]
            dx[i] = dy[i] * grad(v)[0]
            i += 1
        }
    }
}
