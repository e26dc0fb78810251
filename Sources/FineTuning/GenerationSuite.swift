import Data
import Foundation
import RankwiseCore
import Yams

/// The suite's generation tasks (prompt and reference reply, for causal-LM fine-tuning and ROUGE), read from the
/// files their PyPI packages ship.
extension DataSuite {
    /// The question asked of each summary aspect.
    static let aclsumAspects = ["challenge", "approach", "outcome"]

    static let aclsum = SuiteDataSet(
        name: "aclsum",
        summary: "ACLSum aspect summaries: a paper's title and abstract -> one sentence on its challenge, approach or "
            + "outcome", task: .generation,
        package: "aclsum==0.1.2", sdist: false,
        members: ["aclsum/dataset/train.jsonl", "aclsum/dataset/val.jsonl", "aclsum/dataset/test.jsonl"],
        origin:
            "ACLSum (Takeshita et al. 2024, NAACL): 250 ACL Anthology papers with expert-written one-sentence "
            + "summaries of their challenge, approach and outcome, as shipped in aclsum 0.1.2 "
            + "(aclsum/dataset/{train,val,test}.jsonl)",
        licence: "package and data: MIT (aclsum's PKG-INFO)",
        splitNote:
            "ACLSum's own split by paper (train 100, val 50 -> dev, test 100); one example per paper and aspect; the "
            + "prompt is the title and the abstract's sentences, then the question",
        read: { root in
            var dropped: [String: Int] = [:]
            func load(_ part: String) throws -> [SuiteDataSet.Row] {
                let path = root + "/aclsum/dataset/\(part).jsonl"
                guard let text = FileManager.default.contents(atPath: path).map({ String(decoding: $0, as: UTF8.self) })
                else { throw DataError("\(path): cannot read") }
                var rows: [SuiteDataSet.Row] = []
                for (index, line) in text.split(separator: "\n").enumerated() {
                    guard let paper = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any],
                        let title = paper["title"] as? String,
                        let abstract = (paper["sentences"] as? [String: Any])?["abstract"] as? [String],
                        let summary = paper["summary"] as? [String: Any]
                    else { throw DataError("\(path): line \(index + 1): not an ACLSum paper record") }
                    for aspect in aclsumAspects {
                        guard let reference = summary[aspect] as? String, !reference.isEmpty else {
                            dropped["no \(aspect) summary", default: 0] += 1
                            continue
                        }
                        let prompt =
                            "Title: \(title)\nAbstract: \(abstract.joined(separator: " "))\n\n"
                            + "In one sentence, what is the paper's \(aspect)?"
                        rows.append(.init(text: prompt, pair: nil, label: reference))
                    }
                }
                return rows
            }
            return .init(train: try load("train"), dev: try load("val"), test: try load("test"), dropped: dropped)
        })

    static let chatterbot = SuiteDataSet(
        name: "chatterbot",
        summary: "ChatterBot English dialogue corpus: a statement -> the reply written for it (21 topics)",
        task: .generation, package: "chatterbot-corpus==1.3.3", sdist: false,
        members: ["chatterbot_corpus/data/english/"],
        origin:
            "chatterbot-corpus 1.3.3 (Gunther Cox and contributors): hand-written English conversations in 21 topic "
            + "files (chatterbot_corpus/data/english/*.yml); each statement and the line that answers it is one "
            + "example",
        licence: "BSD-3-Clause (the package's classifier)",
        splitNote:
            "seeded 80/10/10 split by statement: every reply to one statement (compared normalised) is in the same "
            + "part",
        read: { root in
            var dropped: [String: Int] = [:]
            let folder = root + "/chatterbot_corpus/data/english"
            let files = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter {
                $0.hasSuffix(".yml")
            }.sorted()
            guard !files.isEmpty else { throw DataError("\(folder): no .yml files") }
            var groups: [String: [SuiteDataSet.Row]] = [:]
            var order: [String] = []
            for file in files {
                let text = String(
                    decoding: FileManager.default.contents(atPath: folder + "/" + file) ?? Data(), as: UTF8.self)
                guard let document = try? Yams.load(yaml: text) as? [String: Any],
                    let conversations = document["conversations"] as? [Any]
                else {
                    dropped["unreadable files", default: 0] += 1
                    continue
                }
                for case let lines as [Any] in conversations {
                    let turns = lines.map { line -> String? in
                        let text = (line as? String ?? (line as? CustomStringConvertible)?.description)?
                            .trimmingCharacters(in: .whitespacesAndNewlines)
                        return text?.isEmpty == false ? text : nil
                    }
                    for index in 0..<max(0, turns.count - 1) {
                        guard let statement = turns[index], let reply = turns[index + 1] else {
                            dropped["empty lines", default: 0] += 1
                            continue
                        }
                        let key = normalised(statement)
                        if groups[key] == nil {
                            order.append(key)
                            groups[key] = []
                        }
                        if groups[key]!.contains(where: { normalised($0.label) == normalised(reply) }) {
                            dropped["duplicates", default: 0] += 1
                            continue
                        }
                        groups[key]!.append(.init(text: statement, pair: nil, label: reply))
                    }
                }
            }
            var random = SplitMix64(seed: splitSeed)
            random.shuffle(&order)
            let tenth = order.count / 10
            func rows(_ keys: ArraySlice<String>) -> [SuiteDataSet.Row] { keys.flatMap { groups[$0]! } }
            return .init(
                train: rows(order[(2 * tenth)...]), dev: rows(order[..<tenth]), test: rows(order[tenth..<(2 * tenth)]),
                dropped: dropped)
        })
}
