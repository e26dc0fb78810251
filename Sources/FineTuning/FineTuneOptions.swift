import Foundation
import Yams
import Methods
import Models
import RankwiseCore
import Training

/// Where the model and the data come from, and where the run goes. Each property is an option.
public struct DataOptions: Settings, Sendable, Equatable {
    public var model = "minilm"
    public var train: String? = nil
    public var dev: String? = nil
    public var test: String? = nil
    public var textColumn = "text"
    public var pairColumn: String? = nil
    public var labelColumn = "label"
    public var labels: [String]? = nil
    public var regression = false
    public var dedup = false
    public var devFraction = 0.1
    public var testFraction = 0.1
    public var maxTrainExamples: Int? = nil
    public var maxEvalExamples: Int? = nil
    public var rougeExamples: Int? = nil
    public var splitSeed: UInt64 = 42
    public var flipLabels = 0.0
    public var trainOnPrompt = false
    public var truncation = "prompt"
    public var output = "runs/latest"
    public init() {}

    private enum CodingKeys: String, CodingKey {
        case model, train, dev, test, textColumn, pairColumn, labelColumn, labels, regression, dedup, devFraction,
            testFraction, maxTrainExamples, maxEvalExamples, rougeExamples, splitSeed, flipLabels, trainOnPrompt,
            truncation,
            output
    }

    /// Reads a run.json's data options; a key an older version did not write keeps its default.
    public init(from decoder: Decoder) throws {
        self.init()
        let container = try decoder.container(keyedBy: CodingKeys.self)
        model = try container.decodeIfPresent(String.self, forKey: .model) ?? model
        train = try container.decodeIfPresent(String.self, forKey: .train)
        dev = try container.decodeIfPresent(String.self, forKey: .dev)
        test = try container.decodeIfPresent(String.self, forKey: .test)
        textColumn = try container.decodeIfPresent(String.self, forKey: .textColumn) ?? textColumn
        pairColumn = try container.decodeIfPresent(String.self, forKey: .pairColumn)
        labelColumn = try container.decodeIfPresent(String.self, forKey: .labelColumn) ?? labelColumn
        labels = try container.decodeIfPresent([String].self, forKey: .labels)
        regression = try container.decodeIfPresent(Bool.self, forKey: .regression) ?? regression
        dedup = try container.decodeIfPresent(Bool.self, forKey: .dedup) ?? dedup
        devFraction = try container.decodeIfPresent(Double.self, forKey: .devFraction) ?? devFraction
        testFraction = try container.decodeIfPresent(Double.self, forKey: .testFraction) ?? testFraction
        maxTrainExamples = try container.decodeIfPresent(Int.self, forKey: .maxTrainExamples)
        maxEvalExamples = try container.decodeIfPresent(Int.self, forKey: .maxEvalExamples)
        rougeExamples = try container.decodeIfPresent(Int.self, forKey: .rougeExamples)
        splitSeed = try container.decodeIfPresent(UInt64.self, forKey: .splitSeed) ?? splitSeed
        flipLabels = try container.decodeIfPresent(Double.self, forKey: .flipLabels) ?? flipLabels
        trainOnPrompt = try container.decodeIfPresent(Bool.self, forKey: .trainOnPrompt) ?? trainOnPrompt
        // Runs from before the option cut the end.
        truncation = try container.decodeIfPresent(String.self, forKey: .truncation) ?? "end"
        output = try container.decodeIfPresent(String.self, forKey: .output) ?? output
    }

    public static let help = [
        "model":
            "base model: a Hugging Face directory, a GGUF file (decoders) or an alias (minilm, smollm2); a decoder "
            + "fine-tunes as a causal language model on JSONL (prompt/completion, messages or text)",
        "train":
            "training data (CSV, TSV, JSONL) or a known data set (tweets, snli, sms-spam, trec, bbc-news, "
            + "vader-tweets: `rankwise fetch-data`)",
        "dev": "dev data [none: split from --train]", "test": "test data [none: split from --train]",
        "textColumn": "text column", "pairColumn": "second text column, for sentence pairs",
        "labelColumn": "label column",
        "labels": "class names in id order [none: discovered]",
        "regression": "regression on a numeric label (MSE loss)",
        "dedup": "drop duplicate texts", "devFraction": "dev fraction when splitting",
        "testFraction": "test fraction when splitting",
        "maxTrainExamples": "use only N training examples (a seeded sample, after the split)",
        "maxEvalExamples": "evaluate on at most N dev and N test examples (a seeded sample)",
        "rougeExamples":
            "causal LM: after training, generate replies (greedy) to N test examples (a seeded sample; 0: none, -1: "
            + "all) and report ROUGE-1/2/L [none; 100 on the suite's generation tasks]",
        "splitSeed":
            "seed of the dev/test split and of the --max-train-examples sample; apart from --seed, so runs with "
            + "different seeds see the same data",
        "flipLabels":
            "replace the label of this fraction of the training examples (a seeded sample) by another class, to "
            + "measure robustness to label noise; dev and test stay clean",
        "trainOnPrompt":
            "causal LM: learn every token, the prompt's too (default: only the replies, as the chat template marks "
            + "them)",
        "truncation":
            "causal LM, an example longer than --max-length: `prompt` shortens the prompt text (the longest "
            + "message first, from its end) and keeps every reply, cutting the end only when the replies alone do not "
            + "fit; `end` keeps the start (PEFT / TRL's way)",
        "output": "output directory",
    ]

