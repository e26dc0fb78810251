import FineTuning
import Foundation
import Testing
import TestSupport

/// The README's "From Swift" example, compiled and run (on a few real tweets, a few steps).
@Suite struct LibraryExampleTests {
    @Test func fineTunesFromSwift() throws {
        guard Fixtures.modelDir() != nil, Fixtures.tweets() != nil else { return }
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("rankwise-example-\(getpid())").path
        // --- README example begins
        var options = FineTuneOptions()
        options.data.train = "tweets"                  // a CSV/TSV/JSONL path, or a known data alias
        options.data.maxTrainExamples = 64
        options.data.output = output
        options.method = "lora"                        // any name from `rankwise methods`
        options.methodOptions = ["r": "4", "alpha": "8"]
        options.training.epochs = 1
        options.training.batchSize = 16
        options.training.lr = 1e-3
        let job = FineTuneJob(options: options)
        job.print = { _ in }                           // the report; default: standard output
        job.onEvent = { event, trainer in
            if case let .step(step, total, _, loss, _, _, _) = event, step == total { _ = (trainer, loss) }
        }
        let result = try job.run()
        // result.metrics["test_macro_f1"], result.ranks, output/best (a PEFT adapter)
        // --- README example ends
        #expect(result.steps == 4)
        #expect(result.metrics["test_accuracy"] != nil && result.ranks.count == 36)
        #expect(FileManager.default.fileExists(atPath: output + "/best/adapter_config.json"))
    }
}
