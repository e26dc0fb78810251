import Foundation
import Metrics
import Models
import RankwiseCore
import SafeTensors

extension Trainer {

    /// Every named state a checkpoint holds, with the prefix of its tensors.
    var namedStates: [(String, CheckpointState)] {
        method.checkpointStates.sorted { $0.key < $1.key }.map { ("method." + $0.key + ".", $0.value) } + [
            ("sampler.", sampler)
        ]
    }

    /// Writes trainable parameters, AdamW moments and the loop position in one file, atomically.
    public func saveCheckpoint() throws {
        let meta: [String: String] = [
            "step": String(step), "epoch": String(epoch), "batch_in_epoch": String(batchInEpoch),
            "adam_t": String(optimizer.t),
            "best_metric": String(bestMetric), "best_step": String(bestStep),
            "evals_since_best": String(evalsSinceBest),
            "seed": String(config.seed), "fingerprint": fingerprint, "format": "rankwise-checkpoint-2",
            "method": method.name, "sampler": sampler.name,
        ]
        if FileManager.default.fileExists(atPath: checkpointPath) {
            // A hard link keeps the previous checkpoint; the new one then replaces the name atomically,
            // so checkpoint.safetensors exists at every moment.
            unlink(previousCheckpointPath)
            guard link(checkpointPath, previousCheckpointPath) == 0 else {
                throw TrainError(
                    "\(checkpointPath): cannot keep the previous checkpoint (\(String(cString: strerror(errno))))")
            }
        }
        try SafeTensorsWriter.write(checkpointTensors(), metadata: meta, to: checkpointPath)
        onEvent(.checkpoint(step: step, path: checkpointPath))
    }

    /// Every tensor of the run's state as a checkpoint holds it: trainable parameters, Adam moments,
    /// and each method and sampler state under its prefix.
    public func checkpointTensors() -> [TensorToWrite] {
        var tensors: [TensorToWrite] = []
        for (p, off) in optimizer.slices {
            tensors.append(TensorToWrite(name: "param." + p.name, shape: p.shape, floats: p.value.array))
            tensors.append(
                TensorToWrite(
                    name: "adam.m." + p.name, shape: p.shape,
                    floats: Array(UnsafeBufferPointer(start: optimizer.m.data + off, count: p.count))))
            tensors.append(
                TensorToWrite(
                    name: "adam.v." + p.name, shape: p.shape,
                    floats: Array(UnsafeBufferPointer(start: optimizer.v.data + off, count: p.count))))
        }
        for (prefix, state) in namedStates {
            tensors += state.checkpointTensors().map {
                var t = $0
                t.name = prefix + t.name
                return t
            }
        }
        return tensors
    }

    /// Partial files of writers that were killed (`*.tmp-PID-…` next to checkpoints and adapters).
    func removeLeftovers() {
        let fm = FileManager.default
        for sub in ["", "/best", "/final"] {
            let d = outputDir + sub
            for f in (try? fm.contentsOfDirectory(atPath: d)) ?? [] where f.contains(".tmp-") {
                try? fm.removeItem(atPath: d + "/" + f)
            }
        }
    }

