import Foundation
import Testing
import TestSupport
@testable import FineTuning
import Methods
import Report

/// The grid: which options each cell gets, the table's statistics worked by hand, and a real grid that
/// is interrupted and continued.
@Suite(.serialized) struct CompareTests {
    func tmp(_ name: String) -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("rankwise-compare-\(name)-\(getpid())").path
        try? FileManager.default.removeItem(atPath: d)
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    func grid(_ f: (inout CompareOptions) -> Void) -> CompareOptions {
        var g = CompareOptions(); g.tasks = ["tweets"]; f(&g); return g
    }

    @Test func cellOptionsLayerBudgetThenUserThenGrid() throws {
        let g = grid { $0.methods = ["lora", "elalora"]; $0.budgets = ["4", "8"]; $0.seeds = ["1", "2"]; $0.output = "/tmp/x" }
        let c = try Comparison(grid: g, common: [("epochs", "2"), ("lr", "2e-3"), ("max-rank", "12")])
        #expect(c.cells.count == 8)
        let lora = try c.options(for: CompareCell(task: "tweets", method: "lora", budget: 4, seed: 2))
        #expect(lora.method == "lora" && lora.methodOptions["r"] == "4" && lora.methodOptions["alpha"] == "8")
        #expect(lora.training.lr == 2e-3 && lora.training.epochs == 2 && lora.training.seed == 2)  // the user's lr wins over the method's
        #expect(lora.methodOptions["max-rank"] == nil)  // an ElaLoRA option is not given to LoRA
        #expect(lora.data.output == "/tmp/x/tweets/lora-r4-seed2" && lora.data.train == "tweets")
        let ela = try c.options(for: CompareCell(task: "tweets", method: "elalora", budget: 8, seed: 1))
        #expect(ela.methodOptions["r"] == "8" && ela.methodOptions["max-rank"] == "12")  // the user's max-rank over 2 x budget
        let ela4 = try Comparison(grid: g, common: []).options(for: CompareCell(task: "tweets", method: "elalora", budget: 4, seed: 1))
        #expect(ela4.methodOptions["max-rank"] == "8" && ela4.training.lr == 5e-3)
    }

    /// Every method's adapter output scale (alpha over the rank it starts with) is the same at every budget, so
    /// a learning rate means the same at budget 2 as at budget 8.
    @Test func outputScaleDoesNotDependOnTheBudget() throws {
        for name in MethodRegistry.names {
            let entry = try MethodRegistry.entry(name)
            let scales = [2, 3, 4, 5, 8, 16].map { budget -> Double in
                let options = entry.budgetOptions(budget)
                let alpha = Double(options["alpha"] ?? "") ?? .nan
                let startRank = Double(options["init-r"] ?? options["r"] ?? "") ?? .nan
                return alpha / startRank
            }
            #expect(scales.allSatisfy { abs($0 - scales[4]) < 1e-9 * scales[4] }, "\(name): \(scales)")
        }
    }

    /// --lrs multiplies the cells, gives each its rate (over the method's own) and names its folder; --lr with
    /// --lrs, bad rates and repeated rates are refused; folder names read back, dashes in the rate and method included.
    @Test func learningRatesAreCellsWithTheirOwnFolders() throws {
        let g = grid { $0.methods = ["lora", "adalora"]; $0.lrs = ["1e-3", "5e-3"]; $0.seeds = ["1", "2"]; $0.output = "/tmp/x" }
        let c = try Comparison(grid: g, common: [])
        #expect(c.cells.count == 8)
        let ada = try c.options(for: CompareCell(task: "tweets", method: "adalora", budget: 8, seed: 2, lr: "1e-3"))
        #expect(ada.training.lr == 1e-3 && ada.data.output == "/tmp/x/tweets/adalora-r8-lr1e-3-seed2")
        #expect { try Comparison(grid: g, common: [("lr", "2e-3")]) } throws: { "\($0)".contains("--lr and --lrs") }
        #expect { try Comparison(grid: grid { $0.lrs = ["fast"] }, common: []) } throws: { "\($0)".contains("--lrs: expected positive numbers") }
        #expect { try Comparison(grid: grid { $0.lrs = ["-1e-3"] }, common: []) } throws: { "\($0)".contains("--lrs: expected positive numbers") }
        #expect { try Comparison(grid: grid { $0.lrs = ["1e-3", "1e-3"] }, common: []) } throws: { "\($0)".contains("listed twice") }
        for cell in c.cells + [CompareCell(task: "t", method: "my-method", budget: 12, seed: 30)] {
            #expect(CompareCell.parse(task: cell.task, folder: cell.name) == cell, "\(cell.name)")
        }
        #expect(CompareCell.parse(task: "t", folder: "notes") == nil && CompareCell.parse(task: "t", folder: "lora-r8-seedX") == nil)
    }

