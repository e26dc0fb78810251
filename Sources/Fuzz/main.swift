// rankwise-fuzz: a seeded mutation fuzzer over every file format Rankwise reads. Each target's seed
// corpus (Tests/FuzzCorpus/<target>/, every file replayed first, crash cases included) is mutated
// (bit flips, byte edits, interesting numbers and tokens, splices, truncation) and fed to the reader.
// A Swift error is the expected outcome for bad input; a crash, a hang (no progress for 10 s) or an
// allocation beyond the memory limit ends the process with the offending input saved, to be added
// to the corpus as a regression case.
//
//   rankwise-fuzz [--seconds N per target] [--seed S] [--corpus DIR] [--work DIR] [target ...]
import Adapters
import Data
import FineTuning
import Foundation
import GGUF
import Methods
import Models
import RankwiseCore
import SafeTensors
import Tokenizers

struct Target {
    let name: String
    /// The file name the reader expects (nil: keep the seed's own name, e.g. its extension).
    let fileName: String?
    let run: (_ path: String, _ dir: String) throws -> Void
}

let targets: [Target] = [
    Target(name: "safetensors", fileName: "model.safetensors") { path, _ in
        let f = try SafeTensorsFile(path: path)
        for n in f.names {
            guard let info = f.info(n) else { continue }
            if info.dtype == .I64 { _ = try f.ints(n) } else { _ = try? f.floats(n) }
        }
    },
    Target(name: "gguf", fileName: "model.gguf") { path, _ in
        let file = try GGUFFile(path: path)
        for tensor in file.tensors { _ = try file.floats(tensor.name) }
        for key in file.keys { _ = try? file.strings(key) }
        if file.metadata["tokenizer.ggml.model"] != nil {
            let (tokenizer, _) = try Tokenizer.gguf(file)
            _ = tokenizer.decode(tokenizer.encode("Hello <|im_start|>world 123 ½ 😀\n\n").ids)
        }
    },
    Target(name: "adapter-config", fileName: "adapter_config.json") { _, dir in
        _ = try? PEFTFormat.readConfig(directory: dir)
        _ = try AdaLoRAFormat.readConfig(directory: dir)
    },
    Target(name: "rankwise-json", fileName: "rankwise.json") { _, dir in _ = PEFTFormat.readExtra(directory: dir) },
    // Every registered family's config reader, through the registry (model_type picks it; the directory has
    // no weights, so a config that parses ends in "no model.safetensors").
    Target(name: "model-config", fileName: "config.json") { _, dir in
        _ = try BackboneFamilies.load(directory: dir, pooled: nil)
    },
    Target(name: "tokenizer", fileName: "tokenizer.json") { _, dir in
        let t = try Tokenizer(path: dir)
        for s in ["hello world", "A man eats.", "", "ünïcödé 漢字 😀", String(repeating: "a", count: 300)] {
            _ = t.decode(t.encode(s, pair: "the cat", maxLength: 16).ids)
        }
    },
    // A decoder directory's tokenizer_config.json (special tokens, chat template) next to a small BPE tokenizer.json.
    Target(name: "tokenizer-config", fileName: "tokenizer_config.json") { _, dir in
        let tokenizerJSON = """
            {"model": {"type": "BPE", "vocab": {"<s>": 0, "</s>": 1, "a": 2, "b": 3, "ab": 4}, "merges": ["a b"]},
             "added_tokens": [{"id": 0, "content": "<s>", "special": true}, {"id": 1, "content": "</s>"}],
             "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false}, "decoder": {"type": "ByteLevel"}}
            """
        try tokenizerJSON.write(toFile: dir + "/tokenizer.json", atomically: true, encoding: .utf8)
        let (tokenizer, specials) = try Tokenizer.huggingFace(directory: dir)
        if let template = specials.chatTemplate, let chat = try? ChatTemplate(jinja: template) {
            _ = tokenizer.encode(chat.render([ChatMessage(role: "user", content: "ab")]))
        }
    },
    // Causal-LM JSONL (prompt/completion, messages, text), each example then tokenised through ChatML.
    Target(name: "lm-jsonl", fileName: "train.jsonl") { path, _ in
        let examples = try LanguageModelData.read(try Data(contentsOf: URL(fileURLWithPath: path)), file: path)
        let model = try BPE(tokens: ["<|im_end|>", "a", "b", "ab"], merges: ["a b"])
        let tokenizer = Tokenizer(
            normalizer: nil, preTokenizer: ByteLevelPreTokenizer(split: .gpt2), model: model, postProcessor: nil,
            addedTokens: [("<|im_end|>", 0)], decoder: .byteLevel)
        let specials = TokenizerSpecials(bos: nil, eos: 0, pad: nil, addBOS: false, addEOS: false, chatTemplate: nil)
        for (line, example) in examples {
            for template in [ChatTemplate.chatML(defaultSystem: "Be helpful."), nil] {
                _ = LanguageModelData.tokenize(
                    example, line: line, tokenizer: tokenizer, specials: specials, template: template, maxLength: 64)
            }
        }
    },
    Target(name: "yaml-config", fileName: "config.yaml") { path, _ in
        let text = try String(contentsOfFile: path, encoding: .utf8)
        _ = try FineTuneOptions.from(try FineTuneOptions.values(fromYAML: text, file: path))
    },
    Target(name: "csv", fileName: nil) { path, _ in
        var spec = DataSpec()
        if path.hasSuffix(".tsv") {
            spec.textColumn = "sentence1"
            spec.pairColumn = "sentence2"
        }
        _ = try Dataset.load(path: path, spec: spec)
    },
]

