import CMPI
import Foundation

/// The processes one run spans: this process alone, or the ranks of an MPI job (`mpirun -np N rankwise ...`, or
/// `srun` with PMIx). MPI is Open MPI's library, loaded when the launcher's environment says the process is a rank
/// (nothing is needed to run alone); a rank that cannot load it is an error, never a silent single process.
/// Collectives run on the calling thread; only the main thread calls them (MPI_THREAD_FUNNELED).
public final class ProcessGroup: @unchecked Sendable {
    /// This process's rank, 0 when alone.
    public let rank: Int
    /// How many processes run the job, 1 when alone.
    public let size: Int
    /// The MPI library's path and version, nil when alone without MPI.
    public let library: (path: String, version: String)?

    init(rank: Int, size: Int, library: (path: String, version: String)?) {
        self.rank = rank
        self.size = size
        self.library = library
    }

    /// A process on its own: every collective returns its input.
    public static let alone = ProcessGroup(rank: 0, size: 1, library: nil)

    /// The variable that shows this process was started as an MPI rank (Open MPI's mpirun, PMIx under srun), or nil.
    public static func launcherVariable(
        _ environment: [String: String] = ProcessInfo.processInfo.environment
    )
        -> String?
    {
        ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK"].first { environment[$0] != nil }
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var started: Result<ProcessGroup, Error>?

    /// The group of this process, set up on first use: MPI's world when a launcher started it (the library from
    /// `RANKWISE_MPI`, else libmpi.so.40), else `alone`.
    public static func world() throws -> ProcessGroup {
        lock.lock()
        defer { lock.unlock() }
        if let started { return try started.get() }
        let result = Result { try start() }
        started = result
        return try result.get()
    }

    private static func start() throws -> ProcessGroup {
        let environment = ProcessInfo.processInfo.environment
        guard let variable = launcherVariable(environment) else { return alone }
        let path = environment["RANKWISE_MPI"]
        guard rw_mpi_load(path) == 0 else {
            throw RankwiseError.mpi(
                "this process was started as an MPI rank (\(variable) is set) but \(path ?? "libmpi.so.40") could not "
                    + "be loaded: \(String(cString: rw_mpi_error())). Install Open MPI (apt-get install openmpi-bin "
                    + "libopenmpi-dev) or set RANKWISE_MPI to its libmpi.so")
        }
        var rank: Int32 = 0
        var size: Int32 = 0
        try check(rw_mpi_init(&rank, &size), "MPI_Init_thread")
        let library = (String(cString: rw_mpi_path()), String(cString: rw_mpi_version()))
        return ProcessGroup(rank: Int(rank), size: Int(size), library: library)
    }

    private static func check(_ code: Int32, _ call: String, rank: Int? = nil) throws {
        guard code != 0 else { return }
        let detail = String(cString: rw_mpi_error())
        throw RankwiseError.mpi(
            "\(call) failed with code \(code)\(rank.map { " on rank \($0)" } ?? "")"
                + (detail.isEmpty ? "" : ": \(detail)"))
    }

    private var usesMPI: Bool { library != nil }

    /// `values[i]` becomes the sum of every rank's `values[i]`.
    public func sum(_ values: UnsafeMutablePointer<Float>, count: Int) throws {
        guard usesMPI else { return }
        try Self.check(rw_mpi_allreduce_sum_float(values, count), "MPI_Allreduce (sum, float)", rank: rank)
    }

    /// `values[i]` becomes the sum of every rank's `values[i]`.
    public func sum(_ values: inout [Double]) throws {
        guard usesMPI else { return }
        let code = values.withUnsafeMutableBufferPointer { rw_mpi_allreduce_sum_double($0.baseAddress, $0.count) }
        try Self.check(code, "MPI_Allreduce (sum, double)", rank: rank)
    }

    /// `values[i]` becomes the largest of every rank's `values[i]`.
    public func max(_ values: inout [Double]) throws {
        guard usesMPI else { return }
        let code = values.withUnsafeMutableBufferPointer { rw_mpi_allreduce_max_double($0.baseAddress, $0.count) }
        try Self.check(code, "MPI_Allreduce (max, double)", rank: rank)
    }

    /// Every rank's `bytes` become `root`'s (every rank passes a buffer of the same length).
    public func broadcast(_ bytes: inout [UInt8], from root: Int = 0) throws {
        guard usesMPI else { return }
        let code = bytes.withUnsafeMutableBytes { rw_mpi_broadcast($0.baseAddress, $0.count, Int32(root)) }
        try Self.check(code, "MPI_Bcast", rank: rank)
    }

    /// Waits until every rank has called it.
    public func barrier() throws {
        guard usesMPI else { return }
        try Self.check(rw_mpi_barrier(), "MPI_Barrier", rank: rank)
    }

    /// Sends one number to `destination` under `tag`.
    public func send(_ value: Int, to destination: Int, tag: Int) throws {
        guard usesMPI else { throw RankwiseError.mpi("send needs an MPI job") }
        try Self.check(rw_mpi_send_long(value, Int32(destination), Int32(tag)), "MPI_Send", rank: rank)
    }

    /// Receives one number under `tag` from `source` (nil: any rank); returns it and its sender.
    public func receive(from source: Int? = nil, tag: Int) throws -> (value: Int, from: Int) {
        guard usesMPI else { throw RankwiseError.mpi("receive needs an MPI job") }
        var value = 0
        var sender: Int32 = -1
        try Self.check(
            rw_mpi_receive_long(&value, Int32(source ?? -1), Int32(tag), &sender), "MPI_Recv", rank: rank)
        return (value, Int(sender))
    }

    /// Ends every rank of the job (MPI_Abort) with `code`; alone, exits.
    public func abort(code: Int32) -> Never {
        if usesMPI { _ = rw_mpi_abort(code) }
        exit(code)
    }

    /// Ends MPI at the end of a run (a no-op alone).
    public func finish() {
        if usesMPI { _ = rw_mpi_finalize() }
    }
}

extension ProcessGroup {
    /// An all-reduce of `count` floats checked end to end (rank r adds r + 1 to every element, so each must come back
    /// as size(size + 1)/2 exactly) and timed: the median of 5 after a warm-up, each after a barrier.
    public func measureAllReduce(floats count: Int) throws -> (correct: Bool, seconds: Double) {
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(count, 1))
        defer { buffer.deallocate() }
        let expected = Float(size * (size + 1) / 2)
        var correct = true
        var times: [Double] = []
        for attempt in 0..<6 {
            buffer.update(repeating: Float(rank + 1), count: count)
            try barrier()
            let start = DispatchTime.now().uptimeNanoseconds
            try sum(buffer, count: count)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if attempt > 0 { times.append(seconds) }
            for index in 0..<count where buffer[index] != expected {
                correct = false
                break
            }
        }
        var verdict = [correct ? 0.0 : 1.0]
        try max(&verdict)  // every rank learns whether any rank saw a wrong sum
        return (verdict[0] == 0, times.sorted()[times.count / 2])
    }
}
