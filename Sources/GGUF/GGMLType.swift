/// Element types of GGUF tensors (ggml's type ids) that Rankwise reads, with their block layout.
///
/// A quantised tensor is stored as blocks along its first (fastest) dimension: `blockSize` values in `blockBytes`
/// bytes. The layouts are ggml's (ggml-common.h); `dequantize` is checked block for block against the `gguf`
/// Python package (`scripts/make_gguf_fixtures.py`).
public enum GGMLType: UInt32, Sendable, CaseIterable {
    case f32 = 0
    case f16 = 1
    case q4_0 = 2
    case q4_1 = 3
    case q8_0 = 8
    case q4_K = 12
    case q5_K = 13
    case q6_K = 14
    case bf16 = 30

    /// The name ggml and the `gguf` package use (`Q4_K`).
    public var name: String {
        switch self {
        case .f32: "F32"
        case .f16: "F16"
        case .q4_0: "Q4_0"
        case .q4_1: "Q4_1"
        case .q8_0: "Q8_0"
        case .q4_K: "Q4_K"
        case .q5_K: "Q5_K"
        case .q6_K: "Q6_K"
        case .bf16: "BF16"
        }
    }

    /// Values per block.
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16: 1
        case .q4_0, .q4_1, .q8_0: 32
        case .q4_K, .q5_K, .q6_K: 256
        }
    }

    /// Bytes per block.
    public var blockBytes: Int {
        switch self {
        case .f32: 4
        case .f16, .bf16: 2
        case .q4_0: 18
        case .q4_1: 20
        case .q8_0: 34
        case .q4_K: 144
        case .q5_K: 176
        case .q6_K: 210
        }
    }

    /// ggml's names of the types it knows but Rankwise does not read, for the error message.
    static let otherNames: [UInt32: String] = [
        6: "Q5_0", 7: "Q5_1", 9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS",
        18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16",
        26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
    ]

    /// Writes the `count` values (a whole number of blocks) stored at `source` to `destination` as floats.
    public func dequantize(_ source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>) {
        precondition(count % blockSize == 0, "\(name): \(count) values are not whole blocks of \(blockSize)")
        let blocks = count / blockSize
        for block in 0..<blocks {
            let input = source + block * blockBytes
            let output = destination + block * blockSize
            switch self {
            case .f32: output.pointee = input.loadUnaligned(as: Float.self)
            case .f16: output.pointee = halfAt(input, 0)
            case .bf16: output.pointee = Float(bitPattern: UInt32(input.loadUnaligned(as: UInt16.self)) << 16)
            case .q4_0: Self.dequantizeQ4_0(input, output)
            case .q4_1: Self.dequantizeQ4_1(input, output)
            case .q8_0: Self.dequantizeQ8_0(input, output)
            case .q4_K: Self.dequantizeQ4_K(input, output)
            case .q5_K: Self.dequantizeQ5_K(input, output)
            case .q6_K: Self.dequantizeQ6_K(input, output)
            }
        }
    }

    /// 32 values: f16 scale d, then 16 bytes of 4-bit q (low nibbles the first 16 values); x = (q - 8) d.
    static func dequantizeQ4_0(_ block: UnsafeRawPointer, _ output: UnsafeMutablePointer<Float>) {
        let scale = halfAt(block, 0)
        let quants = block + 2
        for j in 0..<16 {
            let byte = quants.load(fromByteOffset: j, as: UInt8.self)
            output[j] = Float(Int(byte & 0x0F) - 8) * scale
            output[j + 16] = Float(Int(byte >> 4) - 8) * scale
        }
    }

    /// 32 values: f16 scale d, f16 minimum m, 16 bytes of 4-bit q; x = q d + m.
    static func dequantizeQ4_1(_ block: UnsafeRawPointer, _ output: UnsafeMutablePointer<Float>) {
        let scale = halfAt(block, 0)
        let minimum = halfAt(block, 2)
        let quants = block + 4
        for j in 0..<16 {
            let byte = quants.load(fromByteOffset: j, as: UInt8.self)
            output[j] = Float(byte & 0x0F) * scale + minimum
            output[j + 16] = Float(byte >> 4) * scale + minimum
        }
    }

    /// 32 values: f16 scale d, 32 signed bytes q; x = q d.
    static func dequantizeQ8_0(_ block: UnsafeRawPointer, _ output: UnsafeMutablePointer<Float>) {
        let scale = halfAt(block, 0)
        for j in 0..<32 {
            output[j] = Float(block.load(fromByteOffset: 2 + j, as: Int8.self)) * scale
        }
    }

    /// The 6-bit scale and minimum of sub-block `j` (0-7) from the 12 packed bytes of a Q4_K or Q5_K block.
    static func scaleAndMinimum(_ packed: UnsafeRawPointer, _ j: Int) -> (Float, Float) {
        let byte = { (i: Int) in packed.load(fromByteOffset: i, as: UInt8.self) }
        if j < 4 {
            return (Float(byte(j) & 63), Float(byte(j + 4) & 63))
        }
        let scale = (byte(j + 4) & 0x0F) | ((byte(j - 4) >> 6) << 4)
        let minimum = (byte(j + 4) >> 4) | ((byte(j) >> 6) << 4)
        return (Float(scale), Float(minimum))
    }

    /// 256 values in 8 sub-blocks of 32: f16 d, f16 dmin, 12 bytes of 6-bit scales and minima, 128 bytes of 4-bit q
    /// (each 32 bytes hold two sub-blocks: low nibbles, then high); x = d scale q - dmin minimum.
    static func dequantizeQ4_K(_ block: UnsafeRawPointer, _ output: UnsafeMutablePointer<Float>) {
        let scale = halfAt(block, 0)
        let minimumScale = halfAt(block, 2)
        let packed = block + 4
        let quants = block + 16
        for pair in 0..<4 {
            let (lowScale, lowMinimum) = scaleAndMinimum(packed, 2 * pair)
            let (highScale, highMinimum) = scaleAndMinimum(packed, 2 * pair + 1)
            for l in 0..<32 {
                let byte = quants.load(fromByteOffset: 32 * pair + l, as: UInt8.self)
                output[64 * pair + l] = scale * lowScale * Float(byte & 0x0F) - minimumScale * lowMinimum
                output[64 * pair + 32 + l] = scale * highScale * Float(byte >> 4) - minimumScale * highMinimum
            }
        }
    }

    /// Q4_K with a fifth bit per value: after the scales, 32 bytes whose bit i is the high bit of sub-block i.
    static func dequantizeQ5_K(_ block: UnsafeRawPointer, _ output: UnsafeMutablePointer<Float>) {
        let scale = halfAt(block, 0)
        let minimumScale = halfAt(block, 2)
        let packed = block + 4
        let highBits = block + 16
        let quants = block + 48
        for pair in 0..<4 {
            let (lowScale, lowMinimum) = scaleAndMinimum(packed, 2 * pair)
            let (highScale, highMinimum) = scaleAndMinimum(packed, 2 * pair + 1)
            for l in 0..<32 {
                let byte = quants.load(fromByteOffset: 32 * pair + l, as: UInt8.self)
                let high = highBits.load(fromByteOffset: l, as: UInt8.self)
                let lowQuant = (byte & 0x0F) | (((high >> (2 * pair)) & 1) << 4)
                let highQuant = (byte >> 4) | (((high >> (2 * pair + 1)) & 1) << 4)
                output[64 * pair + l] = scale * lowScale * Float(lowQuant) - minimumScale * lowMinimum
                output[64 * pair + 32 + l] = scale * highScale * Float(highQuant) - minimumScale * highMinimum
            }
        }
    }

    /// 256 values in two halves of 128: 128 bytes of low 4 bits, 64 bytes of high 2 bits, 16 signed 8-bit scales
    /// (one per 16 values), f16 d at the end; x = d scale (q - 32).
    static func dequantizeQ6_K(_ block: UnsafeRawPointer, _ output: UnsafeMutablePointer<Float>) {
        let scale = halfAt(block, 208)
        for half in 0..<2 {
            let low = block + 64 * half
            let high = block + 128 + 32 * half
            let scales = block + 192 + 8 * half
            for l in 0..<32 {
                let lowA = low.load(fromByteOffset: l, as: UInt8.self)
                let lowB = low.load(fromByteOffset: l + 32, as: UInt8.self)
                let bits = high.load(fromByteOffset: l, as: UInt8.self)
                let groupScale = { (k: Int) in Float(scales.load(fromByteOffset: 2 * k + l / 16, as: Int8.self)) }
                let quantA = Int((lowA & 0x0F) | ((bits & 3) << 4)) - 32
                let quantB = Int((lowB & 0x0F) | (((bits >> 2) & 3) << 4)) - 32
                let quantC = Int((lowA >> 4) | (((bits >> 4) & 3) << 4)) - 32
                let quantD = Int((lowB >> 4) | (((bits >> 6) & 3) << 4)) - 32
                output[128 * half + l] = scale * groupScale(0) * Float(quantA)
                output[128 * half + 32 + l] = scale * groupScale(1) * Float(quantB)
                output[128 * half + 64 + l] = scale * groupScale(2) * Float(quantC)
                output[128 * half + 96 + l] = scale * groupScale(3) * Float(quantD)
            }
        }
    }
}

