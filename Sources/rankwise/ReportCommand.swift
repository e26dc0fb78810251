import ArgumentParser
import Foundation
import Report

/// `rankwise report`: a run directory or a compare directory as one self-contained HTML page.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract:
            "Write a run (or a compare directory) as one self-contained HTML page: curves, ranks, quality scores, "
            + "confusion, configuration.",
        discussion: "The page has inline SVG and no script; it opens offline in any browser.")

    @Argument(help: "A run directory (with run.json) or a `rankwise compare` output directory.") var directory: String
    @Option(help: "The HTML file to write [default: DIRECTORY/report.html].") var output: String?

    func run() throws {
        do {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
                fail("\(directory): no such directory")
            }
            let isRun = FileManager.default.fileExists(atPath: directory + "/run.json")
            if !isRun && !ComparePage.isComparison(directory) {
                fail(
                    "\(directory): neither a run directory (no run.json) nor a comparison with a finished run "
                        + "(TASK/METHOD-rBUDGET-seedSEED/results.json)"
                )
            }
            let path =
                isRun
                ? try RunReport.write(runDirectory: directory, output: output)
                : try ComparePage.write(directory: directory, output: output)
            print(path)
        } catch { fail("\(error)") }
    }
}
