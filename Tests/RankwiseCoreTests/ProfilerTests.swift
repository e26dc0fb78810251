import Testing

@testable import RankwiseCore

/// Peak memory from /proc/self/status: the kernel pads the number to 8 columns after a tab, so a peak of 10 GB or
/// more follows the tab directly (it read as 0 MiB, and a decoder run's results said so).
@Suite struct ProfilerTests {
    @Test func statusLinesOfEverySize() {
        #expect(statusMiB("VmHWM:\t  204800 kB") == 200)
        #expect(statusMiB("VmHWM:\t12582912 kB") == 12288)
        #expect(statusMiB("VmHWM:") == 0)
        #expect(peakRSSMiB() > 0)
    }
}
