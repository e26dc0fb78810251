import Foundation
import Testing
@testable import Adapters
@testable import Models
import RankwiseCore
import SafeTensors
import Tokenizers
@testable import Training
import Methods

/// Regression cases from trying Rankwise as a hostile user would: each was a crash, a hang or a
/// silent wrong result, and must be a clear error.
@Suite(.serialized) struct HardeningTests {
    /// r = Int.max once overflowed `shape.reduce(1, *)` and wrote out of bounds; r = 2^31 asked for
    /// terabytes. A rank is checked against the layer widths before anything is allocated.
    @Test(arguments: [Int.max, 2_147_483_648, 100_000, 17]) func hugeRanksAreErrors(_ r: Int) throws {
        let enc = try tinyEncoder()  // hidden 16: widths 16 and 32
        #expect { try LoRA.attach(to: enc, config: LoRAConfig(r: r), seed: 1) } throws: { "\($0)".contains("exceeds the width") }
        var t = LoRATargeting(); t.r = 4
        #expect { try SVDAdapter.attach(to: enc, targeting: t, initialRank: 4, maxRank: r, seed: 1, method: "ElaLoRA") } throws: { "\($0)".contains("exceeds the width") }
        #expect(try LoRA.attach(to: try tinyEncoder(), config: LoRAConfig(r: 16), seed: 1).count == 12)
    }

    /// A vocabulary id of 10^10 made the tokenizer allocate its size.
    @Test func hugeVocabularyIdsAreErrors() throws {
        let dir = tmpDir("tok")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let json = #"{"model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {"[UNK]": 0, "a": 10000000000}}}"#
        try json.write(toFile: dir + "/tokenizer.json", atomically: true, encoding: .utf8)
        #expect { try Tokenizer(path: dir) } throws: { "\($0)".contains("\"a\" has id 10000000000") }
        #expect(throws: TokenizerError.self) { try WordPiece(vocab: ["[UNK]": 0, "b": -1]) }
    }

    func smallRun(_ dir: String, epochs: Double = 2) throws -> Trainer {
        var cfg = TrainConfig()
        cfg.epochs = epochs; cfg.batchSize = 8; cfg.checkpointEvery = 3; cfg.evalEvery = 0
        let (m, method) = try tinyModel()
        return try Trainer(model: m, method: method, config: cfg, train: tinyTask(n: 40, seed: 3), dev: nil, labelNames: ["no", "yes"], outputDir: dir)
    }

    /// A batch position past the end of the epoch (the data shrank, or the file was edited) made resume
    /// spin forever; a negative or huge step trained with a negative learning rate or not at all.
    @Test func outOfRangeCheckpointPositionsAreErrors() throws {
        let dir = tmpDir("range")
        let t = try smallRun(dir)
        try t.run(shouldStop: { t.step == 4 })  // checkpoint at step 3
        let ck = try SafeTensorsFile(path: t.checkpointPath)
        let tensors = try ck.names.map { TensorToWrite(name: $0, dtype: ck.info($0)!.dtype, shape: ck.info($0)!.shape, bytes: Array(try ck.rawBytes($0))) }
        for (key, value) in [("batch_in_epoch", "99"), ("step", "-5"), ("step", "100000"), ("epoch", "-1"), ("best_step", "50")] {
            var meta = ck.metadata; meta[key] = value
            try SafeTensorsWriter.write(tensors, metadata: meta, to: t.checkpointPath)
            let r = try smallRun(dir)
            #expect { try r.run(resume: true) } throws: { "\($0)".contains("out") && "\($0)".contains(t.checkpointPath) }
        }
    }

