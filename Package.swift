// swift-tools-version:6.0
// SequenceLab: state-space models and linear RNNs on one autodiff tape, in Swift, on the CPU.
//
// Release builds must target the CPU's vector units and let generic kernels specialise across modules:
// build through `scripts/build` (it passes `-target-cpu native -cross-module-optimization`), never with
// `unsafeFlags` here, so that the library stays usable as a dependency.
import PackageDescription

let swift5: [SwiftSetting] = [.swiftLanguageMode(.v5)]

/// The notebooks of Notebooks-as-scripts/: one executable per folder NAME/main.swift (run with `scripts/notebook NAME`).
let notebooks = ["s4-kernel-three-ways", "selective-scan-parity", "gla-chunked", "rat-chunk-size"]

let package = Package(
    name: "SequenceLab",
    products: [
        .library(name: "Tensors", targets: ["Tensors"]),
        .library(name: "Layers", targets: ["Layers"]),
        .library(name: "Tasks", targets: ["Tasks"]),
        .library(name: "Training", targets: ["Training"]),
        .library(name: "Experiments", targets: ["Experiments"]),
        .library(name: "Notebook", targets: ["Notebook"]),
        .executable(name: "seqlab", targets: ["seqlab"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.0.0"),
    ],
    targets: [
        .systemLibrary(name: "CFFTW", pkgConfig: "fftw3f", providers: [.apt(["libfftw3-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        // Vector kernels compiled per instruction set and chosen at run time (Sources/CKernels/include/CKernels.h).
        .target(name: "CKernels"),
        .target(
            name: "Tensors",
            dependencies: ["CFFTW", "COpenBLAS", "CKernels", .product(name: "Numerics", package: "swift-numerics")],
            swiftSettings: swift5),
        .target(
            name: "Layers",
            dependencies: ["Tensors", "COpenBLAS", "CKernels", .product(name: "Numerics", package: "swift-numerics")],
            swiftSettings: swift5),
        .target(name: "Tasks", dependencies: ["Tensors"], swiftSettings: swift5),
        .target(name: "Training", dependencies: ["Tensors", "Layers", "Tasks"], swiftSettings: swift5),
        .target(name: "Experiments", dependencies: ["Tensors", "Layers", "Training"], swiftSettings: swift5),
        .executableTarget(
            name: "seqlab",
            dependencies: ["Tensors", "Layers", "Tasks", "Training", "Experiments", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swift5),
        .target(name: "Notebook", dependencies: ["Tensors", "Experiments"], swiftSettings: swift5),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors", "CKernels"], swiftSettings: swift5),
        .testTarget(name: "LayersTests", dependencies: ["Layers", "Tensors", "CKernels"], swiftSettings: swift5),
        .testTarget(name: "TasksTests", dependencies: ["Tasks", "Tensors"], swiftSettings: swift5),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Tasks", "Layers", "Tensors"], swiftSettings: swift5),
        .testTarget(name: "ExperimentsTests", dependencies: ["Experiments", "Training", "Tasks", "Layers", "Tensors"], swiftSettings: swift5),
        .testTarget(name: "NotebookTests", dependencies: ["Notebook"], swiftSettings: swift5),
    ] + notebooks.map { name in
        .executableTarget(
            name: name,
            dependencies: ["Notebook", "Tensors", "Layers", "Training", "Experiments", .product(name: "Numerics", package: "swift-numerics")],
            path: "Notebooks-as-scripts/\(name)",
            swiftSettings: swift5)
    }
)
