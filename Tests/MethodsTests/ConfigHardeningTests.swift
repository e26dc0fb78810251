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

    @Test func ordinaryConfigsPass() throws {
        let text = "train: tweets   # the * in a comment is fine\ntarget_modules: [query, value]\nlr: 5e-3\nname: \"a & b *c\"\nlabels:\n  - negative\n  - positive\n"
        try FineTuneOptions.checkConfigText(text, file: "c.yaml")
        let values = try FineTuneOptions.values(fromYAML: "lr: 5e-3\ntarget_modules: [query, value]\n", file: "c.yaml")
        #expect(values.map(\.key).sorted() == ["lr", "target_modules"])
    }

    /// Complex keys (a list or a mapping as a key) stopped the process inside Yams (the fuzzer's seed 201
    /// found `? - negative` under `labe|s:`); they are now a clear error naming the file and line.
    @Test func complexKeysAreErrors() {
        for text in ["train: tweets\nlabe|s:\n? - negative\n  - positive\n", "? [a, b]\n: 1\n", "lr: 1\nx:\n  ? {a: 1}\n  : 2\n"] {
            #expect { try FineTuneOptions.values(fromYAML: text, file: "c.yaml") } throws: { "\($0)".contains("c.yaml, line") && "\($0)".contains("plain name") }
        }
    }
}
