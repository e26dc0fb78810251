import ArgumentParser
import Foundation
import Logging
import FineTuning
import RankwiseCore

@main
struct Rankwise: ParsableCommand {
    static func main() {
        setvbuf(stdout, nil, _IOLBF, 0)  // keep stdout and stderr in order when piped
        let args = Array(CommandLine.arguments.dropFirst())
        if args.first == "compare" && args.contains(where: { $0 == "--help" || $0 == "-h" }) {
            print(Compare.helpMessage(columns: 200))  // wide: the grid options are a table
            Foundation.exit(0)
        }
        if args.first == "train" && args.contains(where: { $0 == "--help" || $0 == "-h" }) {
            // The train options come from the library's settings types, not ArgumentParser declarations.
            print(Train.helpMessage(columns: 200))
            print(FineTuneOptions.helpText())
            Foundation.exit(0)
        }
        // Under mpirun every rank starts MPI here; alone this is a no-op.
        let group: ProcessGroup
        do {
            group = try ProcessGroup.world()
        } catch {
            fail("\(error)")
        }
        if group.size > 1, let name = args.first, !ranksCommands.contains(name) {
            if group.rank == 0 {
                stderr(
                    "rankwise: error: `rankwise \(name)` does not run on several MPI ranks yet; under mpirun "
                        + "\(ranksCommands.joined(separator: ", ")) does\n")
            }
            group.finish()
            Foundation.exit(1)
        }
        do {
            var command = try parseAsRoot()
            try command.run()
            group.finish()
        } catch {
            if group.size > 1 {
                // One rank's failure ends the whole job, and says which rank it was.
                stderr("rankwise: error (rank \(group.rank) of \(group.size)): \(error)\n")
                group.abort(code: 1)
            }
            exit(withError: error)
        }
    }

    /// The commands that run on several MPI ranks.
    static let ranksCommands = ["doctor"]

    static let configuration = CommandConfiguration(
        commandName: "rankwise",
        abstract: "Adaptive-rank LoRA fine-tuning of transformers on the CPU.",
        subcommands: [
            Doctor.self, FetchModel.self, FetchData.self, Train.self, Compare.self, ReportCommand.self, Quality.self,
            MethodsCommand.self, Eval.self, Predict.self, Export.self, Merge.self, Embed.self, Similarity.self,
            Bench.self, Generate.self, Chat.self,
        ])
}

/// Prints an error and exits with status 1 (used for errors the user can fix).
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("rankwise: error: \(message)\n".utf8))
    exit(1)
}

func stderr(_ s: String) { FileHandle.standardError.write(Data(s.utf8)) }
