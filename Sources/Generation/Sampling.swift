import Foundation
import Models
import RankwiseCore

/// How the next token is chosen; applied in transformers' order: repetition penalty, temperature, top-k, top-p.
public struct SamplingOptions: Sendable, Equatable {
    /// 0 picks the most likely token (greedy); otherwise logits are divided by it before sampling.
    public var temperature: Float = 0
    /// Keep the k most likely tokens (0: all).
    public var topK: Int = 0
    /// Keep the smallest set of most likely tokens whose probability reaches p (1: all).
    public var topP: Float = 1
    /// transformers' repetition penalty: a seen token's positive logit is divided by it, a negative one multiplied
    /// (1: none).
    public var repetitionPenalty: Float = 1
    /// Seed of the sampling stream.
    public var seed: UInt64 = 0

    public init(
        temperature: Float = 0, topK: Int = 0, topP: Float = 1, repetitionPenalty: Float = 1, seed: UInt64 = 0
    ) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.repetitionPenalty = repetitionPenalty
        self.seed = seed
    }

    /// The options' error, if any, naming the option.
    public func validate() throws {
        guard temperature >= 0, temperature.isFinite else { throw ModelError("--temperature must be >= 0") }
        guard topK >= 0 else { throw ModelError("--top-k must be >= 0") }
        guard topP > 0, topP <= 1 else { throw ModelError("--top-p must be in (0, 1]") }
        guard repetitionPenalty > 0, repetitionPenalty.isFinite else {
            throw ModelError("--repetition-penalty must be > 0")
        }
    }
}

/// Picks tokens from logits as `SamplingOptions` say, with its own seeded random stream.
public struct TokenSampler {
    public let options: SamplingOptions
    var random: SplitMix64

    public init(options: SamplingOptions) {
        self.options = options
        random = SplitMix64(seed: options.seed)
    }

    /// The next token given the logits of the last position and every token so far (prompt and generated).
    public mutating func next(logits input: [Float], history: [Int32]) -> Int32 {
        var logits = input
        if options.repetitionPenalty != 1 {
            for id in Set(history) where Int(id) < logits.count {
                let value = logits[Int(id)]
                logits[Int(id)] = value < 0 ? value * options.repetitionPenalty : value / options.repetitionPenalty
            }
        }
        if options.temperature == 0 {
            return Int32(logits.indices.max { logits[$0] < logits[$1] }!)
        }
        for i in logits.indices { logits[i] /= options.temperature }
        var candidates = logits.indices.sorted { logits[$0] > logits[$1] }
        if options.topK > 0 && options.topK < candidates.count {
            candidates.removeLast(candidates.count - options.topK)
        }
        let largest = logits[candidates[0]]
        var probabilities = candidates.map { Double(exp(logits[$0] - largest)) }
        let sum = probabilities.reduce(0, +)
        for i in probabilities.indices { probabilities[i] /= sum }
        if options.topP < 1 {
            // Keep tokens until the kept mass reaches top-p (the token that crosses it included), at least one.
            var mass = 0.0
            var kept = 0
            while kept < probabilities.count && (kept == 0 || mass < Double(options.topP)) {
                mass += probabilities[kept]
                kept += 1
            }
            candidates.removeLast(candidates.count - kept)
            probabilities.removeLast(probabilities.count - kept)
            for i in probabilities.indices { probabilities[i] /= mass }
        }
        let draw = Double(random.next() >> 11) / Double(1 << 53)
        var cumulative = 0.0
        for (index, probability) in probabilities.enumerated() {
            cumulative += probability
            if draw < cumulative { return Int32(candidates[index]) }
        }
        return Int32(candidates[probabilities.count - 1])
    }
}
