import Tensors

/// The word problem of a finite group (Merrill, Petty & Sabharwal 2024, "The Illusion of State in State-Space
/// Models"; Grazzi et al. 2025): a sequence of uniformly random group elements g_1 ... g_T, and at every position t
/// the target is the running product p_t = g_1 g_2 ... g_t (p_t = p_{t-1} g_t). Ids: elements 0..<|G|, pad |G|.
public struct WordProblemGenerator: Sendable {
    public var group: FiniteGroup

    public init(group: FiniteGroup) { self.group = group }

    /// `length` uniformly random elements; targets = running products.
    public func sample(length: Int, _ rng: inout RandomGenerator) -> Example {
        var tokens = [Int](repeating: 0, count: length)
        var targets = [Int](repeating: 0, count: length)
        var product = 0  // the identity
        for t in 0..<length {
            let g = rng.int(below: group.order)
            product = group.multiply(product, g)
            tokens[t] = g
            targets[t] = product
        }
        return Example(tokens: tokens, targets: targets)
    }
}

/// `word_problem`: running products in S3, S5, A5 or Z_n. Train lengths 32-128, tests at 256 and 512 (the
/// papers: train 128, test to 512). DeltaProduct with n_h >= 2 solves S3; S5 needs n_h = 4.
public enum WordProblemTask: TaskFactory {
    public static let name = "word_problem"
    public static let summary = "Group word problems (Merrill et al. 2024): running product of S3/S5/A5/Z_n elements at every position"
    public static let options: [OptionSpec] = [
        .text("group", "S3", "S3, S5, A5 or Z_n (e.g. Z5); also S2-S6, A3-A6"),
        .int("min_length", 32, "shortest training sequence", min: 1, max: maximumSequenceLength),
        .int("max_length", 128, "longest training sequence (lengths uniform in between)", min: 1, max: maximumSequenceLength),
        testLengthsOption("256,512", "extra test splits at exactly these lengths", min: 1),
    ] + SplitSizes.options(train: 10000)

    /// One layer without MLP (DeltaProduct's claim is about one layer: S3 with n_h >= 2, S5 with n_h = 4), width 32,
    /// batch 64, lr 1e-3, no weight decay, every position scored; 1500 steps (a CPU-sized budget).
    public static let recipe = TrainingRecipe(
        dModel: 32, nLayers: 1, feedForward: "none", learningRate: 1e-3, weightDecay: 0, batchSize: 64, maxSteps: 1500,
        evalEvery: 250, note: "one layer, as in DeltaProduct's group word problems")

    public static func trainingLength(_ options: OptionValues) -> Int { options.int("max_length") }

    public static func make(options: OptionValues, seed: UInt64) throws -> any SequenceTask {
        let sizes = SplitSizes(options)
        let group: FiniteGroup
        do { group = try FiniteGroup.named(options.string("group")) } catch let e as SequenceLabError {
            throw SequenceLabError("task word_problem: option group: \(e.message)")
        }
        let generator = WordProblemGenerator(group: group)
        let range = try lengthRange(options)
        let testLengths = options.intList("test_lengths")
        func split(_ name: String, _ count: Int) -> Dataset {
            .generated(name, count: count, seed: seed) { rng in generator.sample(length: rng.int(in: range), &rng) }
        }
        return BasicTask(
            name: name, inputVocabulary: group.order + 1, outputClasses: group.order, head: .tokens,
            requiresCausalModel: true,
            train: split("train", sizes.train), validation: split("validation", sizes.validation),
            tests: [split("test", sizes.test)]
                + lengthTests(testLengths, count: sizes.test, seed: seed) { n, rng in generator.sample(length: n, &rng) })
    }
}

/// The training length range from options `min_length` and `max_length` (at least 1, min <= max).
func lengthRange(_ options: OptionValues) throws -> ClosedRange<Int> {
    let low = options.int("min_length"), high = options.int("max_length")
    guard low <= high else { throw SequenceLabError("\(options.owner): min_length \(low) exceeds max_length \(high)") }
    return low...high
}