    /// Of several learning rates the table reports the one with the best mean dev metric, says which, and lists every rate.
    @Test func theTableReportsTheRateBestOnDev() throws {
        let d = tmp("lrs")
        func run(_ lr: String?, _ seed: Int, dev: Double, test: Double, collapse: Bool = false) throws {
            let dir = d + "/t/lora-r8" + (lr.map { "-lr\($0)" } ?? "") + "-seed\(seed)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            var r: [String: Any] = ["dev_macro_f1": dev, "test_macro_f1": test, "test_accuracy": test]
            if collapse { r["collapse"] = ["dev": ["kind": "single_class", "finding": "one class", "message": "one class"]] }
            try JSONSerialization.data(withJSONObject: r).write(to: URL(fileURLWithPath: dir + "/results.json"))
        }
        // 5e-3 has the better dev mean (0.70 vs 0.65) though 1e-3 has the better test: dev decides.
        try run("1e-3", 1, dev: 0.64, test: 0.80); try run("1e-3", 2, dev: 0.66, test: 0.82)
        try run("5e-3", 1, dev: 0.72, test: 0.60); try run("5e-3", 2, dev: 0.68, test: 0.62)
        try run("5e-2", 1, dev: 0.30, test: 0.30, collapse: true)
        // One lucky seed does not beat two, and a cell of an earlier grid without --lrs does not compete with them.
        try run("1e-2", 1, dev: 0.99, test: 0.99)
        try run(nil, 1, dev: 0.99, test: 0.99); try run(nil, 2, dev: 0.99, test: 0.99)
        let t = CompareTable(cells: CompareTable.finished(in: d))
        #expect(t.rows.count == 5 && t.chosenRows.count == 1 && t.chosenRows[0].lr == "5e-3" && t.hasLearningRates)
        let md = t.markdown()
        #expect(md.contains("| lora | 8 | 5e-3 | 2 | 0.6100 ± 0.0141 | 0.6100 ± 0.0141 | - |"))
        #expect(md.contains("| lora | 8 | 5e-3 ✓ | 2 | 0.7000 ± 0.0283 |") && md.contains("| lora | 8 | 1e-3 | 2 | 0.6500 ± 0.0141 |"))
        #expect(md.contains("| lora | 8 | 5e-2 | 1 | 0.3000 |") && !md.contains("**Collapsed runs**"))  // a rejected rate's collapse is not the method's
        #expect(t.csv().split(separator: "\n").filter { $0.hasSuffix(",5e-3,1") }.count == 1)
        #expect(t.csv().split(separator: "\n").filter { $0.hasSuffix(",1e-3,0") }.count == 1)
    }

    @Test func quickFillsOnlyWhatIsNotGivenAndGridKeysAreRefused() throws {
        let c = try Comparison(grid: grid { $0.quick = true }, common: [("epochs", "3")])
        let o = try c.options(for: c.cells[0])
        #expect(o.training.epochs == 3 && o.data.maxTrainExamples == 2000 && o.data.maxEvalExamples == 1000 && o.training.maxLength == 64)
        for (k, hint) in [("train", "--tasks"), ("seed", "--seeds"), ("r", "--budgets"), ("method", "--methods")] {
            #expect { try Comparison(grid: grid { _ in }, common: [(k, "1")]) } throws: { "\($0)".contains(hint) }
        }
        #expect { try Comparison(grid: grid { $0.methods = ["nope"] }, common: []) } throws: { "\($0)".contains("unknown method") }
        #expect { try Comparison(grid: grid { $0.budgets = ["8", "x"] }, common: []) } throws: { "\($0)".contains("--budgets") }
        #expect { try Comparison(grid: grid { $0.tasks = ["/no/such.csv"] }, common: []) } throws: { "\($0)".contains("neither a file nor a known data set") }
        #expect { try Comparison(grid: grid { $0.tasks = [] }, common: []) } throws: { "\($0)".contains("--suite") }
        #expect(grid { $0.suite = true; $0.tasks = ["my.csv"] }.taskList == DataSuite.suiteNames + ["my.csv"])
    }

