import ArgumentParser
import Foundation
import CKernels
import RankwiseCore

struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the BLAS library, its detected core, threads and measured sgemm speed; under mpirun, the MPI "
            + "library, the world and a checked, timed all-reduce.")

    @Option(help: "Matrix size n for the n x n x n sgemm measurement.") var size = 1024
    @Option(help: "Timed repetitions (best is reported).") var repeats = 10
    @Flag(help: "Print one JSON object instead of text.") var json = false

    func run() throws {
        let group = try ProcessGroup.world()
        let info = try BLAS.load()
        let gflops = try BLAS.measureGFLOPS(n: size, repeats: repeats)
        let cpu = CPUFeatures.current
        // The all-reduce sizes a data-parallel step sends: LoRA r=8's gradients on MiniLM (1.3 MB), and 64 MB.
        let allReduce = try [327_680, 16_777_216].map { count in (count, try group.measureAllReduce(floats: count)) }
        guard group.rank == 0 else { return }  // the other ranks took part in the checks and stay quiet
        if json {
            var obj: [String: Any] = [
                "library": info.path, "vendor": info.vendor, "core": info.coreName, "threads": info.threads,
                "requested_core": info.requestedCoreType ?? NSNull(), "user_core": info.userCoreType ?? NSNull(),
                "sgemm_n": size, "sgemm_gflops": gflops, "cpu": cpu.model,
            ]
            obj["mpi"] =
                group.library.map { library -> Any in
                    [
                        "library": library.path, "version": library.version, "size": group.size,
                        "allreduce": allReduce.map {
                            ["floats": $0.0, "correct": $0.1.correct, "seconds": $0.1.seconds]
                        },
                    ]
                } ?? NSNull()
            let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("cpu:          \(cpu.model) (\(ProcessInfo.processInfo.activeProcessorCount) cores)")
        print("blas library: \(info.path) (\(info.vendor))")
        if !info.config.isEmpty { print("blas config:  \(info.config.trimmingCharacters(in: .whitespaces))") }
        let why: String
        if let u = info.userCoreType {
            why = "OPENBLAS_CORETYPE=\(u) set by you, respected"
        } else if let r = info.requestedCoreType {
            why = "chosen by rankwise from CPU flags: \(r)"
        } else {
            why = "library's own detection"
        }
        print("blas core:    \(info.coreName) (\(why))")
        print("threads:      \(info.threads) BLAS, \(Parallel.workers) element-wise")
        let hasAVX2 = CPUFeatures.current.flags.contains("avx2")
        let kernelClones = rw_kernels_avx512() != 0 ? "AVX-512" : hasAVX2 ? "AVX2" : "baseline"
        print("kernels:      \(kernelClones) clones of exp/erf/softmax/layer norm")
        print(String(format: "sgemm:        %.1f GFLOPS at %dx%dx%d", gflops, size, size, size))
        if let library = group.library {
            print("mpi:          \(library.version) (\(library.path)), \(group.size) ranks")
            for (count, result) in allReduce {
                let megabytes = Double(count * 4) / 1e6
                print(
                    String(
                        format: "all-reduce:   %.1f MB in %.2f ms (%@)", megabytes, result.seconds * 1e3,
                        result.correct ? "sums correct on every rank" : "WRONG SUMS"))
                if !result.correct { throw RankwiseError.mpi("the all-reduce check gave wrong sums") }
            }
        } else {
            print("mpi:          not in use (start ranks with mpirun -np N rankwise ...)")
        }
        let weak = [
            "prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "katmai", "northwood", "banias",
            "sandybridge",
        ]
        if let u = info.userCoreType, let best = cpu.openBLASCoreType, weak.contains(u.lowercased()) {
            print(
                "note:         OPENBLAS_CORETYPE=\(u) is set in your environment, but this CPU supports \(best) "
                    + "kernels;"
            )
            print("              unset it (or set OPENBLAS_CORETYPE=\(best)) for full sgemm speed.")
        }
    }
}
