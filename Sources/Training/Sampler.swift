import Foundation
import RankwiseCore
import SafeTensors

/// `--sampler`: seeded random batches (run unpadded), or batches of texts of similar length.
public enum SamplerKind: String, Sendable, SettingChoice {
    case random
    case bucketed
}

/// Where a training run's batches come from. The trainer asks for batch `index` of epoch `epoch`,
/// in order; a sampler must answer the same for the same question after a resume, which it does by
/// deriving its randomness from (seed, epoch, index) and checkpointing anything else it holds.
public protocol Sampler: CheckpointState {
    /// Name used by `--sampler` and in logs.
    var name: String { get }
    /// Batches in one epoch.
    var batchesPerEpoch: Int { get }
    /// Example indices of batch `index` (0-based) of epoch `epoch` (0-based).
    func batch(epoch: Int, index: Int) -> [Int]
}

/// Seeded, length-bucketed order: each epoch shuffles the examples with (seed, epoch), sorts windows
/// of `bucket` batches by length so a batch pads little, and shuffles the batch order. Cheap on
/// padding, but each batch holds texts of nearly one length: where length goes with the label (in
/// sentence-pair tasks it does) a batch's label mix is skewed. `bucket = 1` gives plain random batches.
public final class BucketedSampler: Sampler {
    public let name: String
    let lengths: [Int]
    let batchSize: Int, seed: UInt64, bucket: Int
    private var cached: (epoch: Int, plan: [[Int]])?

    public init(lengths: [Int], batchSize: Int, seed: UInt64, bucket: Int = 50) {
        self.lengths = lengths
        self.batchSize = batchSize
        self.seed = seed
        self.bucket = bucket
        name = bucket == 1 ? "random" : "bucketed"
    }

    public var batchesPerEpoch: Int { (lengths.count + batchSize - 1) / batchSize }

    public func batch(epoch: Int, index: Int) -> [Int] {
        if cached?.epoch != epoch {
            cached = (
                epoch,
                BatchPlan.epoch(
                    count: lengths.count, lengths: lengths, batchSize: batchSize, seed: seed, epoch: epoch,
                    bucket: bucket)
            )
        }
        return cached!.plan[index]
    }

    // Stateless beyond (seed, epoch, index).
    public func checkpointTensors() -> [TensorToWrite] { [] }
    public func restore(from f: CheckpointSection) throws {}
}

/// Draws each batch's examples with replacement by per-example probabilities that a method sets
/// (`setWeights`), so training effort goes where the method wants it. An epoch is `count / batchSize`
/// batches. Batch (epoch, index) is drawn from a generator seeded by (seed, epoch, index) with the
/// weights current at that moment; the weights are checkpointed, so a resumed run draws the same.
public final class WeightedSampler: Sampler {
    public let name = "weighted"
    public let count: Int, batchSize: Int, seed: UInt64
    /// Unnormalised weights, one per example (uniform until a method sets them).
    public private(set) var weights: [Double]
    private var cumulative: [Double] = []

    public init(count: Int, batchSize: Int, seed: UInt64) {
        self.count = count
        self.batchSize = batchSize
        self.seed = seed
        weights = [Double](repeating: 1, count: count)
        rebuild()
    }

    public var batchesPerEpoch: Int { (count + batchSize - 1) / batchSize }

    /// Replaces the weights (non-negative, finite, not all zero; they need not sum to one).
    public func setWeights(_ w: [Double]) throws {
        guard w.count == count else { throw TrainError("sampler weights: \(w.count) values for \(count) examples") }
        guard w.allSatisfy({ $0 >= 0 && $0.isFinite }), w.contains(where: { $0 > 0 }) else {
            throw TrainError("sampler weights must be finite, non-negative and not all zero")
        }
        weights = w
        rebuild()
    }

    /// Probability of drawing example `i`.
    public func probability(_ i: Int) -> Double { weights[i] / cumulative[count - 1] }

    private func rebuild() {
        cumulative = [Double](repeating: 0, count: count)
        var s = 0.0
        for i in 0..<count {
            s += weights[i]
            cumulative[i] = s
        }
    }

    public func batch(epoch: Int, index: Int) -> [Int] {
        var rng = SplitMix64(seed: seed &* 0xD1B5_4A32_D192_ED03 &+ UInt64(epoch) &* 0x9E37_79B9 &+ UInt64(index) &+ 1)
        let total = cumulative[count - 1]
        let n = index == batchesPerEpoch - 1 ? count - index * batchSize : batchSize
        return (0..<n).map { _ in
            let u = Double(rng.next() >> 11) * (1.0 / 9_007_199_254_740_992.0) * total
            var lo = 0
            var hi = count - 1
            while lo < hi {
                let mid = (lo + hi) / 2
                if cumulative[mid] > u { hi = mid } else { lo = mid + 1 }
            }
            return lo
        }
    }

    public func checkpointTensors() -> [TensorToWrite] {
        // exact
        [TensorToWrite(name: "weights", shape: [count], int64s: weights.map { Int64(bitPattern: $0.bitPattern) })]
    }

    public func restore(from f: CheckpointSection) throws {
        try setWeights(try f.ints("weights", count: count).map { Double(bitPattern: UInt64(bitPattern: $0)) })
    }
}
