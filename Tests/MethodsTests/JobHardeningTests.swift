import Adapters
import FineTuning
import Foundation
import Methods
import Models
import Testing
import TestSupport

/// Data that once trained silently to a meaningless result: one class (accuracy 1.0), one row (empty
/// dev and test reported as accuracy 0.0), and --max-train-examples on a file grouped by class.
@Suite(.serialized) struct JobHardeningTests {
    func job(_ csv: String, _ name: String, configure: (inout FineTuneOptions) -> Void = { _ in }) throws -> (FineTuneJob, [String]) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rankwise-job-\(name)-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try csv.write(toFile: dir + "/data.csv", atomically: true, encoding: .utf8)
        var o = FineTuneOptions()
        o.data.train = dir + "/data.csv"; o.data.output = dir + "/run"
        o.training.epochs = 1; o.training.batchSize = 4
        configure(&o)
        let j = FineTuneJob(options: o)
        var lines: [String] = []
        j.print = { lines.append($0) }
        return (j, lines)
    }

    @Test func oneClassIsAnError() throws {
        guard Fixtures.modelDir() != nil else { return }
        let (j, _) = try job("text,label\n" + (1...20).map { "text \($0),pos" }.joined(separator: "\n") + "\n", "oneclass")
        #expect { try j.run() } throws: { "\($0)".contains("all have one label (pos)") }
    }

    @Test func emptyDevAndTestAreSaidAndNotScored() throws {
        guard Fixtures.modelDir() != nil else { return }
        var printed: [String] = []
        let (j, _) = try job("text,label\nhello there,pos\nbad day,neg\ngood day,pos\n", "tiny")
        j.print = { printed.append($0) }
        let r = try j.run()
        #expect(printed.contains { $0.contains("the dev set is empty") } && printed.contains { $0.contains("the test set is empty") })
        #expect(r.metrics["test_accuracy"] == nil && r.metrics["dev_accuracy"] == nil)
        #expect(printed.contains { $0.contains("(the final model: no dev set)") })
    }

    /// With its own dev and test files nothing shuffles the training file: the sample must still be
    /// seeded and random, not the first rows (here all of one class), and a lost class is said.
    @Test func maxTrainExamplesSamplesRandomlyAndWarns() throws {
        guard Fixtures.modelDir() != nil else { return }
        let rows = (0..<60).map { "text number \($0),\($0 < 50 ? "neg" : "pos")" }
        var printed: [String] = []
        let (j, _) = try job("text,label\n" + rows.joined(separator: "\n") + "\n", "grouped") { o in
            o.data.maxTrainExamples = 12; o.training.maxSteps = 1
        }
        let dir = (j.options.data.train! as NSString).deletingLastPathComponent
        try "text,label\na,neg\nb,pos\n".write(toFile: dir + "/dev.csv", atomically: true, encoding: .utf8)
        var o = j.options; o.data.dev = dir + "/dev.csv"; o.data.test = dir + "/dev.csv"
        let j2 = FineTuneJob(options: o)
        j2.print = { printed.append($0) }
        _ = try j2.run()
        let classes = printed.first { $0.hasPrefix("classes (train)") } ?? ""
        #expect(classes.contains("pos ") && !classes.contains("pos 0 ") && !classes.contains("neg 12 "), "\(classes)")
        // A sample of one row lacks a class the full set has: said, then refused as one-class data.
        var o3 = o; o3.data.maxTrainExamples = 1
        var p3: [String] = []
        let j3 = FineTuneJob(options: o3); j3.print = { p3.append($0) }
        #expect { try j3.run() } throws: { "\($0)".contains("one label") }
        #expect(p3.contains { $0.contains("warning: the 1 sampled training examples have no") })
    }
}

/// An adapter with NaN weights gave normal-looking metrics with every prediction class 0, and merge
/// wrote NaN weights; a failed merge left an empty directory.
@Suite struct BrokenAdapterTests {
    @Test func nanAdaptersAreRefusedAndFailedMergesLeaveNothing() throws {
        guard let dir = Fixtures.modelDir() else { return }
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("rankwise-broken-\(getpid())").path
        let enc = try BertModel.load(directory: dir, withPooler: true)
        let method = try LoRAMethod(config: LoRAConfig(r: 2), backbone: enc, seed: 1)
        let model = try TaskModel(backbone: enc, numLabels: 2, problem: .singleLabel, seed: 1)
        let meta = AdapterMetadata(labelNames: ["a", "b"], problem: "single_label_classification", maxLength: 32, baseModel: dir, method: "lora")
        try method.save(directory: tmp + "/ok", model: model, metadata: meta)
        _ = try AdapterLoader(directory: tmp + "/ok")
        method.loraAdapters[0].1.b.value[3] = .nan
        try method.save(directory: tmp + "/nan", model: model, metadata: meta)
        #expect { try AdapterLoader(directory: tmp + "/nan") } throws: { "\($0)".contains("lora_B") && "\($0)".contains("non-finite") }
        #expect { try MergedModel.write(model: model, labelNames: meta.labelNames, baseDirectory: dir, to: tmp + "/merged") } throws: { "\($0)".contains("non-finite") }
        #expect(!FileManager.default.fileExists(atPath: tmp + "/merged"))
    }
}