    /// Found by trying the tool as a hostile user: aliases that slipped past the grid's keys, duplicated
    /// grid values counted as seeds, two files sharing a folder, an option no compared method has.
    @Test func aliasesDuplicatesAndCollisionsAreErrors() throws {
        #expect { try Comparison(grid: grid { $0.methods = ["adalora"] }, common: [("target-r", "2")]) } throws: { "\($0)".contains("--r is set by the grid") }
        let c = try Comparison(grid: grid { $0.methods = ["adalora"] }, common: [("learning_rate", "0.02")])
        #expect(try c.options(for: c.cells[0]).training.lr == 0.02)  // the alias replaces AdaLoRA's tuned 5e-3
        #expect { try Comparison(grid: grid { $0.methods = ["lora", "lora"] }, common: []) } throws: { "\($0)".contains("--methods: lora is listed twice") }
        #expect { try Comparison(grid: grid { $0.seeds = ["1", "01"] }, common: []) } throws: { "\($0)".contains("--seeds: 1 is listed twice") }
        #expect { try Comparison(grid: grid { $0.budgets = ["4", "04"] }, common: []) } throws: { "\($0)".contains("--budgets: 4 is listed twice") }
        let d = tmp("collide")
        for sub in ["a", "b"] {
            try FileManager.default.createDirectory(atPath: d + "/" + sub, withIntermediateDirectories: true)
            try "text,label\nx,1\n".write(toFile: d + "/\(sub)/trec.csv", atomically: true, encoding: .utf8)
        }
        #expect { try Comparison(grid: grid { $0.tasks = [d + "/a/trec.csv", d + "/b/trec.csv"] }, common: []) } throws: { "\($0)".contains("would share the folder trec") }
        #expect { try Comparison(grid: grid { $0.tasks = ["trec", d + "/a/trec.csv"] }, common: []) } throws: { "\($0)".contains("would share the folder trec") }
        #expect { try Comparison(grid: grid { $0.methods = ["lora"] }, common: [("init-r", "abc")]) } throws: { "\($0)".contains("none of the methods compared (lora)") }
    }

    @Test func taskFoldersAndSuiteParts() throws {
        #expect(Comparison.taskName("data/reviews.v1.csv") == "reviews.v1" && Comparison.taskName("reviews.v1") == "reviews.v1")
        #expect(Comparison.taskName("snli") == "snli" && Comparison.taskName("/a/b/tweets.JSONL") == "tweets")
        var o = DataOptions(); o.train = "snli:dev"
        #expect { try DataSuite.resolve(o) } throws: { "\($0)".contains("give the data set's name alone (snli)") }
        #expect { try Comparison(grid: grid { $0.budgets = ["2000"] }, common: []) } throws: { "\($0)".contains("from 1 to 1024") }
    }

    /// A budget whose ranks do not fit the model, and a task file changed since its cells ran, fail before any cell runs.
    @Test func preflightAndChangedData() throws {
        guard let model = Fixtures.modelDir() else { return }
        let d = tmp("preflight")
        let rows = (0..<30).map { "text \($0) \(["good", "bad"][$0 % 2]),\(["pos", "neg"][$0 % 2])" }
        try ("text,label\n" + rows.joined(separator: "\n") + "\n").write(toFile: d + "/data.csv", atomically: true, encoding: .utf8)
        var ran = 0
        let big = try Comparison(grid: grid { $0.tasks = [d + "/data.csv"]; $0.methods = ["lora", "elalora"]; $0.budgets = ["300"]; $0.seeds = ["1"]; $0.output = d + "/a" },
                                 common: [("model", model), ("epochs", "1")])
        big.onCell = { _, _, _, _ in ran += 1 }
        #expect { try big.run() } throws: { "\($0)".contains("elalora at budget 300") }
        #expect(ran == 0)  // not even the LoRA cell ran first
        let g = grid { $0.tasks = [d + "/data.csv"]; $0.methods = ["lora"]; $0.budgets = ["2"]; $0.seeds = ["1"]; $0.output = d + "/b" }
        try FileManager.default.createDirectory(atPath: d + "/b", withIntermediateDirectories: true)
        try Comparison(grid: g, common: [("model", model), ("epochs", "1")]).checkSameData()
        try (rows.joined(separator: "\n") + "\nanother,pos\n").write(toFile: d + "/data.csv", atomically: true, encoding: .utf8)
        #expect { try Comparison(grid: g, common: [("model", model), ("epochs", "1")]).checkSameData() } throws: { "\($0)".contains("is not the data its cells ran on") }
    }

