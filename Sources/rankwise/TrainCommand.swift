import ArgumentParser
import FineTuning
import Foundation
import Methods
import Report
import RankwiseCore
import Training
import SafeTensors

/// `rankwise train`: parses options (a YAML file, then flags), shows progress, prints. The run itself
/// is `FineTuneJob` in the FineTuning library. Options are not declared here: they come from
/// `DataOptions`, `TrainConfig` and the chosen method's settings, so `--help` lists them from there.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fine-tune a sequence classifier on CSV/TSV/JSONL data with any registered method.",
        discussion: """
            Examples:
              rankwise train --train tweets --output runs/tweets
              rankwise train --train data.csv --label-column sentiment --method adalora --init-r 12 --r 8 --lr 5e-3
              rankwise train --config run.yaml --resume
            Without --dev/--test the training file is split (seeded, duplicates kept together). Writes run.json,
            metrics.jsonl, checkpoint.safetensors (resumable), best/ and final/ (PEFT adapters) and results.json.
            A YAML file takes the same names as the flags (dashes or underscores); flags override it.
            Every option, with its default, follows.
            """)

    @Option(help: "YAML file with any of the options below (flags override it).") var config: String?
    @Flag(help: "Continue from the output directory's checkpoint.") var resume = false
    @Argument(parsing: .allUnrecognized, help: "Options (see below).") var options: [String] = []

    func run() throws {
        let runOptions: FineTuneOptions
        do {
            var values = try config.map(yamlOptions) ?? []
            values += try FineTuneOptions.values(fromArguments: options)
            runOptions = try FineTuneOptions.from(values)
        } catch { fail("\(error)") }
        let job = FineTuneJob(options: runOptions, resume: resume)
        let view = TrainProgress()
        job.onEvent = { ev, trainer in view.show(ev, trainer) }
        let result: FineTuneResult
        do { result = try job.run() } catch { fail("\(error)") }
        do {
            print(
                "report: " + (try RunReport.write(runDirectory: runOptions.data.output))
                    + "  (rankwise report \(runOptions.data.output))"
            )
        } catch { stderr("warning: the run finished but its report was not written: \(error)\n") }
        // Last, so that it is not lost above the tables: a collapsed model is not a result.
        for (set, c) in result.collapse.sorted(by: { $0.key < $1.key }) {
            stderr("warning: this run's model COLLAPSED (\(set)): \(c.message)\n")
        }
    }
}

/// The options of a YAML file (`FineTuneOptions.values(fromYAML:file:)`), as key/value pairs.
func yamlOptions(_ path: String) throws -> [(key: String, value: String)] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
        throw SettingsError("\(path): cannot read")
    }
    return try FineTuneOptions.values(fromYAML: text, file: path)
}

/// Methods and their options.
struct MethodsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "methods", abstract: "List every registered tuning method with its options and defaults.")
    func run() throws {
        for e in MethodRegistry.all {
            print("\(e.name): \(e.summary)")
            for l in SettingsTable.helpLines(e.options) { print(l) }
            print("")
        }
    }
}

/// The progress bar and one line per eval / resume / early stop.
final class TrainProgress {
    var bar: ProgressBar?
    var lastLoss: Float = 0, lastLR: Float = 0, lastTPS = 0.0, smooth: Float? = nil
    var lastLine = Date.distantPast

    func show(_ ev: TrainEvent, _ trainer: Trainer) {
        if bar == nil {
            let b = ProgressBar(total: trainer.totalSteps, label: "train", unit: "steps")
            b.extra = { [unowned self] in String(format: "loss %.4f  lr %.2e  %.0f tok/s", lastLoss, lastLR, lastTPS) }
            bar = b
        }
        switch ev {
        case let .step(step, total, epoch, loss, lr, _, tps):
            smooth = smooth.map { 0.9 * $0 + 0.1 * loss } ?? loss
            lastLoss = smooth!
            lastLR = lr
            lastTPS = tps
            bar!.update(step)
            if isatty(2) == 0 && (Date().timeIntervalSince(lastLine) > 30 || step == total) {
                lastLine = Date()
                stderr(
                    String(
                        format: "step %d/%d  epoch %.2f  loss %.4f  lr %.2e  %.0f tok/s  elapsed %@\n", step, total,
                        epoch, smooth!, lr, tps,
                        ProgressBar.clock(Date().timeIntervalSince(bar!.start))))
            }
            if step == total { bar!.finish(step) }
        case let .evaluation(step, m, best):
            if isatty(2) != 0 { stderr("\r\u{1B}[K") }
            let keys = trainer.model.head.metricNames
            stderr(
                "eval @ step \(step): "
                    + keys.map { String(format: "%@ %.4f", $0, m[$0] ?? .nan) }.joined(separator: "  ")
                    + String(format: "  loss %.4f", m["loss"] ?? .nan) + (best ? "  (best)" : "") + "\n")
        case let .resumed(step, epoch, batch):
            stderr("resumed from \(trainer.checkpointPath) at step \(step) (epoch \(epoch + 1), batch \(batch))\n")
        case let .stoppedEarly(step, reason):
            stderr("\nstopped early at step \(step): \(reason)\n")
        case let .warning(text):
            stderr("warning: \(text)\n")
        case .checkpoint: break
        }
    }
}

func writeOutputFile(_ path: String, _ text: String) throws {
    let parent = (path as NSString).deletingLastPathComponent  // "" for a bare name: the current directory
    if !parent.isEmpty { try Trainer.makeDirectory(parent) }
    do { try AtomicFile.write(text, to: path) } catch { throw TrainError("--output \(path): \(error)") }
}
