// swift-tools-version:6.0
// A package that depends on SequenceLab the way a researcher's own experiment code does: by path (or URL), built
// with a plain `swift build -c release` and no flags. It registers a layer of its own, trains a few MQAR steps with
// it and with a built-in layer, and times layers forward + backward (see README.md).
import PackageDescription

let package = Package(
    name: "DownstreamExample",
    dependencies: [.package(name: "SequenceLab", path: "../..")],
    targets: [
        .executableTarget(
            name: "DownstreamExample",
            dependencies: [
                .product(name: "Tensors", package: "SequenceLab"),
                .product(name: "Layers", package: "SequenceLab"),
                .product(name: "Training", package: "SequenceLab"),
            ],
            swiftSettings: [.swiftLanguageMode(.v5)]),
    ]
)
