import CBLAS
import Foundation

/// The system BLAS, loaded at run time.
///
/// OpenBLAS picks its kernels once, when the library initialises, from `OPENBLAS_CORETYPE` or
/// from its own CPU detection, which on some virtualised Xeons reports "Prescott" and runs sgemm
/// 5x slower. Rankwise therefore does not link BLAS at build time: before `dlopen` it reads the CPU
/// features and, unless the user already set `OPENBLAS_CORETYPE`, sets the best core type for the
/// loading process only. `RANKWISE_BLAS` may name a library file (e.g. BLIS) to use instead.
public enum BLAS {
    /// What was chosen and why, for `rankwise doctor`.
    public struct Info: Sendable {
        public var path: String
        public var vendor: String
        public var coreName: String
        public var config: String
        public var threads: Int
        /// The core type Rankwise asked for, or nil when the user's own setting was kept or none was needed.
        public var requestedCoreType: String?
        /// A user-set OPENBLAS_CORETYPE that was respected.
        public var userCoreType: String?
    }

    nonisolated(unsafe) private static var _info: Info?
    private static let lock = NSLock()

    /// Loads the library once; later calls return the same information. Throws when no BLAS is installed.
    @discardableResult
    public static func load() throws -> Info {
        lock.lock()
        defer { lock.unlock() }
        if let i = _info { return i }
        let env = ProcessInfo.processInfo.environment
        let user = env["OPENBLAS_CORETYPE"].flatMap { $0.isEmpty ? nil : $0 }
        var requested: String? = nil
        if user == nil, let core = CPUFeatures.current.openBLASCoreType {
            requested = core
            setenv("OPENBLAS_CORETYPE", core, 1)
        }
        let rc = rw_blas_load(env["RANKWISE_BLAS"])
        if requested != nil { unsetenv("OPENBLAS_CORETYPE") }  // do not leak into child processes
        guard rc == 0 else { throw RankwiseError.blas(String(cString: rw_blas_error())) }
        if let t = env["RANKWISE_THREADS"], let n = Int(t), n > 0 { rw_blas_set_threads(Int32(n)) }
        let info = Info(
            path: String(cString: rw_blas_path()), vendor: String(cString: rw_blas_vendor()),
            coreName: String(cString: rw_blas_corename()), config: String(cString: rw_blas_config()),
            threads: Int(rw_blas_get_threads()), requestedCoreType: requested, userCoreType: user)
        _info = info
        return info
    }

    /// Loads BLAS or stops the process with a clear message (for code paths with no way to throw).
    @inline(__always) static func ensure() {
        if _info == nil {
            do { try load() } catch {
                FileHandle.standardError.write("rankwise: \(error)\n".data(using: .utf8)!)
                exit(2)
            }
        }
    }

    public static var threads: Int {
        get {
            ensure()
            return Int(rw_blas_get_threads())
        }
        set {
            ensure()
            rw_blas_set_threads(Int32(newValue))
        }
    }

    /// Runs `body` with BLAS limited to one thread (for regions that parallelise over many small
    /// products themselves), then restores the thread count.
    public static func singleThreaded(_ body: () -> Void) {
        ensure()
        let n = Int(rw_blas_get_threads())
        if n > 1 { rw_blas_set_threads(1) }
        body()
        if n > 1 { rw_blas_set_threads(Int32(n)) }
    }

    /// Row-major `C = alpha * op(A) op(B) + beta * C` with op(A) m x k and op(B) k x n.
    @inline(__always)
    public static func sgemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        if _info == nil { ensure() }
        rw_sgemm(
            transA ? 1 : 0, transB ? 1 : 0, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda),
            b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Measures sgemm GFLOPS at n x n x n (best of `repeats` after a warm-up).
    public static func measureGFLOPS(n: Int = 1024, repeats: Int = 10) throws -> Double {
        try load()
        let ta = Tensor(zeros: [n, n])
        let tb = Tensor(zeros: [n, n])
        let tc = Tensor(zeros: [n, n])  // 64-byte aligned
        let a = ta.data
        let b = tb.data
        let c = tc.data
        var rng = SplitMix64(seed: 1)
        for i in 0..<(n * n) {
            a[i] = rng.nextFloat() - 0.5
            b[i] = rng.nextFloat() - 0.5
            c[i] = 0
        }
        sgemm(m: n, n: n, k: n, a: a, lda: n, b: b, ldb: n, c: c, ldc: n)
        var best = Double.infinity
        for _ in 0..<repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            sgemm(m: n, n: n, k: n, a: a, lda: n, b: b, ldb: n, c: c, ldc: n)
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            best = min(best, dt)
        }
        return withExtendedLifetime((ta, tb, tc)) { 2 * Double(n) * Double(n) * Double(n) / best / 1e9 }
    }
}

/// CPU features read from /proc/cpuinfo (Linux). Used to choose an OpenBLAS core type.
public struct CPUFeatures: Sendable {
    public var vendor: String
    public var model: String
    public var flags: Set<String>

    public static let current: CPUFeatures = {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else {
            return CPUFeatures(vendor: "unknown", model: "unknown", flags: [])
        }
        var vendor = "unknown"
        var model = "unknown"
        var flags = Set<String>()
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            switch key {
            case "vendor_id": vendor = value
            case "model name": model = value
            case "flags": flags = Set(value.split(separator: " ").map(String.init))
            default: continue
            }
            if !flags.isEmpty && vendor != "unknown" && model != "unknown" { break }
        }
        return CPUFeatures(vendor: vendor, model: model, flags: flags)
    }()

    /// The OpenBLAS core type whose kernels suit this CPU, or nil to let OpenBLAS decide.
    /// AVX-512 (F, CD, BW, DQ, VL) selects SkylakeX on Intel and AMD alike; AVX2 with FMA selects
    /// Haswell (Zen on AMD). OpenBLAS 0.3.21 falls back to Prescott on CPUs it does not know.
    public var openBLASCoreType: String? {
        let avx512 = ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains)
        if avx512 { return "SkylakeX" }
        if flags.contains("avx2") && flags.contains("fma") { return vendor == "AuthenticAMD" ? "Zen" : "Haswell" }
        return nil
    }
}