/// The IEEE half at `offset` bytes from `base`, as a float.
@inline(__always)
func halfAt(_ base: UnsafeRawPointer, _ offset: Int) -> Float {
    Float(Float16(bitPattern: base.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
}

extension GGMLType {
    /// The types Rankwise writes.
    public static let writable: [GGMLType] = [.f32, .f16, .q8_0]

    /// `values` (a whole number of blocks) in this type's bytes: F32, F16 (round to nearest even), or Q8_0 as
    /// ggml's reference quantiser makes it (per 32 values: d = max |x| / 127 as F16, q = round(x / d)).
    public func encode(_ values: [Float]) -> [UInt8] {
        precondition(Self.writable.contains(self), "\(name) is not a type Rankwise writes")
        precondition(values.count % blockSize == 0, "\(values.count) values are not whole \(name) blocks")
        var bytes: [UInt8] = []
        bytes.reserveCapacity(values.count / blockSize * blockBytes)
        func append16(_ bits: UInt16) {
            bytes.append(UInt8(bits & 0xFF))
            bytes.append(UInt8(bits >> 8))
        }
        switch self {
        case .f32:
            for value in values { withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        case .f16:
            for value in values { append16(Float16(value).bitPattern) }
        default:  // .q8_0
            for start in stride(from: 0, to: values.count, by: 32) {
                let block = values[start..<(start + 32)]
                let largest = block.reduce(Float(0)) { max($0, abs($1)) }
                let scale = largest / 127
                let inverse = scale != 0 ? 1 / scale : 0
                append16(Float16(scale).bitPattern)
                for value in block { bytes.append(UInt8(bitPattern: Int8((value * inverse).rounded()))) }
            }
        }
        return bytes
    }
}
