// swift-tools-version:6.0
import PackageDescription

// No unsafeFlags anywhere: SwiftPM refuses a dependency whose targets use them, and release builds
// are already -O with whole-module optimisation. Hot loops use unsafe buffer pointers and BLAS, so
// -Ounchecked bought nothing measurable (see `rankwise bench train` in the README).
let fast: [SwiftSetting] = [.swiftLanguageMode(.v5)]

let package = Package(
    name: "Rankwise",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "rankwise", targets: ["rankwise"]),
        .library(name: "RankwiseCore", targets: ["RankwiseCore"]),
        .library(name: "SafeTensors", targets: ["SafeTensors"]),
        .library(name: "GGUF", targets: ["GGUF"]),
        .library(name: "Tokenizers", targets: ["Tokenizers"]),
        .library(name: "Models", targets: ["Models"]),
        .library(name: "Rankwise", targets: ["Report", "FineTuning", "Methods", "Training", "Generation", "Adapters", "Data", "Metrics", "Models", "Tokenizers", "SafeTensors", "GGUF", "RankwiseCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // Thin C shim over the system BLAS (OpenBLAS or BLIS), loaded with dlopen so that the
        // OpenBLAS core type can be chosen before the library initialises.
        .target(name: "CBLAS", linkerSettings: [.linkedLibrary("dl")]),
        // MPI (Open MPI's libmpi.so.40) loaded at run time for data-parallel runs under mpirun.
        .target(name: "CMPI", linkerSettings: [.linkedLibrary("dl")]),
        // Vectorised element-wise kernels (exp, erf, GELU) with per-CPU clones.
        .target(name: "CKernels"),
        .target(name: "RankwiseCore", dependencies: ["CBLAS", "CKernels", "CMPI"], swiftSettings: fast),
        // A whole file mapped privately: how the weight readers below open their files.
        .target(name: "MappedFile", swiftSettings: fast),
        .target(name: "SafeTensors", dependencies: ["MappedFile"], swiftSettings: fast),
        // GGUF files (llama.cpp's format): metadata, tensor infos, ggml block dequantisation.
        .target(name: "GGUF", dependencies: ["MappedFile"], swiftSettings: fast),
        .target(name: "Tokenizers", dependencies: ["GGUF"], swiftSettings: fast),
        .target(name: "Models", dependencies: ["CKernels", "GGUF", "Metrics", "RankwiseCore", "SafeTensors", "Tokenizers"], swiftSettings: fast),
        // Text generation with decoders: key/value-cache decoding, sampling, streaming, stop rules.
        .target(name: "Generation", dependencies: ["GGUF", "Models", "RankwiseCore", "Tokenizers"], swiftSettings: fast),
        .target(name: "Data", dependencies: ["SafeTensors", "RankwiseCore"], swiftSettings: fast),
        .target(name: "Metrics", swiftSettings: fast),
        .target(name: "Training", dependencies: ["Models", "Data", "Metrics", "RankwiseCore", "SafeTensors", "Tokenizers"], swiftSettings: fast),
        .target(name: "Adapters", dependencies: ["CKernels", "GGUF", "Models", "RankwiseCore"], swiftSettings: fast),
        .target(name: "Methods", dependencies: ["Adapters", "Models", "RankwiseCore", "SafeTensors", "Training"], swiftSettings: fast),
        // The fine-tuning job as a library: data, split, method, training, evaluation, model store.
        .target(name: "FineTuning", dependencies: ["Methods", "Training", "Adapters", "Generation", "Models", "Data", "Metrics", "RankwiseCore", "SafeTensors", "Tokenizers",
                                              .product(name: "Yams", package: "Yams")], swiftSettings: fast),
        // Self-contained HTML pages of runs and comparisons (inline SVG, no script).
        .target(name: "Report", dependencies: ["FineTuning", "Training", "Data", "Models", "SafeTensors"], swiftSettings: fast),
        .executableTarget(
            name: "rankwise",
            dependencies: [
                "RankwiseCore", "CKernels", "SafeTensors", "GGUF", "Tokenizers", "Models", "Adapters", "Data", "Metrics", "Training", "Methods", "FineTuning", "Report", "Generation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: fast),
        // Seeded mutation fuzzer over every reader (Tests/FuzzCorpus): `swift run -c release rankwise-fuzz --seconds 60`.
        .executableTarget(name: "rankwise-fuzz", dependencies: ["Adapters", "Data", "FineTuning", "GGUF", "Methods", "Models", "RankwiseCore", "SafeTensors", "Tokenizers"], path: "Sources/Fuzz", swiftSettings: fast),
        // Shared test helpers: fixture paths and the real model's location (a failure in CI when missing).
        .target(name: "TestSupport", path: "Tests/TestSupport", swiftSettings: fast),
        .testTarget(name: "RankwiseCoreTests", dependencies: ["RankwiseCore"], swiftSettings: fast),
        .testTarget(name: "SafeTensorsTests", dependencies: ["SafeTensors", "TestSupport"], swiftSettings: fast),
        .testTarget(name: "GenerationTests", dependencies: ["Adapters", "Generation", "Methods", "Training", "Models", "Tokenizers", "GGUF", "SafeTensors", "RankwiseCore", "TestSupport"], swiftSettings: fast),
        .testTarget(name: "GGUFTests", dependencies: ["GGUF", "SafeTensors", "TestSupport"], swiftSettings: fast),
        .testTarget(name: "TokenizersTests", dependencies: ["Tokenizers", "GGUF", "TestSupport"], swiftSettings: fast),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "RankwiseCore", "SafeTensors", "Tokenizers", "TestSupport"], swiftSettings: fast),
        .testTarget(name: "DataTests", dependencies: ["Data"], swiftSettings: fast),
        .testTarget(name: "MetricsTests", dependencies: ["Metrics"], swiftSettings: fast),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Methods", "Adapters", "Models", "Data", "RankwiseCore", "Tokenizers", "SafeTensors"], swiftSettings: fast),
        .testTarget(name: "MethodsTests", dependencies: ["Methods", "GGUF", "FineTuning", "Data", "Tokenizers", "Adapters", "Models", "RankwiseCore", "SafeTensors", "Training", "TestSupport"], swiftSettings: fast),
        .testTarget(name: "ReportTests", dependencies: ["Report", "FineTuning", "Methods", "Data", "Models", "TestSupport"], swiftSettings: fast),
        .testTarget(name: "AdaptersTests", dependencies: ["Adapters", "Models", "RankwiseCore", "SafeTensors", "TestSupport"], swiftSettings: fast),
    ]
)