    /// A refused resume names the settings that differ, not a 900-character fingerprint.
    @Test func refusedResumeNamesTheDifferences() {
        let old = #"{"data":{"train":"a.csv"},"training":{"lr":0.001,"seed":1},"method":"lora"}"#
        let new = #"{"data":{"train":"a.csv"},"training":{"lr":0.0005,"seed":1},"method":"lora"}"#
        #expect(Trainer.differences(old, new) == ["training.lr: 0.001 in the checkpoint, 0.0005 now"])
        #expect(Trainer.differences(#"{"data_content":{"a.csv":"12ab"}}"#, #"{"data_content":{"a.csv":"77ff"}}"#)
                == ["the data file a.csv changed since the checkpoint (its content hash differs)"])
    }

    /// Appending to metrics.jsonl on a full disk crashed the process (SIGILL); now the run stops with
    /// an error naming the file. /dev/full fails every write with ENOSPC.
    @Test func fullDiskWhileLoggingIsAnError() throws {
        let dir = tmpDir("full")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir + "/metrics.jsonl", withDestinationPath: "/dev/full")
        let t = try smallRun(dir)
        #expect { try t.run() } throws: { "\($0)".contains("metrics.jsonl: cannot write") }
    }

    /// With --lr 1e30 the "last good checkpoint" once held the parameters that blew up. A blow-up in the
    /// step right after a checkpoint now sets that checkpoint aside and names the one before it.
    @Test func divergenceRightAfterACheckpointKeepsTheOneBefore() throws {
        let dir = tmpDir("diverge")
        let t = try smallRun(dir)
        t.afterStep.append { step in if step == 6 { for i in 0..<t.model.params["classifier.weight"]!.count { t.model.params["classifier.weight"]!.value[i] = .greatestFiniteMagnitude } } }
        #expect { try t.run() } throws: { "\($0)".contains("at step 7") && "\($0)".contains("(step 3)") }
        let ck = try SafeTensorsFile(path: t.checkpointPath)
        #expect(ck.metadata["step"] == "3")
        #expect(try ck.floats("param.classifier.weight").allSatisfy { abs($0) < 1e3 })
        #expect(FileManager.default.fileExists(atPath: dir + "/checkpoint.diverged.safetensors"))
        // The advice works: resume with a lower learning rate (a setting resume may change, with a warning).
        var warned = ""
        var cfg = t.config; cfg.lr = 1e-4
        let (m, method) = try tinyModel()
        let r = try Trainer(model: m, method: method, config: cfg, train: t.train, dev: nil, labelNames: ["no", "yes"], outputDir: dir)
        t.fingerprint = #"{"training":{"lr":0.0005,"seed":42}}"#
        r.fingerprint = #"{"training":{"lr":0.0001,"seed":42}}"#
        // rewrite the kept checkpoint with the first run's fingerprint
        var meta = ck.metadata; meta["fingerprint"] = t.fingerprint
        try SafeTensorsWriter.write(try ck.names.map { TensorToWrite(name: $0, dtype: ck.info($0)!.dtype, shape: ck.info($0)!.shape, bytes: Array(try ck.rawBytes($0))) },
                                    metadata: meta, to: t.checkpointPath)
        r.onEvent = { if case let .warning(w) = $0 { warned = w } }
        try r.run(resume: true)
        #expect(warned.contains("training.lr: 0.0005 in the checkpoint, 0.0001 now"), "\(warned)")
        #expect(r.step == r.totalSteps)
        // A setting that changes the state's meaning is still refused, and named.
        r.fingerprint = #"{"training":{"lr":0.0001,"seed":7}}"#
        #expect { try r.loadCheckpoint() } throws: { "\($0)".contains("training.seed: 42 in the checkpoint, 7 now") && !"\($0)".contains("training.lr:") }
        // A checkpoint from before an option existed cannot be matched by any options: it says so.
        r.fingerprint = #"{"method_config":{"deltaTFraction":0.01},"training":{"lr":0.0005,"seed":42}}"#
        #expect { try r.loadCheckpoint() } throws: {
            "\($0)".contains("written by an older Rankwise") && "\($0)".contains("method_config.deltaTFraction: (none) in the checkpoint, 0.01 now")
                && "\($0)".contains("start a new run")
        }
        // A method's options grouped since the checkpoint (tinit in `phases`, r in `lora`) are the same settings:
        // the run resumes without a word; a changed value is named by its option.
        r.fingerprint = #"{"method_config":{"phases":{"tinit":3},"lora":{"r":8}},"training":{"lr":0.0005,"seed":42}}"#
        let flatCheckpoint = #"{"method_config":{"tinit":3,"lora":{"r":8}},"training":{"lr":0.0005,"seed":42}}"#
        #expect(Trainer.differences(flatCheckpoint, r.fingerprint).isEmpty)
        let changed = #"{"method_config":{"phases":{"tinit":4},"lora":{"r":8}},"training":{"lr":0.0005,"seed":42}}"#
        #expect(Trainer.differences(flatCheckpoint, changed) == ["method_config.tinit: 3 in the checkpoint, 4 now"])
        let ck2 = try SafeTensorsFile(path: r.checkpointPath)
        var meta2 = ck2.metadata
        meta2["fingerprint"] = flatCheckpoint
        try SafeTensorsWriter.write(try ck2.names.map {
            TensorToWrite(name: $0, dtype: ck2.info($0)!.dtype, shape: ck2.info($0)!.shape, bytes: Array(try ck2.rawBytes($0)))
        }, metadata: meta2, to: r.checkpointPath)
        warned = ""
        try r.loadCheckpoint()
        #expect(warned.isEmpty, "\(warned)")
    }

    /// A kill left partial checkpoint files forever, and metrics.jsonl repeated the steps after the
    /// checkpoint once resumed.
    @Test func resumeCleansLeftoversAndDoesNotRepeatMetrics() throws {
        let dir = tmpDir("leftovers")
        var cfg = TrainConfig()
        cfg.epochs = 2; cfg.batchSize = 8; cfg.checkpointEvery = 3; cfg.evalEvery = 0; cfg.logEvery = 1
        func trainer() throws -> Trainer {
            let (m, method) = try tinyModel()
            return try Trainer(model: m, method: method, config: cfg, train: tinyTask(n: 40, seed: 3), dev: nil, labelNames: ["no", "yes"], outputDir: dir)
        }
        let a = try trainer()
        try a.run(shouldStop: { a.step == 5 })  // steps 4 and 5 logged, checkpoint at 3
        FileManager.default.createFile(atPath: dir + "/checkpoint.safetensors.tmp-99999-1", contents: Data([1, 2, 3]))
        a.logEvent(["event": "probe"])
        try trainer().run(resume: true)
        #expect(!FileManager.default.fileExists(atPath: dir + "/checkpoint.safetensors.tmp-99999-1"))
        let steps = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").compactMap { line -> Int? in
            guard let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], o["event"] as? String == "train" else { return nil }
            return (o["step"] as? NSNumber)?.intValue
        }
        #expect(steps == Array(1...10), "\(steps)")
    }

    /// An AdaLoRA rank_pattern with negative entries or modules that are not adapted loaded silently.
    @Test func badRankPatternsAreErrors() throws {
        let dir = tmpDir("pattern")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        func config(_ pattern: String) throws {
            try #"{"peft_type": "ADALORA", "init_r": 2, "target_r": 1, "lora_alpha": 4, "target_modules": ["query"], "rank_pattern": \#(pattern)}"#
                .write(toFile: dir + "/adapter_config.json", atomically: true, encoding: .utf8)
        }
        try config(#"{"encoder.layer.0.attention.self.query": [true, -1]}"#)
        #expect { try AdaLoRAFormat.readConfig(directory: dir) } throws: { "\($0)".contains("entries must be true/false") }
        try config(#"{"encoder.layer.7.attention.self.query": [true, false]}"#)
        let (t, initR, pattern) = try #require(try AdaLoRAFormat.readConfig(directory: dir))
        let ads = try SVDAdapter.attach(to: try tinyEncoder(), targeting: t, initialRank: initR, seed: 0, method: "AdaLoRA")
        #expect { try AdaLoRAFormat.loadWeights(directory: dir, adapters: ads, pattern: pattern) } throws: { "\($0)".contains("rank_pattern names encoder.layer.7") }
    }
}