    @Test func anOutputKeepsItsOptions() throws {
        let d = tmp("lock")
        let g = grid { $0.output = d }
        try Comparison(grid: g, common: [("epochs", "1")]).checkSameOptions()
        try Comparison(grid: g, common: [("epochs", "1")]).checkSameOptions()  // the same options continue
        // Once a cell has started (its run.json), other options would mix settings in one table.
        try FileManager.default.createDirectory(atPath: d + "/data/lora-r2-seed1", withIntermediateDirectories: true)
        try "{}".write(toFile: d + "/data/lora-r2-seed1/run.json", atomically: true, encoding: .utf8)
        #expect { try Comparison(grid: g, common: [("epochs", "2"), ("lr", "1e-2")]).checkSameOptions() } throws: {
            "\($0)".contains("--epochs: 1 then, 2 now; --lr: not given then, 1e-2 now")
        }
    }

    @Test func tableMeanAndSampleSpreadByHand() throws {
        let d = tmp("table")
        func run(_ m: String, _ s: Int, _ acc: Double, _ f1: Double, ranks: [String: Int], collapse: String? = nil) throws {
            let dir = d + "/t/\(m)-r8-seed\(s)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            var r: [String: Any] = ["test_accuracy": acc, "test_macro_f1": f1, "trainable_parameters": 100, "ranks": ranks, "train_seconds": 10.0 * Double(s)]
            if let collapse { r["collapse"] = ["dev": ["kind": "single_class", "finding": collapse, "message": collapse + "; fixes"]] }
            try JSONSerialization.data(withJSONObject: r).write(to: URL(fileURLWithPath: dir + "/results.json"))
        }
        try run("lora", 1, 0.70, 0.60, ranks: ["a": 8, "b": 8]); try run("lora", 2, 0.74, 0.66, ranks: ["a": 8, "b": 8]); try run("lora", 3, 0.72, 0.63, ranks: ["a": 8, "b": 8])
        try run("ada", 1, 0.50, 0.40, ranks: ["a": 10, "b": 6], collapse: "the model predicts one class (x) for all 9 dev examples")
        let cells = [("lora", 1), ("lora", 2), ("lora", 3), ("ada", 1), ("ada", 2)].compactMap { m, s in
            CompareTable.Cell(cell: CompareCell(task: "t", method: m, budget: 8, seed: UInt64(s)), directory: d + "/t/\(m)-r8-seed\(s)")
        }
        #expect(cells.count == 4)  // ada seed 2 has not finished
        let t = CompareTable(cells: cells)
        #expect(t.rows.map(\.method) == ["lora", "ada"])
        let acc = try #require(t.rows[0].stat("test_accuracy"))
        #expect(abs(acc.mean - 0.72) < 1e-12 && abs(acc.sd - 0.02) < 1e-12 && acc.n == 3)
        #expect(t.rows[0].stat("final_rank")?.mean == 16 && t.rows[1].stat("final_rank")?.mean == 16 && t.rows[1].stat("test_accuracy")?.sd == 0)
        #expect(t.rows[0].stat("train_seconds")?.mean == 20)
        #expect(t.markdown().contains("| lora | 8 | 3 | 0.7200 ± 0.0200 | 0.6300 ± 0.0300 | - | 100 | 16 | 20 | - | - |"))
        #expect(t.markdown().contains("| ada | 8 | 1 | 0.5000 | 0.4000 | **1 of 1** (seed 1) |"))
        #expect(t.markdown().contains("**Collapsed runs**") && t.markdown().contains("- ada r8 seed 1: the model predicts one class (x) for all 9 dev examples"))
        #expect(t.csv().split(separator: "\n")[1].hasPrefix("t,lora,8,3,0,0.72,0.02,0.63,0.03,,,,,100,0,16,0,20,10,"))
        #expect(t.csv().split(separator: "\n")[2].hasPrefix("t,ada,8,1,1,"))
    }

    /// Equal dev metrics: fewer collapsed runs win, then the lower rate; rates equal in value are one rate; a
    /// folder whose rate is not a number is not a cell; a results.json written before --lrs still gives its order.
    @Test func rateTiesDuplicatesAndOldTables() throws {
        func row(_ lr: String, dev: Double, collapsed: Int) throws -> CompareTable.Row {
            let d = tmp("tie-\(lr)-\(collapsed)")
            var runs: [CompareTable.Cell] = []
            for seed in 1...2 {
                var r: [String: Any] = ["dev_macro_f1": dev, "test_macro_f1": dev]
                if seed <= collapsed { r["collapse"] = ["dev": ["kind": "single_class", "finding": "one class", "message": "x"]] }
                try JSONSerialization.data(withJSONObject: r).write(to: URL(fileURLWithPath: d + "/results.json"))
                runs.append(try #require(CompareTable.Cell(cell: CompareCell(task: "t", method: "m", budget: 8, seed: UInt64(seed), lr: lr),
                                                           directory: d)))
                if seed < 2 { try FileManager.default.removeItem(atPath: d + "/results.json") }
            }
            return CompareTable.Row(task: "t", method: "m", budget: 8, lr: lr, runs: runs)
        }
        let rows = [try row("5e-3", dev: 0.5, collapsed: 1), try row("2e-3", dev: 0.5, collapsed: 0), try row("1e-3", dev: 0.5, collapsed: 0)]
        #expect(CompareTable.chosenRate(among: rows, rivals: Array(rows.indices)) == 2)
        #expect { try Comparison(grid: grid { $0.lrs = ["1e-3", "0.001"] }, common: []) } throws: { "\($0)".contains("listed twice") }
        #expect(CompareCell.parse(task: "t", folder: "lora-r8-lrfast-seed1") == nil)
        let d = tmp("oldgrid")
        for m in ["elalora", "lora"] {
            try FileManager.default.createDirectory(atPath: d + "/t/\(m)-r8-seed1", withIntermediateDirectories: true)
            try #"{"test_macro_f1": 0.5}"#.write(toFile: d + "/t/\(m)-r8-seed1/results.json", atomically: true, encoding: .utf8)
        }
        let oldGrid = #"{"grid": {"methods": ["elalora", "lora"], "budgets": ["8"], "seeds": ["1"], "tasks": ["t"], "#
            + #""suite": false, "quick": false, "output": "x"}, "rows": []}"#
        try oldGrid.write(toFile: d + "/results.json", atomically: true, encoding: .utf8)
        #expect(ComparePage.cells(in: d).map(\.cell.method) == ["elalora", "lora"])  // the grid's order, not the registry's
    }

    /// A real grid with --lrs on the real model: each cell trains at its rate, and the table reports one row per
    /// method, the rate with the better dev metric.
    @Test func aRealGridTriesEachLearningRate() throws {
        guard let model = Fixtures.modelDir() else { return }
        let d = tmp("lrgrid")
        let texts = ["good fun day", "awful sad mess", "fine plain thing"]
        let rows = (0..<48).map { i in "\(texts[i % 3]) number \(i),\(["pos", "neg", "neu"][i % 3])" }
        try ("text,label\n" + rows.joined(separator: "\n") + "\n").write(toFile: d + "/data.csv", atomically: true, encoding: .utf8)
        let g = grid {
            $0.tasks = [d + "/data.csv"]; $0.methods = ["lora"]; $0.budgets = ["2"]; $0.seeds = ["1"]
            $0.lrs = ["1e-4", "2e-2"]; $0.output = d + "/out"
        }
        let common: [(key: String, value: String)] = [("epochs", "1"), ("batch-size", "8"), ("model", model)]
        let table = try Comparison(grid: g, common: common).run()
        for (lr, value) in [("1e-4", 1e-4), ("2e-2", 2e-2)] {
            let run = try Data(contentsOf: URL(fileURLWithPath: d + "/out/data/lora-r2-lr\(lr)-seed1/run.json"))
            let training = try #require((try JSONSerialization.jsonObject(with: run) as? [String: Any])?["training"] as? [String: Any])
            #expect((training["lr"] as? Double).map { abs($0 - value) < 1e-12 } == true, "\(lr)")
        }
        #expect(table.rows.count == 2 && table.chosenRows.count == 1)
        let dev = table.rows.map { $0.stat("dev_macro_f1")?.mean ?? -1 }
        #expect(table.chosenRows[0].stat("dev_macro_f1")?.mean == dev.max())
        let md = try String(contentsOfFile: d + "/out/results.md", encoding: .utf8)
        #expect(md.contains("Every learning rate tried") && md.contains("| lora | 2 | 1e-4") && md.contains("| lora | 2 | 2e-2"))
    }

    /// A real grid on the real model: a grid stopped after its first cell continues with the rest,
    /// leaving the finished cell alone, and the tables hold every cell.
    /// A first command that stops on a bad training option before any cell starts does not lock the output:
    /// the same command with the option fixed runs (it was refused as "other options" before).
    @Test func aGridThatStoppedBeforeAnyCellTakesNewOptions() throws {
        guard Fixtures.modelDir() != nil else { return }
        let d = tmp("relock")
        let rows = (0..<24).map { i in "\(["good fun day", "awful sad mess"][i % 2]) number \(i),\(["pos", "neg"][i % 2])" }
        try ("text,label\n" + rows.joined(separator: "\n") + "\n").write(toFile: d + "/data.csv", atomically: true, encoding: .utf8)
        let g = grid { $0.tasks = [d + "/data.csv"]; $0.methods = ["elalora"]; $0.budgets = ["2"]; $0.seeds = ["1"]; $0.output = d + "/out" }
        let base: [(key: String, value: String)] = [("batch-size", "8"), ("model", Fixtures.modelDir()!), ("tinit", "5")]
        // A warm-up of 5 steps in a run of 3 passes the preflight (which knows no step counts) and stops the first cell.
        #expect { try Comparison(grid: g, common: base + [("epochs", "1")]).run() } throws: { "\($0)".contains("must be below the total steps") }
        #expect(FileManager.default.fileExists(atPath: d + "/out/options.json"))  // the case that used to lock the output
        let table = try Comparison(grid: g, common: base + [("epochs", "4")]).run()
        #expect(table.rows.count == 1 && table.rows[0].runs.count == 1)
        // Once a cell has run, other options are refused as before.
        #expect { try Comparison(grid: g, common: base + [("epochs", "3")]).run() } throws: { "\($0)".contains("other options") }
    }

    @Test func anInterruptedGridContinues() throws {
        guard Fixtures.modelDir() != nil else { return }
        let d = tmp("grid")
        let rows = (0..<48).map { i in "\(["good fun day", "awful sad mess", "fine plain thing"][i % 3]) number \(i),\(["pos", "neg", "neu"][i % 3])" }
        try ("text,label\n" + rows.joined(separator: "\n") + "\n").write(toFile: d + "/data.csv", atomically: true, encoding: .utf8)
        let g = grid { $0.tasks = [d + "/data.csv"]; $0.methods = ["lora", "elalora"]; $0.budgets = ["2"]; $0.seeds = ["1", "2"]; $0.output = d + "/out" }
        let common: [(key: String, value: String)] = [("epochs", "1"), ("batch-size", "8"), ("model", Fixtures.modelDir()!), ("tinit", "1"), ("tfinal", "1")]
        // The first session stops after one cell.
        let first = try Comparison(grid: g, common: common)
        var done = 0
        first.onCellDone = { _, _, _ in done += 1 }
        first.shouldStop = { done >= 1 }
        try first.run()
        let firstResult = try Data(contentsOf: URL(fileURLWithPath: d + "/out/data/lora-r2-seed1/results.json"))
        var ran: [String] = []
        let all = try Comparison(grid: g, common: common)
        all.onCell = { c, _, _, eta in ran.append(c.name); #expect(ran.count == 1 || eta != nil) }
        let table = try all.run()
        #expect(ran == ["lora-r2-seed2", "elalora-r2-seed1", "elalora-r2-seed2"])
        #expect(try Data(contentsOf: URL(fileURLWithPath: d + "/out/data/lora-r2-seed1/results.json")) == firstResult)
        #expect(table.rows.count == 2 && table.rows.allSatisfy { $0.runs.count == 2 })
        #expect(table.rows.allSatisfy { $0.stat("final_rank")?.mean == 72 })  // 36 modules x budget 2, LoRA and ElaLoRA alike
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: d + "/out/results.json"))) as! [String: Any]
        #expect((json["rows"] as! [[String: Any]]).count == 2)
        // A later, smaller grid into the same output (e.g. only the speed measurement) keeps every finished run in the tables.
        let subset = try Comparison(grid: grid { $0.tasks = g.tasks; $0.methods = ["elalora", "lora"]; $0.budgets = ["2"]; $0.seeds = ["1"]; $0.output = g.output }, common: common)
        let t2 = try subset.run()
        #expect(t2.rows.map(\.method) == ["elalora", "lora"] && t2.rows.allSatisfy { $0.runs.count == 2 })
        // Without a grid (the report page), methods come in the registry's order, not by name.
        var order: [String] = []
        for c in CompareTable.finished(in: g.output) where !order.contains(c.cell.method) { order.append(c.cell.method) }
        #expect(order == ["lora", "elalora"])
        #expect(try String(contentsOfFile: d + "/out/results.md", encoding: .utf8).contains("| elalora | 2 | 2 |"))
    }
}
