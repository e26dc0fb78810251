import Foundation

/// A contiguous, row-major Float32 buffer with a shape.
///
/// A tensor either owns its memory (allocated, 64-byte aligned) or borrows it from an owner that
/// keeps it alive (for example a memory-mapped safetensors file), so that F32 weights are used
/// without a copy. The element pointer never moves for the tensor's lifetime.
public final class Tensor: @unchecked Sendable {
    public let shape: [Int]
    public let count: Int
    public let data: UnsafeMutablePointer<Float>
    private let owned: Bool
    private let owner: AnyObject?

    /// A new zero-filled tensor.
    public init(zeros shape: [Int]) {
        self.shape = shape
        count = shape.reduce(1, *)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        data = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        data.initialize(repeating: 0, count: max(count, 1))
        owned = true
        owner = nil
    }

    /// A tensor with the given values.
    public convenience init(shape: [Int], values: [Float]) {
        self.init(zeros: shape)
        precondition(values.count == count, "Tensor(shape: \(shape)) given \(values.count) values")
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: count) }
    }

    /// A view of memory kept alive by `owner`.
    public init(borrowing pointer: UnsafeMutablePointer<Float>, shape: [Int], owner: AnyObject?) {
        self.shape = shape
        count = shape.reduce(1, *)
        data = pointer
        owned = false
        self.owner = owner
    }

    deinit { if owned { UnsafeMutableRawPointer(data).deallocate() } }

    public var buffer: UnsafeMutableBufferPointer<Float> { .init(start: data, count: count) }
    public var array: [Float] { Array(buffer) }
    public func zero() { data.update(repeating: 0, count: count) }
    /// An owned copy.
    public func copy() -> Tensor {
        let t = Tensor(zeros: shape)
        t.data.update(from: data, count: count)
        return t
    }
    public subscript(i: Int) -> Float {
        get { data[i] }
        set { data[i] = newValue }
    }
}

/// A grow-only scratch buffer: returns a pointer to at least `count` floats, reallocating only when
/// a larger size is asked for, so steady-state training steps do not allocate.
public final class Scratch: @unchecked Sendable {
    private var ptr: UnsafeMutablePointer<Float>?
    private var capacity = 0
    public init() {}
    deinit { if let p = ptr { UnsafeMutableRawPointer(p).deallocate() } }
    public func get(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity || ptr == nil {
            if let p = ptr { UnsafeMutableRawPointer(p).deallocate() }
            let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
            ptr = raw.bindMemory(to: Float.self, capacity: max(count, 1))
            capacity = count
        }
        return ptr!
    }
}

/// Runs `body` over `0..<n` split into chunks on all cores when the work is large enough.
@inline(__always)
public func parallelFor(_ n: Int, minChunk: Int = 1, _ body: (Range<Int>) -> Void) {
    parallelChunks(n, minChunk: minChunk) { _, range in body(range) }
}

/// `parallelFor` that also hands each chunk its index, below `parallelChunkCount(n, minChunk:)`: the index of
/// a per-chunk scratch buffer no other chunk touches.
@inline(__always)
public func parallelChunks(_ n: Int, minChunk: Int = 1, _ body: (_ chunk: Int, _ range: Range<Int>) -> Void) {
    let chunks = parallelChunkCount(n, minChunk: minChunk)
    if chunks <= 1 {
        body(0, 0..<n)
        return
    }
    let per = (n + chunks - 1) / chunks
    DispatchQueue.concurrentPerform(iterations: chunks) { c in
        let lo = c * per
        let hi = min(n, lo + per)
        if lo < hi { body(c, lo..<hi) }
    }
}

/// How many chunks `parallelFor` and `parallelChunks` split `n` items into (1 when it runs them in one go).
@inline(__always)
public func parallelChunkCount(_ n: Int, minChunk: Int = 1) -> Int {
    let workers = Parallel.workers
    if workers <= 1 || n < 2 * minChunk { return 1 }
    return min(workers, (n + minChunk - 1) / minChunk)
}

/// The number of threads element-wise kernels use (defaults to the core count).
public enum Parallel {
    nonisolated(unsafe) public static var workers: Int = {
        if let s = ProcessInfo.processInfo.environment["RANKWISE_THREADS"], let n = Int(s), n > 0 { return n }
        return ProcessInfo.processInfo.activeProcessorCount
    }()
}

/// Lays out buffers one after another in one workspace, each starting on a 64-byte boundary (16 floats).
public struct WorkspaceLayout {
    /// Floats laid out so far: the workspace size to allocate.
    public private(set) var total = 0

    public init() {}

    /// The offset of a new buffer of `count` floats.
    public mutating func take(_ count: Int) -> Int {
        let start = total
        total += (count + 15) / 16 * 16
        return start
    }
}
