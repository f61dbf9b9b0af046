import Foundation
import Tensors

/// `pathfinder`: LRA's Pathfinder (Tay et al. 2021; generator of Linsley et al. 2018) generated on the fly: is there
/// a dashed contour joining the two circle markers? Images are flattened row-major into pixel tokens 0-255
/// (pad = 256); 32 x 32 by default (length 1024), 64, or 128 = Path-X (length 16384).
public enum PathfinderTask: TaskFactory {
    public static let name = "pathfinder"
    public static let summary = "Pathfinder / Path-X (LRA): do the two markers sit on the ends of one dashed contour? 2 classes"
    public static let options: [OptionSpec] = [
        .int("image_size", 32, "image side: 32 (Pathfinder), 64, or 128 (Path-X)", min: 1, max: 1024),
        .int("contour_length", 14, "paddles per target contour: 6 easy, 9 intermediate, 14 hard (LRA's split)", min: 0, max: 1000),
    ] + SplitSizes.options(train: 20000)

    /// Two pre-norm bidirectional blocks of width 64 with MLPs, lr 2e-3, 400 steps of batch 32 (12.8k images, under
    /// one pass): a CPU-sized budget far below LRA's 200 epochs.
    public static let recipe = TrainingRecipe(
        dModel: 64, nLayers: 2, feedForward: "mlp", bidirectional: true, learningRate: 2e-3, maxSteps: 400, evalEvery: 100,
        note: "a CPU-sized LRA model and budget")

    /// The pad token (pixels are 0-255).
    public static let pad = 256

    public static func trainingLength(_ options: OptionValues) -> Int { options.int("image_size") * options.int("image_size") }

    public static func make(options: OptionValues, seed: UInt64) throws -> any SequenceTask {
        let sizes = SplitSizes(options)
        let parameters = try PathfinderParameters.lra(
            imageSize: options.int("image_size"), contourLength: options.int("contour_length"))
        let generator = PathfinderGenerator(parameters)
        var probe = RandomGenerator(seed: 0x5041_5448)
        guard generator.sample(&probe, attempts: 50_000) != nil else {
            throw SequenceLabError("task pathfinder: contour_length \(parameters.contourLength) does not fit in \(parameters.imageSize) x \(parameters.imageSize) images (no image in 50000 attempts)")
        }
        func split(_ name: String, _ count: Int) -> Dataset {
            .generated(name, count: count, seed: seed) { rng in example(generator.sample(&rng)) }
        }
        return BasicTask(
            name: name, inputVocabulary: pad + 1, outputClasses: 2, head: .classification,
            train: split("train", sizes.train), validation: split("validation", sizes.validation),
            tests: [split("test", sizes.test)])
    }

    /// An image as an example: pixel tokens row-major, label.
    public static func example(_ image: PathfinderImage) -> Example {
        Example(tokens: image.pixels.map { Int($0) }, label: image.label)
    }

    /// Writes the first `count` examples of `split` as `<split>_<i>_label<l>.pgm` files in `directory` (created if
    /// needed), for a person to look at; returns the files written. `side` is the image side (32, 64, 128).
    @discardableResult
    public static func writeImages(of split: Dataset, count: Int, side: Int, to directory: URL) throws -> [URL] {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var written: [URL] = []
        for i in 0..<min(count, split.count) {
            let e = split.example(i)
            let url = directory.appendingPathComponent("\(split.name)_\(i)_label\(e.label).pgm")
            try PGM.write(tokens: e.tokens, width: side, height: side, to: url)
            written.append(url)
        }
        return written
    }
}
