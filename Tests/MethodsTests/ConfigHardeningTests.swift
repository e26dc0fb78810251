import Foundation
import Testing
import FineTuning

/// YAML configs that crashed or exhausted the machine, and duplicate keys that were silently merged.
@Suite struct ConfigHardeningTests {
    @Test func hostileConfigsAreErrors() {
        let deep = "lr: " + String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000)
        let bomb = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
        let indented = "a:\n" + (1...40).map { String(repeating: " ", count: $0) + "k\($0):" }.joined(separator: "\n")
        for (name, text, says) in [("deep", deep, "nested too deeply"), ("bomb", bomb, "anchors and aliases"), ("indented", indented, "nested too deeply"),
                                   ("duplicate", "lr: 1e-3\nepochs: 2\nlr: 5e-4\n", "already set on line 1"),
                                   ("duplicate spelling", "max_length: 64\nmax-length: 32\n", "already set on line 1"),
                                   ("huge", String(repeating: "# padding\n", count: 120_000), "at most 1 MiB")] {
            #expect(name.isEmpty == false)
            #expect { try FineTuneOptions.checkConfigText(text, file: "c.yaml") } throws: { "\($0)".contains(says) && "\($0)".contains("c.yaml") }
        }
    }

    /// A value of the wrong type names the file and its line (it named only the option), and a list inside a
    /// list is an error at its line (it was flattened into one list).
    @Test func badValuesNameTheFileAndLine() {
        #expect { try FineTuneOptions.values(fromYAML: "train: tweets\nlr: fast\n", file: "c.yaml") } throws: {
            "\($0)".contains("c.yaml, line 2") && "\($0)".contains("--lr: expected number, got \"fast\"")
        }
        #expect { try FineTuneOptions.values(fromYAML: "method: dynamic\nmode: sideways\n", file: "c.yaml") } throws: {
            "\($0)".contains("c.yaml, line 2") && "\($0)".contains("expected one of scale, ranks")
        }
        #expect { try FineTuneOptions.values(fromYAML: "lr: 1e-3\ntarget_modules:\n  - - query\n    - key\n", file: "c.yaml") } throws: {
            "\($0)".contains("c.yaml, line 3") && "\($0)".contains("inside its list")
        }
    }

    /// SoRA's sparsifying schedule is reached as --xi-schedule (--schedule is the learning rate's).
    @Test func soraScheduleHasItsOwnName() throws {
        let o = try FineTuneOptions.from([("train", "tweets"), ("method", "sora"), ("xi-schedule", "log_linear")])
        #expect(o.methodOptions["xi-schedule"] == "log_linear" && o.training.schedule == .linear)
    }

    @Test func ordinaryConfigsPass() throws {
        let text = "train: tweets   # the * in a comment is fine\ntarget_modules: [query, value]\nlr: 5e-3\nname: \"a & b *c\"\nlabels:\n  - negative\n  - positive\n"
        try FineTuneOptions.checkConfigText(text, file: "c.yaml")
        let values = try FineTuneOptions.values(fromYAML: "lr: 5e-3\ntarget_modules: [query, value]\n", file: "c.yaml")
        #expect(values.map(\.key).sorted() == ["lr", "target_modules"])
    }

    /// Inputs that stopped the process inside Yams' typed constructors, found by the fuzzer: complex keys
    /// (seed 201: `? - negative` under `labe|s:`) and an overflowing sexagesimal integer (seed 209). Now a
    /// clear error naming the file and line, or a value passed on as written (for the option to reject).
    @Test func yamlInputsThatCrashedYams() throws {
        for text in ["train: tweets\nlabe|s:\n? - negative\n  - positive\n", "? [a, b]\n: 1\n"] {
            #expect { try FineTuneOptions.values(fromYAML: text, file: "c.yaml") } throws: { "\($0)".contains("c.yaml, line") && "\($0)".contains("plain name") }
        }
        #expect { try FineTuneOptions.values(fromYAML: "lr: 1\nx:\n  ? {a: 1}\n  : 2\n", file: "c.yaml") } throws: { "\($0)".contains("c.yaml, line 3") && "\($0)".contains("x is a mapping") }
        // The overflowing value reaches the option's own parser, which names the file and line.
        #expect { try FineTuneOptions.values(fromYAML: "max-train-examples: 9223372036854775807:00\nseed: 7\n", file: "c.yaml") } throws: {
            "\($0)".contains("c.yaml, line 1") && "\($0)".contains("--max-train-examples: expected integer")
        }
        // Values as written; YAML's plain booleans as true/false, quoted text untouched, lists joined.
        let v = try FineTuneOptions.values(fromYAML: "lr: 5e-3\ngate: yes\nname: \"yes\"\ntarget_modules: [query, value]\n", file: "c.yaml")
        #expect(v.map { "\($0.key)=\($0.value)" } == ["gate=true", "lr=5e-3", "name=yes", "target_modules=query,value"])
        #expect { try FineTuneOptions.values(fromYAML: "{lr: 1, lr: 2}", file: "c.yaml") } throws: { "\($0)".contains("already set") }
        // Empty and null values (found by review: `output:` became "", `output: ~` a directory named ~).
        for text in ["output:\n", "output: ~\n", "tinit: null\n"] {
            #expect { try FineTuneOptions.values(fromYAML: text, file: "c.yaml") } throws: { "\($0)".contains("c.yaml, line 1") && "\($0)".contains("has no value") }
        }
        #expect(try FineTuneOptions.values(fromYAML: "output: \"~\"\n", file: "c.yaml").map(\.value) == ["~"])  // quoted: as written
    }

    /// Nesting spread over lines (brackets on lines of their own, or `- - - x`) reached Yams' recursive
    /// parser unchecked (found by review); both are errors before parsing now.
    @Test func nestingAcrossLinesIsAnError() {
        for text in [String(repeating: "[\n", count: 200_000), String(repeating: "? ", count: 100_000) + "x\n", String(repeating: "- ", count: 100_000) + "x\n"] {
            #expect { try FineTuneOptions.values(fromYAML: text, file: "c.yaml") } throws: { "\($0)".contains("nested too deeply") }
        }
    }
}