    /// `truncation` as the tokeniser takes it (validated).
    public var languageModelTruncation: LanguageModelTruncation {
        LanguageModelTruncation(rawValue: truncation) ?? .prompt
    }

    public func validate() throws {
        guard train != nil else { throw SettingsError("--train (or train: in --config) is required") }
        guard devFraction >= 0, testFraction >= 0, devFraction + testFraction < 1 else {
            throw SettingsError("--dev-fraction + --test-fraction must be below 1")
        }
        guard flipLabels >= 0, flipLabels <= 1 else {
            throw SettingsError("--flip-labels must be a fraction between 0 and 1 (got \(flipLabels))")
        }
        guard (maxTrainExamples ?? 1) > 0 else { throw SettingsError("--max-train-examples must be positive") }
        guard (maxEvalExamples ?? 1) > 0 else { throw SettingsError("--max-eval-examples must be positive") }
        guard LanguageModelTruncation(rawValue: truncation) != nil else {
            throw SettingsError("--truncation must be prompt or end (got \(truncation))")
        }
        guard (rougeExamples ?? 0) >= -1 else { throw SettingsError("--rouge-examples must be -1 (all), 0 or more") }
    }
}

/// A whole fine-tuning run's options: data, training, the method and the method's own options.
/// Flags and YAML keys are the same names; a key that belongs to another method is an error naming it.
public struct FineTuneOptions: Sendable {
    public var data = DataOptions()
    public var training = TrainConfig()
    public var method = "lora"
    /// The method's options as given (normalised key → text); the method's defaults fill the rest.
    public var methodOptions: [String: String] = [:]
    public init() {}

    /// Options from `values` (key → text; YAML first, then flags, so flags win). Keys in any spelling.
    public static func from(_ values: [(key: String, value: String)]) throws -> FineTuneOptions {
        var options = FineTuneOptions()
        var dataValues: [String: String] = [:]
        var trainValues: [String: String] = [:]
        let dataTable = SettingsTable.options(of: DataOptions.self)
        let trainTable = SettingsTable.options(of: TrainConfig.self)
        func has(_ t: [SettingInfo], _ k: String) -> Bool { t.contains { $0.key == k || $0.aliases.contains(k) } }
        for (k, v) in values where SettingsTable.normalise(k) == "method" { options.method = v }
        let entry = try MethodRegistry.entry(options.method)
        for (rawKey, v) in values {
            let k = SettingsTable.normalise(rawKey)
            if k == "method" { continue }
            if has(dataTable, k) {
                dataValues[k] = v
            } else if has(trainTable, k) {
                trainValues[k] = v
            } else if entry.hasOption(k) {
                options.methodOptions[k] = v
            } else if let other = MethodRegistry.owner(ofOption: k, except: options.method) {
                throw SettingsError(
                    "--\(k) is an option of method \(other), not of \(options.method) (see `rankwise methods`)")
            } else {
                throw SettingsError("unknown option --\(k) (see `rankwise train --help` and `rankwise methods`)")
            }
        }
        options.data = try SettingsTable.decode(DataOptions.self, values: dataValues)
        options.training = try SettingsTable.decode(TrainConfig.self, values: trainValues)
        try options.data.validate()
        try options.training.validate()
        return options
    }

