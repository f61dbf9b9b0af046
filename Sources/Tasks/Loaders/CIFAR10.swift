import Foundation
import Tensors

/// `cifar10`: LRA's Image task, sequential grayscale CIFAR-10 (Krizhevsky 2009), from the binary version's files
/// (`cifar-10-binary.tar.gz`, extracted): `data_batch_1.bin` ... `data_batch_5.bin` and `test_batch.bin` in `path`
/// (or in its `cifar-10-batches-bin` subdirectory). Each record is 3073 bytes: the label 0-9, then 1024 red, 1024
/// green and 1024 blue values, row-major 32 x 32. A pixel becomes round(0.2989 R + 0.5870 G + 0.1140 B) (TensorFlow's
/// rgb_to_grayscale, as in LRA), the image its 1024 pixels row by row (tokens 0-255, pad 256). A fixed random
/// `val_fraction` of the training records is held out for validation.
public enum CIFAR10Task: TaskFactory {
    public static let name = "cifar10"
    public static let summary = "LRA Image: CIFAR-10 as 1024 grayscale pixel tokens, 10 classes"
    public static let options: [OptionSpec] = [
        .text("path", "", "directory with data_batch_1.bin ... data_batch_5.bin and test_batch.bin"),
        .number("val_fraction", 0.1, "share of the training records held out for validation", min: 0, below: 1),
    ]

    /// Bytes per record: label + 3 x 32 x 32.
    public static let recordSize = 3073
    /// Pixels per grayscale image.
    public static let pixels = 1024

    public static func trainingLength(_ options: OptionValues) -> Int { pixels }

    public static func make(options: OptionValues, seed: UInt64) throws -> any SequenceTask {
        var directory = try TaskFiles.directory(options, task: name, expecting: "data_batch_*.bin and test_batch.bin")
        let nested = directory.appendingPathComponent("cifar-10-batches-bin")
        if FileManager.default.fileExists(atPath: nested.appendingPathComponent("test_batch.bin").path) { directory = nested }
        let fraction = options.double("val_fraction")
        let batchFiles = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
            .compactMap { file -> (Int, String)? in
                guard file.hasPrefix("data_batch_"), file.hasSuffix(".bin"),
                      let k = Int(file.dropFirst("data_batch_".count).dropLast(".bin".count)) else { return nil }
                return (k, file)
            }
            .sorted { $0.0 < $1.0 }
        guard !batchFiles.isEmpty else {
            throw SequenceLabError("task \(name): missing file data_batch_1.bin (no data_batch_*.bin) in \(directory.path)")
        }
        var train = GrayImages()
        for (_, file) in batchFiles { try train.append(contentsOf: directory.appendingPathComponent(file)) }
        var test = GrayImages()
        try test.append(contentsOf: try TaskFiles.require(["test_batch.bin"], in: directory, task: name))
        let (kept, held) = BasicTask.holdOut(Array(0..<train.labels.count), fraction: fraction)
        return BasicTask(
            name: name, inputVocabulary: 257, outputClasses: 10, head: .classification,
            train: train.dataset("train", indices: kept), validation: train.dataset("validation", indices: held),
            tests: [test.dataset("test", indices: Array(0..<test.labels.count))])
    }

    /// The grayscale value of one RGB pixel.
    public static func gray(red: UInt8, green: UInt8, blue: UInt8) -> UInt8 {
        let r: Double = 0.2989 * Double(red)
        let g: Double = 0.5870 * Double(green)
        let b: Double = 0.1140 * Double(blue)
        return UInt8(min(255, (r + g + b).rounded()))
    }
}

/// Grayscale CIFAR-10 images packed in one buffer (1024 bytes each).
struct GrayImages: Sendable {
    var labels: [Int] = []
    var pixels: [UInt8] = []

    /// Appends every record of a binary batch file.
    mutating func append(contentsOf url: URL) throws {
        let task = CIFAR10Task.name
        let bytes = try TaskFiles.read(url, task: task)
        let size = CIFAR10Task.recordSize, n = CIFAR10Task.pixels
        guard !bytes.isEmpty, bytes.count % size == 0 else {
            throw SequenceLabError("task \(task): \(url.lastPathComponent) has \(bytes.count) bytes, not a whole number of \(size)-byte CIFAR-10 records")
        }
        let records = bytes.count / size
        labels.reserveCapacity(labels.count + records)
        pixels.reserveCapacity(pixels.count + records * n)
        for r in 0..<records {
            let base = r * size
            guard bytes[base] < 10 else {
                throw SequenceLabError("task \(task): \(url.lastPathComponent) record \(r): label \(bytes[base]) is not 0-9")
            }
            labels.append(Int(bytes[base]))
            for i in 0..<n {
                pixels.append(CIFAR10Task.gray(red: bytes[base + 1 + i], green: bytes[base + 1 + n + i], blue: bytes[base + 1 + 2 * n + i]))
            }
        }
    }

    func dataset(_ name: String, indices: [Int]) -> Dataset {
        let images = self
        let n = CIFAR10Task.pixels
        return Dataset(name: name, count: indices.count) { i in
            let k = indices[i]
            return Example(tokens: images.pixels[(k * n)..<((k + 1) * n)].map { Int($0) }, label: images.labels[k])
        }
    }
}
