import Tensors

/// Selective copying (Gu & Dao 2023, "Mamba", section 4.1.1; the S4 repository's copying generator with
/// `selective=True`): M data tokens from a vocabulary of V are placed at M random positions (in order) of a
/// length-L stretch of noise tokens, followed by M marker tokens; at the i-th marker the model outputs the i-th
/// data token. Ids: data 0..<V, noise V, marker V + 1, pad V + 2; only the marker positions are scored.
public struct SelectiveCopyGenerator: Sendable {
    public var vocabulary: Int
    public var dataTokens: Int

    public init(vocabulary: Int, dataTokens: Int) {
        self.vocabulary = vocabulary
        self.dataTokens = dataTokens
    }

    public var noise: Int { vocabulary }
    public var marker: Int { vocabulary + 1 }

    /// One example whose noisy stretch has `length` positions (total length `length + dataTokens`).
    public func sample(length: Int, _ rng: inout RandomGenerator) -> Example {
        let positions = rng.distinct(dataTokens, below: length).sorted()
        var tokens = [Int](repeating: noise, count: length)
        var targets = [Int](repeating: Example.ignored, count: length)
        for p in positions {
            let token = rng.int(below: vocabulary)
            tokens[p] = token
            targets.append(token)
        }
        tokens += [Int](repeating: marker, count: dataTokens)
        return Example(tokens: tokens, targets: targets)
    }
}

/// `selective_copy`: the Mamba paper's selective copying (there: L = 4096, M = 16, V = 16); default L = 128.
public enum SelectiveCopyTask: TaskFactory {
    public static let name = "selective_copy"
    public static let summary = "Selective copying (Mamba, Gu & Dao 2023): output the scattered data tokens in order"
    public static let options: [OptionSpec] = [
        .int("seq_len", 128, "length L of the noisy stretch holding the data tokens (Mamba: 4096)", min: 1, max: maximumSequenceLength),
        .int("num_tokens", 16, "data tokens M to copy (at most seq_len)", min: 1, max: maximumSequenceLength),
        .int("vocab_size", 16, "data vocabulary V", min: 2, max: 1 << 20),
        testLengthsOption("", "extra test splits with these noisy-stretch lengths (each at least num_tokens), e.g. 256,512", min: 1),
    ] + SplitSizes.options(train: 10000)

    public static func trainingLength(_ options: OptionValues) -> Int { options.int("seq_len") + options.int("num_tokens") }

    public static func make(options: OptionValues, seed: UInt64) throws -> any SequenceTask {
        let sizes = SplitSizes(options)
        let length = options.int("seq_len")
        let generator = SelectiveCopyGenerator(
            vocabulary: options.int("vocab_size"), dataTokens: options.int("num_tokens"))
        let testLengths = options.intList("test_lengths")
        if let short = testLengths.first(where: { $0 < generator.dataTokens }) {
            throw SequenceLabError("task \(name): test length \(short) is below num_tokens \(generator.dataTokens)")
        }
        guard generator.dataTokens <= length else {
            throw SequenceLabError("task selective_copy: num_tokens \(generator.dataTokens) exceeds seq_len \(length)")
        }
        func split(_ name: String, _ count: Int) -> Dataset {
            .generated(name, count: count, seed: seed) { rng in generator.sample(length: length, &rng) }
        }
        return BasicTask(
            name: name, inputVocabulary: generator.vocabulary + 3, outputClasses: generator.vocabulary, head: .tokens,
            requiresCausalModel: true,
            train: split("train", sizes.train), validation: split("validation", sizes.validation),
            tests: [split("test", sizes.test)]
                + lengthTests(testLengths, count: sizes.test, seed: seed) { n, rng in generator.sample(length: n, &rng) })
    }
}
