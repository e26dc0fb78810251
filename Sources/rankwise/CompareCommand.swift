import ArgumentParser
import FineTuning
import Foundation
import Methods
import Report
import RankwiseCore
import Training

/// `rankwise compare`: parses the grid, shows overall progress and prints the table. The grid itself is
/// `Comparison` in the FineTuning library; the speed comparison with PyTorch runs `rankwise bench train`
/// in child processes, so each side's peak memory is its own.
struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare methods x rank budgets x seeds x data sets; write the table as JSON, Markdown and CSV.",
        discussion: """
            Examples:
              rankwise compare --suite --quick --output runs/suite
              rankwise compare --tasks tweets,my.csv --methods lora,tsqlora --budgets 4,8 --seeds 1,2,3 --epochs 2
              rankwise compare --grid grid.yaml --peer-python /opt/rankwise-peer/bin/python

            Every option other than the grid's is a training option of `rankwise train` for every cell (a method's own \
            option only for the methods that have it). Each method runs at its tuned options for the budget (learning \
            rate, initial or maximum rank: `rankwise methods`); options you give override them. A YAML --grid file \
            takes the same names.

            Run the same command again to continue an interrupted grid: finished cells are skipped, a cell with a \
            checkpoint resumes. Each cell is a run directory OUTPUT/TASK/METHOD-rBUDGET-seedSEED \
            (METHOD-rBUDGET-lrLR-seedSEED with --lrs); the tables and report.html are rewritten after every cell.

            With --peer-python (a Python with torch, transformers and peft: scripts/peer-env.sh), LoRA and AdaLoRA \
            training steps are also timed next to PEFT on each task's real batches, with the same thread count, in the \
            same run.

            Grid options:

            """ + SettingsTable.helpLines(SettingsTable.options(of: CompareOptions.self)).joined(separator: "\n")
                + "\n\nSuite data sets (`rankwise fetch-data`):\n" + DataSuite.listing)

    @Option(help: "YAML file with grid and training options (flags override it).") var grid: String?
    @Option(help: "A Python with torch, transformers and peft: time LoRA and AdaLoRA next to PEFT on each task.")
    var peerPython: String?
    @Option(help: "Threads for the PyTorch peer (and the number Rankwise uses, from the environment).")
    var peerThreads = 2
    @Argument(parsing: .allUnrecognized, help: "Grid and training options.") var options: [String] = []

    func run() throws {
        let cmp: Comparison
        do {
            var values = try grid.map(yamlOptions) ?? []
            let gridTable = SettingsTable.options(of: CompareOptions.self)
            let flags = Set(gridTable.filter(\.isFlag).map(\.key))
            // Grid flags are bare (--suite): give them a value before the generic parser sees them.
            var args: [String] = []
            for (i, a) in options.enumerated() {
                args.append(a)
                if a.hasPrefix("--"), !a.contains("="), flags.contains(SettingsTable.normalise(a)),
                    i + 1 >= options.count || Bool.parse(options[i + 1]) == nil
                {
                    args.append("true")
                }
            }
            values += try FineTuneOptions.values(fromArguments: args)
            var gridValues: [String: String] = [:]
            var common: [(key: String, value: String)] = []
            for (k, v) in values {
                let n = SettingsTable.normalise(k)
                if gridTable.contains(where: { $0.key == n }) { gridValues[n] = v } else { common.append((n, v)) }
            }
            let g = try SettingsTable.decode(CompareOptions.self, values: gridValues)
            cmp = try Comparison(grid: g, common: common)
        } catch { fail("\(error)") }

        if let py = peerPython {  // a wrong peer fails now, not after the grid
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = [py, "-c", "import torch, transformers, peft"]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            do {
                try p.run()
                p.waitUntilExit()
            } catch { fail("--peer-python \(py): cannot run it (\(error))") }
            guard p.terminationStatus == 0 else {
                fail(
                    "--peer-python \(py): cannot import torch, transformers and peft (scripts/peer-env.sh makes such "
                        + "a Python)"
                )
            }
            guard peerThreads >= 1 else { fail("--peer-threads must be at least 1") }
        }
        let all = cmp.cells
        let done = all.filter { FileManager.default.fileExists(atPath: cmp.directory($0) + "/results.json") }.count
        print(
            "compare: \(all.count) cells (\(cmp.grid.taskList.count) tasks x \(cmp.grid.methods.count) methods x "
                + "\(cmp.grid.budgets.count) budgets"
                + (cmp.grid.lrs.isEmpty ? "" : " x \(cmp.grid.lrs.count) learning rates")
                + " x \(cmp.grid.seeds.count) seeds)"
                + (done > 0 ? ", \(done) already done" : "") + "; output \(cmp.grid.output)")
        if !cmp.common.isEmpty {
            print("options for every cell: " + cmp.common.map { "--\($0.key) \($0.value)" }.joined(separator: " "))
        }
        let start = Date()
        var view: TrainProgress? = nil
        cmp.onCell = { c, i, n, eta in
            let etaText = eta.map { "ETA " + ProgressBar.clock($0) } ?? "ETA after the first cell"
            stderr(
                "\n[\(i + 1)/\(n)] \(c.taskName) \(c.name)  (grid elapsed "
                    + "\(ProgressBar.clock(Date().timeIntervalSince(start))), \(etaText))\n"
            )
            view = nil
        }
        cmp.onEvent = { ev, trainer in
            if view == nil { view = TrainProgress() }
            view!.show(ev, trainer)
        }
        cmp.onCellDone = { c, r, secs in
            _ = try? ComparePage.write(directory: cmp.grid.output)  // the page follows the grid, like the tables
            let primary =
                r.metrics["test_perplexity"] != nil ? "perplexity" : r.metrics["test_pearson"] != nil ? "pearson" : ""
            let keys = CompareTable.metricKeys(primaryMetric: primary).filter { r.metrics[$0] != nil }
            print(
                "\(c.taskName) \(c.name): "
                    + keys.map { String(format: "%@ %.4f", $0, r.metrics[$0] ?? .nan) }.joined(separator: "  ")
                    + String(format: "  (%.0f s)", secs)
                    + (r.collapse.isEmpty ? "" : "  COLLAPSED: " + (r.collapse["dev"] ?? r.collapse["test"])!.finding))
        }
        let table: CompareTable
        do { table = try cmp.run() } catch { fail("\(error)") }
        print("\n" + table.markdown())
        let speedFailed = peerPython.map { speed(cmp, python: $0) } ?? false
        let page: String
        do { page = try ComparePage.write(directory: cmp.grid.output) } catch { fail("\(error)") }
        print("wrote \(cmp.grid.output)/results.json, results.md, results.csv and \(page)")
        if speedFailed { fail("some speed measurements next to PEFT failed (see above)") }
    }

    /// LoRA and AdaLoRA (those of them in the grid) next to PEFT on each task's training batches: `rankwise bench train
    /// --data`
    /// in a child process per method, with the grid's batch size. Returns whether any measurement failed.
    func speed(_ cmp: Comparison, python: String) -> Bool {
        let methods = ["lora", "adalora"].filter(cmp.grid.methods.contains)
        guard !methods.isEmpty else {
            print("(no speed comparison: PEFT runs LoRA and AdaLoRA, and neither is in --methods)")
            return false
        }
        let batch = cmp.common.first { $0.key == "batch-size" }?.value ?? "32"
        let maxLength = cmp.common.first { $0.key == "max-length" }?.value ?? "128"
        let model = cmp.common.first { $0.key == "model" }?.value ?? "minilm"
        var failed = false
        var rows: [[String: Any]] = []
        // speed.json keeps the measurements of earlier commands (other tasks or methods); a new one replaces its task
        // and method's.
        if let d = FileManager.default.contents(atPath: cmp.grid.output + "/speed.json"),
            let old = (try? JSONSerialization.jsonObject(with: d)) as? [[String: Any]]
        {
            rows = old
        }
        for task in cmp.grid.taskList {
            for method in methods {
                // The file name holds every setting of the measurement: a rerun with others measures again.
                let modelTag =
                    model == "minilm"
                    ? ""
                    : "-"
                        + String(
                            model.unicodeScalars.filter { CharacterSet.alphanumerics.contains($0) }.prefix(24).map(
                                Character.init))
                let taskName = Comparison.taskName(task)
                let out =
                    cmp.grid.output
                    + "/speed-\(taskName)-\(method)-b\(batch)-len\(maxLength)-t\(peerThreads)\(modelTag).json"
                if !FileManager.default.fileExists(atPath: out) {
                    stderr("speed: \(Comparison.taskName(task)) \(method) next to PEFT ...\n")
                    let p = Process()
                    p.executableURL = URL(
                        fileURLWithPath: CommandLine.arguments[0].contains("/")
                            ? CommandLine.arguments[0] : "/proc/self/exe")
                    p.arguments = [
                        "bench", "train", "--data", task, "--method", method, "--batch", batch, "--max-length",
                        maxLength, "--model", model, "--peer-python", python, "--peer-threads", "\(peerThreads)",
                        "--json", out,
                    ]
                    p.standardOutput = FileHandle.nullDevice
                    do { try p.run() } catch {
                        stderr("speed: cannot run bench: \(error)\n")
                        return true
                    }
                    p.waitUntilExit()
                    guard p.terminationStatus == 0 else {
                        stderr(
                            "speed: bench train --data \(task) --method \(method) failed (exit "
                                + "\(p.terminationStatus))\n"
                        )
                        failed = true
                        continue
                    }
                }
                guard let d = FileManager.default.contents(atPath: out),
                    var o = (try? JSONSerialization.jsonObject(with: d)) as? [String: Any]
                else { continue }
                o["task"] = Comparison.taskName(task)
                o["method"] = method
                rows.removeAll {
                    $0["task"] as? String == Comparison.taskName(task) && $0["method"] as? String == method
                }
                rows.append(o)
            }
        }
        do {
            try writeOutputFile(
                cmp.grid.output + "/speed.json",
                String(
                    decoding: try JSONSerialization.data(withJSONObject: rows, options: [.prettyPrinted, .sortedKeys]),
                    as: UTF8.self))
            try cmp.writeTables()
        } catch {
            stderr("speed: \(error)\n")
            failed = true
        }
        print(CompareTable.speedMarkdown(directory: cmp.grid.output))
        return failed
    }
}
