import Foundation
import Testing

@testable import RankwiseCore

/// A process alone: collectives return their input and no MPI library is touched; the launcher's variables decide
/// whether a process is an MPI rank. (Several ranks are checked by scripts/e2e.sh under mpirun.)
@Suite struct ProcessGroupTests {
    @Test func aloneCollectivesReturnTheirInput() throws {
        let group = ProcessGroup.alone
        #expect(group.rank == 0 && group.size == 1 && group.library == nil)
        var floats: [Float] = [1, -2, 3.5]
        try floats.withUnsafeMutableBufferPointer { try group.sum($0.baseAddress!, count: $0.count) }
        #expect(floats == [1, -2, 3.5])
        var doubles = [0.25, 7]
        try group.sum(&doubles)
        try group.max(&doubles)
        #expect(doubles == [0.25, 7])
        var bytes: [UInt8] = [9, 8]
        try group.broadcast(&bytes)
        #expect(bytes == [9, 8])
        let check = try group.measureAllReduce(floats: 1000)
        #expect(check.correct)
        #expect(throws: RankwiseError.self) { try group.send(1, to: 0, tag: 0) }
    }

    @Test func launcherVariablesMakeARank() {
        #expect(ProcessGroup.launcherVariable([:]) == nil)
        #expect(ProcessGroup.launcherVariable(["SLURM_PROCID": "0"]) == nil)
        #expect(ProcessGroup.launcherVariable(["OMPI_COMM_WORLD_SIZE": "2"]) == "OMPI_COMM_WORLD_SIZE")
        #expect(ProcessGroup.launcherVariable(["PMIX_RANK": "1"]) == "PMIX_RANK")
        // The test process itself was not started by a launcher: its group is a process alone.
        if ProcessGroup.launcherVariable() == nil { #expect((try? ProcessGroup.world())?.size == 1) }
    }
}
