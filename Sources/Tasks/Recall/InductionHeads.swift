import Tensors

/// Induction heads (Olsson et al. 2022; the H3 and Mamba papers' synthetic): random tokens from a vocabulary of V,
/// a trigger token at one random position p <= L - 3 and again at the last position L - 1; the target at the last
/// position is the token that followed the first trigger (the only scored position). Ids: data 0..<V, trigger V,
/// pad V + 1.
public struct InductionHeadsGenerator: Sendable {
    public var vocabulary: Int

    public init(vocabulary: Int) { self.vocabulary = vocabulary }

    public var trigger: Int { vocabulary }

    /// One sequence of `length` tokens; only the last position is scored.
    public func sample(length: Int, _ rng: inout RandomGenerator) -> Example {
        var tokens = (0..<length).map { _ in rng.int(below: vocabulary) }
        let p = rng.int(below: length - 2)
        tokens[p] = trigger
        tokens[length - 1] = trigger
        var targets = [Int](repeating: Example.ignored, count: length)
        targets[length - 1] = tokens[p + 1]
        return Example(tokens: tokens, targets: targets)
    }
}

/// `induction_heads`: default length 128 (Mamba trains at 256 and tests up to 2^20), tests at 256 and 512 too.
public enum InductionHeadsTask: TaskFactory {
    public static let name = "induction_heads"
    public static let summary = "Induction heads (Olsson et al. 2022; Mamba): after the trigger's repeat, recall the token that followed it"
    public static let options: [OptionSpec] = [
        .int("seq_len", 128, "training length (Mamba: 256)", min: 3, max: maximumSequenceLength),
        .int("vocab_size", 16, "data vocabulary V", min: 2, max: 1 << 20),
        testLengthsOption("256,512", "extra test splits at these lengths (length extrapolation)", min: 3),
    ] + SplitSizes.options(train: 10000)

    public static func trainingLength(_ options: OptionValues) -> Int { options.int("seq_len") }

    public static func make(options: OptionValues, seed: UInt64) throws -> any SequenceTask {
        let sizes = SplitSizes(options)
        let length = options.int("seq_len")
        let generator = InductionHeadsGenerator(vocabulary: options.int("vocab_size"))
        let testLengths = options.intList("test_lengths")
        func split(_ name: String, _ count: Int) -> Dataset {
            .generated(name, count: count, seed: seed) { rng in generator.sample(length: length, &rng) }
        }
        return BasicTask(
            name: name, inputVocabulary: generator.vocabulary + 2, outputClasses: generator.vocabulary, head: .tokens,
            requiresCausalModel: true,
            train: split("train", sizes.train), validation: split("validation", sizes.validation),
            tests: [split("test", sizes.test)]
                + lengthTests(testLengths, count: sizes.test, seed: seed) { n, rng in generator.sample(length: n, &rng) })
    }
}