    /// After a resume from `step`: drops the metrics lines of steps after it (they will be written again).
    func truncateMetrics(after step: Int) throws {
        let p = outputDir + "/metrics.jsonl"
        guard let text = try? String(contentsOfFile: p, encoding: .utf8) else { return }
        metricsFile = nil
        let kept = text.split(separator: "\n").filter { line in
            guard let o = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any],
                let s = (o["step"] as? NSNumber)?.intValue
            else { return true }
            return s <= step
        }
        try AtomicFile.write(kept.map { $0 + "\n" }.joined(), to: p)
    }

    func lastCheckpointStep(_ path: String? = nil) throws -> Int {
        Int(try SafeTensorsFile(path: path ?? checkpointPath).metadata["step"] ?? "0") ?? 0
    }

    /// The checkpoint before the latest one (kept so that a blow-up right after a checkpoint leaves a good one).
    public var previousCheckpointPath: String { outputDir + "/checkpoint.previous.safetensors" }

    /// After a non-finite loss or gradient in the step after `step`: the latest checkpoint is good only
    /// if a finite loss was computed from its parameters, i.e. it is older than the current parameters.
    /// Otherwise it holds the parameters that just blew up: it is set aside and the previous one takes
    /// its place. Returns what to tell the user.
    func keepLastGoodCheckpoint() throws -> String {
        let fm = FileManager.default
        guard fm.fileExists(atPath: checkpointPath) else { return "No checkpoint was written yet; try a lower --lr." }
        if try lastCheckpointStep() >= step {
            let bad = outputDir + "/checkpoint.diverged.safetensors"
            try? fm.removeItem(atPath: bad)
            try fm.moveItem(atPath: checkpointPath, toPath: bad)
            guard fm.fileExists(atPath: previousCheckpointPath) else {
                return
                    "The only checkpoint (step \(step)) holds the diverged parameters (moved to \(bad)); start again "
                    + "with a lower --lr."
            }
            try fm.moveItem(atPath: previousCheckpointPath, toPath: checkpointPath)
        }
        return
            "The last good checkpoint is \(checkpointPath) (step \(try lastCheckpointStep())): `--resume` with a "
            + "lower --lr continues from it."
    }

    /// Restores everything `saveCheckpoint` wrote. Errors name what does not match.
    public func loadCheckpoint() throws {
        guard FileManager.default.fileExists(atPath: checkpointPath) else {
            throw TrainError("--resume: no checkpoint at \(checkpointPath)")
        }
        let f: SafeTensorsFile
        do { f = try SafeTensorsFile(path: checkpointPath) } catch { throw TrainError("\(error)") }
        let meta = f.metadata
        guard meta["format"] == "rankwise-checkpoint-2" else {
            throw TrainError(
                "\(checkpointPath): not a checkpoint of this Rankwise version (format "
                    + "\(meta["format"] ?? "missing")); start a new run"
            )
        }
        guard meta["method"] == method.name, meta["sampler"] == sampler.name else {
            throw TrainError(
                "\(checkpointPath) was written by method \(meta["method"] ?? "?") with the \(meta["sampler"] ?? "?") "
                    + "sampler; this run uses \(method.name) with \(sampler.name)"
            )
        }
        if meta["fingerprint"] != fingerprint {
            let diffs = Self.differences(meta["fingerprint"] ?? "{}", fingerprint)
            let fixed = diffs.filter { d in !Self.adjustableOnResume.contains { d.hasPrefix($0 + ":") } }
            // Settings the checkpoint does not know at all: an older Rankwise wrote it, and no options reproduce that
            // run.
            if fixed.contains(where: { $0.contains(": (none) in the checkpoint") }) {
                throw TrainError(
                    "\(checkpointPath) was written by an older Rankwise, before these settings existed: "
                        + fixed.filter { $0.contains(": (none) in the checkpoint") }.joined(separator: "; ")
                        + ". That run cannot continue with this version: start a new run (a new --output)")
            }
            let stored = Data((meta["fingerprint"] ?? "").utf8)
            let readable = (try? JSONSerialization.jsonObject(with: stored)) is [String: Any]
            guard fixed.isEmpty, readable else {
                throw TrainError(
                    "\(checkpointPath) was written with other settings: "
                        + (diffs.isEmpty ? "(unreadable fingerprint)" : fixed.joined(separator: "; "))
                        + ". Resume with the same settings, or use a new --output (these may change on resume: "
                        + Self.adjustableOnResume.map { $0.replacingOccurrences(of: "training.", with: "") }.sorted()
                        .joined(separator: ", ") + ")")
            }
            // No differences: the same settings in another layout (a method's options grouped since the checkpoint).
            if !diffs.isEmpty {
                onEvent(.warning("resuming with changed settings: " + diffs.joined(separator: "; ")))
                log(["event": "resume_changed", "changes": diffs])
            }
        }
        for (p, off) in optimizer.slices {
            for (prefix, dst) in [
                ("param.", p.value.data), ("adam.m.", optimizer.m.data + off), ("adam.v.", optimizer.v.data + off),
            ] {
                let name = prefix + p.name
                guard let info = f.info(name), info.shape == p.shape else {
                    throw TrainError("\(checkpointPath): tensor \(name) missing or mis-shaped")
                }
                let vals = try f.floats(name)
                vals.withUnsafeBufferPointer { dst.update(from: $0.baseAddress!, count: p.count) }
            }
        }
        func int(_ k: String) throws -> Int {
            guard let s = meta[k], let v = Int(s) else { throw TrainError("\(checkpointPath): metadata \(k) missing") }
            return v
        }
        step = try int("step")
        epoch = try int("epoch")
        batchInEpoch = try int("batch_in_epoch")
        // Out-of-range positions (a tampered file, or data that changed size) would train nothing or loop forever.
        let epochs = Int(config.epochs.rounded(.up))
        guard (0...totalSteps).contains(step), (0...max(epochs, 1)).contains(epoch),
            (0...sampler.batchesPerEpoch).contains(batchInEpoch)
        else {
            throw TrainError(
                "\(checkpointPath): position step \(step), epoch \(epoch), batch \(batchInEpoch) is outside this run "
                    + "(\(totalSteps) steps, \(epochs) epochs of \(sampler.batchesPerEpoch) batches)"
            )
        }
        for (prefix, state) in namedStates { try state.restore(from: CheckpointSection(file: f, prefix: prefix)) }
        optimizer.restore(t: try int("adam_t"))
        bestMetric = Double(meta["best_metric"] ?? "") ?? MetricOrder.worst(metricName)
        bestStep = try int("best_step")
        evalsSinceBest = try int("evals_since_best")
        guard (0...step).contains(bestStep), evalsSinceBest >= 0, (0...step).contains(optimizer.t) else {
            throw TrainError(
                "\(checkpointPath): best_step \(bestStep), evals_since_best \(evalsSinceBest) or adam_t "
                    + "\(optimizer.t) out of range for step \(step)"
            )
        }
        try truncateMetrics(after: step)
        log(["event": "resume", "step": step])
        onEvent(.resumed(step: step, epoch: epoch, batch: batchInEpoch))
    }

    /// Settings a resumed run may change (with a warning): they change how the state evolves, not its shape
    /// or the data it was computed from.
    static let adjustableOnResume: Set<String> = [
        "training.lr", "training.maxGradNorm", "training.weightDecay", "training.patience",
        "training.evalEvery", "training.checkpointEvery", "training.logEvery",
    ]

    /// The settings that differ between two fingerprints (JSON objects), as "key: old -> new". A method's
    /// options are keyed by their own names (`method_config.tinit`, whatever group holds them): they are flags,
    /// unique within a method, so grouping them in a later version does not change a fingerprint's settings.
    static func differences(_ old: String, _ new: String) -> [String] {
        func flat(_ s: String) -> [String: String] {
            guard let o = try? JSONSerialization.jsonObject(with: Data(s.utf8)) else { return [:] }
            var out: [String: String] = [:]
            func walk(_ v: Any, _ key: String) {
                if let d = v as? [String: Any] {
                    for (k, x) in d {
                        let inMethod = key.hasPrefix("method_config.") && !(x is [String: Any])
                        walk(x, key.isEmpty ? k : inMethod ? "method_config." + k : key + "." + k)
                    }
                } else if let data = try? JSONSerialization.data(
                    withJSONObject: v, options: [.fragmentsAllowed, .sortedKeys])
                {
                    out[key] = String(decoding: data, as: UTF8.self)
                }
            }
            walk(o, "")
            return out
        }
        let a = flat(old)
        let b = flat(new)
        return Set(a.keys).union(b.keys).sorted().compactMap { k in
            if a[k] == b[k] { return nil }
            if k.hasPrefix("data_content."), a[k] != nil, b[k] != nil {
                return "the data file \(k.dropFirst(13)) changed since the checkpoint (its content hash differs)"
            }
            return "\(k): \(a[k] ?? "(none)") in the checkpoint, \(b[k] ?? "(none)") now"
        }
    }
}