// MARK: Mutation

var rng = SplitMix64(seed: 1)
func pick(_ n: Int) -> Int { Int(rng.next() % UInt64(max(n, 1))) }
let tokens: [[UInt8]] = [
    "0", "-1", "1e309", "nan", "9223372036854775807", "18446744073709551616", "2147483648", "4294967296", "1e10",
    "\"", "\\", "[", "{", "]", "}", ",", ":", "null", "true", "\"\"", "&a", "*a", "- ", "\n", "\r\n", "\t",
    "\u{0}", "\u{FEFF}", "\"F64\"", "\"I64\"", "[1000000000,1000000000]", "%", "\u{1F600}", "##", "[UNK]",
].map { Array($0.utf8) }

func mutate(_ input: [UInt8], other: [UInt8]) -> [UInt8] {
    var b = input
    for _ in 0...pick(4) {
        switch pick(9) {
        case 0 where !b.isEmpty:
            let i = pick(b.count)
            b[i] ^= UInt8(1 << pick(8))
        case 1 where !b.isEmpty: b[pick(b.count)] = UInt8(pick(256))
        case 2 where !b.isEmpty: b.remove(at: pick(b.count))
        case 3: b.insert(UInt8(pick(256)), at: pick(b.count + 1))
        case 4: b.insert(contentsOf: tokens[pick(tokens.count)], at: pick(b.count + 1))
        case 5 where !b.isEmpty:  // replace a run of digits with an interesting number
            let i = pick(b.count)
            var j = i
            while j < b.count, (48...57).contains(b[j]) || b[j] == 45 { j += 1 }
            b.replaceSubrange(i..<j, with: tokens[pick(9)])
        case 6 where b.count > 1:  // duplicate a chunk
            let i = pick(b.count)
            let n = 1 + pick(min(64, b.count - i))
            b.insert(contentsOf: b[i..<(i + n)], at: pick(b.count + 1))
        case 7 where !other.isEmpty:  // splice with another seed
            let i = pick(b.count + 1)
            let j = pick(other.count)
            b = Array(b[..<i]) + Array(other[j...])
        case 8 where !b.isEmpty: b.removeSubrange(pick(b.count)...)
        default: break
        }
    }
    return b
}

// MARK: Driver