    /// Checks a YAML config's text before a YAML parser sees it: configs are flat mappings of option
    /// names to scalars or short lists, so a huge file, deep nesting (which overflowed the parser's
    /// stack: brackets are counted across lines, and `- - - x` counts as indentation), anchors and aliases
    /// (a 287-byte "billion laughs" took 6 GB) and duplicate keys are errors.
    public static func checkConfigText(_ text: String, file: String) throws {
        guard text.utf8.count <= 1 << 20 else {
            throw SettingsError("\(file): \(text.utf8.count) bytes; a config file is at most 1 MiB")
        }
        var seen: [String: Int] = [:]
        var depth = 0
        var maxDepth = 0
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var quote: Character? = nil
            var previous: Character = " "
            for c in line {
                if let q = quote {
                    if c == q { quote = nil }
                    previous = c
                    continue
                }
                if c == "#" && (previous == " " || previous == "\t") { break }
                switch c {
                case "\"", "'": quote = c
                case "[", "{":
                    depth += 1
                    maxDepth = max(maxDepth, depth)
                case "]", "}": depth -= 1
                case "&",
                    "*" where " \t[{,:-".contains(previous):
                    throw SettingsError(
                        "\(file), line \(n + 1): YAML anchors and aliases (& and *) are not allowed in a config file")
                default: break
                }
                previous = c
            }
            // Block indicators ("- ", "? ") at the start of a line nest like indentation.
            var indent = 0
            var rest = line[...]
            while indent <= 16, let c = rest.first,
                c == " " || c == "\t"
                    || ((c == "-" || c == "?") && (rest.dropFirst().first.map { $0 == " " || $0 == "\t" } ?? true))
            {
                indent += c == "-" || c == "?" ? 2 : 1
                rest = rest.dropFirst()
            }
            guard maxDepth <= 4, indent <= 16 else {
                throw SettingsError("\(file), line \(n + 1): nested too deeply for a config file (options are flat)")
            }
            if indent == 0, let colon = line.firstIndex(of: ":"), !line.hasPrefix("#"), !line.hasPrefix("-") {
                let key = SettingsTable.normalise(String(line[..<colon]).trimmingCharacters(in: .whitespaces))
                if let first = seen[key] {
                    throw SettingsError("\(file), line \(n + 1): \(key) is already set on line \(first)")
                }
                seen[key] = n + 1
            }
        }
    }

    /// The options of a YAML config text (checked first: `checkConfigText`) as key/value pairs, each value
    /// the text as written (a list joined by commas; YAML's plain yes/no/on/off as true/false), parsed
    /// later exactly as the same flag would be (so `1e-3` and `010` read as on the command line, and YAML 1.1
    /// forms such as `0x1F` or `1_000` are errors); an empty or null value is an error. Yams is used only to build the
    /// document's tree: its typed
    /// constructors stop the process on inputs such as a complex key (`? - a`) or an overflowing
    /// sexagesimal integer (`9223372036854775807:00`), both found by the fuzzer.
    public static func values(fromYAML text: String, file: String) throws -> [(key: String, value: String)] {
        try checkConfigText(text, file: file)
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch { throw SettingsError("\(file): not valid YAML (\(error))") }
        guard case .mapping(let map)? = root else {
            throw SettingsError("\(file): not a mapping of option names to values")
        }
        func line(_ n: Node) -> String { "\(file), line \(n.mark?.line ?? 1)" }  // Yams counts lines from 1
        func value(_ n: Node, of key: String) throws -> String {
            switch n {
            case .scalar(let s) where s.style == .plain && ["", "~", "null", "Null", "NULL"].contains(s.string):
                throw SettingsError("\(line(n)): \(key) has no value (leave the key out for its default)")
            case .scalar(let s):
                return s.style == .plain ? Bool.construct(from: s).map { $0 ? "true" : "false" } ?? s.string : s.string
            case .sequence(let q):
                return try q.map { item in
                    guard case .scalar = item else {
                        throw SettingsError(
                            "\(line(item)): \(key) holds a list or mapping inside its list; an option takes a value "
                                + "or a flat list"
                        )
                    }
                    return try value(item, of: key)
                }.joined(separator: ",")
            default:
                throw SettingsError("\(line(n)): the value of \(key) is a mapping; an option takes a value or a list")
            }
        }
        for k in map.keys {
            guard case .scalar = k else {
                throw SettingsError("\(line(k)): a key must be a plain name, not a list or a mapping")
            }
        }
        var out: [(key: String, value: String)] = []
        var seen: [String: String] = [:]
        for (k, v) in map {
            guard case .scalar(let name) = k else { continue }
            let norm = SettingsTable.normalise(name.string)
            if let first = seen[norm] { throw SettingsError("\(line(k)): \(name.string) is already set (as \(first))") }
            seen[norm] = name.string
            let text = try value(v, of: name.string)
            // A value of the wrong type is an error here, where its line is known (unknown names are `from`'s to
            // report).
            if let info = optionInfo(norm, method: methodName(map)), info.parse(text) == nil {
                throw SettingsError("\(line(v)): --\(info.key): expected \(info.typeName), got \"\(text)\"")
            }
            out.append((name.string, text))
        }
        return out.sorted { $0.key < $1.key }
    }

    /// The option `key` (normalised) names: a data or training option, else one of `method` (or of the first
    /// registered method that has it); nil for an unknown name.
    static func optionInfo(_ key: String, method: String?) -> SettingInfo? {
        func find(_ table: [SettingInfo]) -> SettingInfo? { table.first { $0.key == key || $0.aliases.contains(key) } }
        if let info = find(SettingsTable.options(of: DataOptions.self))
            ?? find(SettingsTable.options(of: TrainConfig.self))
        {
            return info
        }
        let owner =
            method.flatMap { try? MethodRegistry.entry($0) }.flatMap { $0.hasOption(key) ? $0 : nil }
            ?? MethodRegistry.all.first { $0.hasOption(key) }
        return owner.flatMap { find($0.options) }
    }

    /// The `method` a YAML mapping names, if any.
    static func methodName(_ map: Node.Mapping) -> String? {
        for (key, value) in map {
            guard case .scalar(let name) = key, SettingsTable.normalise(name.string) == "method",
                case .scalar(let v) = value
            else { continue }
            return v.string
        }
        return nil
    }

    /// Key/value pairs of a YAML or JSON mapping file, as `from` takes them.
    public static func values(fromYAMLMapping obj: Any, file: String) throws -> [(key: String, value: String)] {
        guard let map = obj as? [String: Any] else {
            throw SettingsError("\(file): not a mapping of option names to values")
        }
        return map.sorted { $0.key < $1.key }.map { ($0.key, SettingsTable.text(of: $0.value)) }
    }

    /// Splits command-line arguments (`--key value`, `--key=value`, bare `--flag`) into pairs. A bare
    /// flag is a Boolean option of any table; `boolean` says which keys those are.
    public static func values(fromArguments args: [String]) throws -> [(key: String, value: String)] {
        let booleans = Set(
            (SettingsTable.options(of: DataOptions.self) + SettingsTable.options(of: TrainConfig.self)
                + MethodRegistry.all.flatMap(\.options)).filter(\.isFlag).flatMap { [$0.key] + $0.aliases })
        var out: [(key: String, value: String)] = []
        var i = 0
        while i < args.count {
            let a = args[i]
            guard a.hasPrefix("--"), a.count > 2 else {
                throw SettingsError("unexpected argument \"\(a)\" (options are --name value)")
            }
            if let eq = a.firstIndex(of: "=") {
                out.append((String(a[a.index(a.startIndex, offsetBy: 2)..<eq]), String(a[a.index(after: eq)...])))
                i += 1
                continue
            }
            let key = String(a.dropFirst(2))
            if booleans.contains(SettingsTable.normalise(key)) {
                if i + 1 < args.count, Bool.parse(args[i + 1]) != nil {
                    out.append((key, args[i + 1]))
                    i += 2
                } else {
                    out.append((key, "true"))
                    i += 1
                }
                continue
            }
            guard i + 1 < args.count, !args[i + 1].hasPrefix("--") else {
                throw SettingsError("--\(key) needs a value (or is not an option: see --help)")
            }
            out.append((key, args[i + 1]))
            i += 2
        }
        return out
    }

    /// Everything that must match for a checkpoint to be resumed (the output and the step limit may change).
    /// `dataHashes`: content hashes of the data files (file → hash), so a file that changed is refused by name.
    /// `--truncation` counts only for a causal LM, and only when it is not `end` (what runs from before the option
    /// did), so that their checkpoints still resume.
    public func fingerprint(
        methodConfigJSON: String, dataHashes: [String: String] = [:], languageModel: Bool = false
    ) -> String {
        var d = data
        d.output = ""
        var t = training
        t.maxSteps = nil
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        var dj = (try? enc.encode(d)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        if !languageModel || d.truncation == LanguageModelTruncation.end.rawValue,
            var object = (try? JSONSerialization.jsonObject(with: Data(dj.utf8))) as? [String: Any]
        {
            object["truncation"] = nil
            let options: JSONSerialization.WritingOptions = [.sortedKeys, .withoutEscapingSlashes]
            dj =
                (try? JSONSerialization.data(withJSONObject: object, options: options)).map {
                    String(decoding: $0, as: UTF8.self)
                } ?? dj
        }
        let tj = (try? enc.encode(t)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        let hj = (try? enc.encode(dataHashes)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        return "{\"data\":\(dj),\"data_content\":\(hj),\"training\":\(tj),"
            + "\"method\":\"\(method)\",\"method_config\":\(methodConfigJSON)}"
    }

    /// Help text for every option: data, training, then each registered method's own.
    public static func helpText() -> String {
        var lines = ["Data and output:"] + SettingsTable.helpLines(SettingsTable.options(of: DataOptions.self))
        lines += ["", "Training:"] + SettingsTable.helpLines(SettingsTable.options(of: TrainConfig.self))
        lines += ["", "--method NAME (default: lora): one of " + MethodRegistry.names.joined(separator: ", ")]
        for e in MethodRegistry.all {
            lines += ["", "Method \(e.name): \(e.summary)"] + SettingsTable.helpLines(e.options)
        }
        return lines.joined(separator: "\n")
    }
}