var seconds = 10.0
var seed: UInt64 = 1
var corpus =
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .path + "/Tests/FuzzCorpus"
var work = FileManager.default.temporaryDirectory.appendingPathComponent("rankwise-fuzz-\(getpid())").path
var chosen: [String] = []
var args = CommandLine.arguments.dropFirst()
while let a = args.popFirst() {
    switch a {
    case "--seconds": seconds = Double(args.popFirst() ?? "") ?? seconds
    case "--seed": seed = UInt64(args.popFirst() ?? "") ?? seed
    case "--corpus": corpus = args.popFirst() ?? corpus
    case "--work": work = args.popFirst() ?? work
    case "-h", "--help":
        print(
            "usage: rankwise-fuzz [--seconds N] [--seed S] [--corpus DIR] [--work DIR] [target ...]; targets: "
                + "\(targets.map(\.name).joined(separator: " "))"
        )
        exit(0)
    default:
        guard targets.contains(where: { $0.name == a }) else {
            FileHandle.standardError.write(Data("rankwise-fuzz: unknown target \(a)\n".utf8))
            exit(2)
        }
        chosen.append(a)
    }
}
rng = SplitMix64(seed: seed)
var limit = rlimit(rlim_cur: 16 << 30, rlim_max: 16 << 30)  // an input asking for more memory is a finding
setrlimit(Int32(RLIMIT_AS.rawValue), &limit)

// Progress watchdog: an input that makes a reader spin is a hang.
nonisolated(unsafe) var progress = 0
nonisolated(unsafe) var currentInput = ""
Thread.detachNewThread {
    var last = -1
    var still = 0
    while true {
        sleep(1)
        if progress == last {
            still += 1
        } else {
            still = 0
            last = progress
        }
        if still >= 10 {
            FileHandle.standardError.write(Data("rankwise-fuzz: HANG (no progress for 10 s) on \(currentInput)\n".utf8))
            exit(3)
        }
    }
}

let fm = FileManager.default
var totalRuns = 0
for t in targets where chosen.isEmpty || chosen.contains(t.name) {
    let seedFiles = ((try? fm.contentsOfDirectory(atPath: corpus + "/" + t.name)) ?? []).sorted().map {
        corpus + "/" + t.name + "/" + $0
    }
    guard !seedFiles.isEmpty else {
        FileHandle.standardError.write(Data("rankwise-fuzz: no seed corpus for \(t.name) in \(corpus)\n".utf8))
        exit(2)
    }
    let seeds = seedFiles.map { [UInt8](fm.contents(atPath: $0) ?? Data()) }
    let dir = work + "/" + t.name
    try? fm.removeItem(atPath: dir)
    try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
    var runs = 0
    var errors = 0
    let start = Date()
    func feed(_ bytes: [UInt8], name: String) {
        let path = dir + "/" + name
        _ = fm.createFile(atPath: path, contents: Data(bytes))
        currentInput = path  // left in place if this input crashes the process
        do { try t.run(path, dir) } catch { errors += 1 }
        runs += 1
        progress += 1
    }
    // replay
    for (i, s) in seeds.enumerated() { feed(s, name: t.fileName ?? (seedFiles[i] as NSString).lastPathComponent) }
    while Date().timeIntervalSince(start) < seconds {
        let k = pick(seeds.count)
        feed(
            mutate(seeds[k], other: seeds[pick(seeds.count)]),
            name: t.fileName ?? (seedFiles[k] as NSString).lastPathComponent)
    }
    totalRuns += runs
    print(
        t.name.padding(toLength: 15, withPad: " ", startingAt: 0)
            + String(
                format: "%7d inputs (%d seeds), %d rejected with an error, 0 crashes, 0 hangs, %.0f s", runs,
                seeds.count, errors, Date().timeIntervalSince(start)))
}
try? fm.removeItem(atPath: work)
print("rankwise-fuzz: \(totalRuns) inputs, no crash and no hang (seed \(seed))")
