import Tensors

/// Modular arithmetic without brackets (Deletang et al. 2023, tasks/regular/modular_arithmetic.py; Grazzi et al.
/// 2025): an expression d_0 o_1 d_1 ... o_k d_k of residues mod 5 and operators + - *, then '='; the label is its
/// value mod 5 with the usual precedence (products first; a - b = a + (-1) b). For a drawn length n the expression
/// has the largest odd length <= n (as in the Chomsky-hierarchy code), followed by '='. Ids: residues 0-4, '+' 5,
/// '-' 6, '*' 7, '=' 8, pad 9.
public struct ModularArithmeticGenerator: Sendable {
    /// The modulus.
    public static let modulus = 5
    /// Token ids of the operators, '=' and the pad token.
    public static let plus = 5, minus = 6, times = 7, equals = 8, pad = 9

    public init() {}

    /// One expression of the largest odd length <= `length`, then '='; label = its value mod 5.
    public func sample(length: Int, _ rng: inout RandomGenerator) -> Example {
        let m = Self.modulus
        let expressionLength = length % 2 == 1 ? length : length - 1
        var tokens: [Int] = []
        tokens.reserveCapacity(expressionLength + 1)
        // value = finished terms + (sign x running product of the current term)
        var finished = 0
        var term = 0
        var sign = 1
        for i in 0..<expressionLength {
            if i % 2 == 0 {
                let digit = rng.int(below: m)
                tokens.append(digit)
                term = i == 0 || tokens[i - 1] != Self.times ? digit : term * digit % m
            } else {
                let op = Self.plus + rng.int(below: 3)
                tokens.append(op)
                if op != Self.times {
                    finished = (finished + sign * term) % m
                    sign = op == Self.plus ? 1 : -1
                }
            }
        }
        finished = (finished + sign * term) % m
        tokens.append(Self.equals)
        return Example(tokens: tokens, label: (finished % m + m) % m)
    }
}

/// `modular_arithmetic`: the same protocol as parity (train lengths 3-40, tests at 80 and 160).
public enum ModularArithmeticTask: TaskFactory {
    public static let name = "modular_arithmetic"
    public static let summary = "Modular arithmetic mod 5 with + - * (Chomsky hierarchy), answered after '='"
    public static let options: [OptionSpec] = [
        .int("min_length", 3, "shortest training expression (tokens, '=' excluded; even lengths lose one)", min: 1, max: maximumSequenceLength),
        .int("max_length", 40, "longest training expression", min: 1, max: maximumSequenceLength),
        testLengthsOption("80,160", "extra test splits at exactly these expression lengths", min: 1),
    ] + SplitSizes.options(train: 10000)

    /// Parity's setting (one layer without MLP, batch 256, lr 1e-3, no weight decay) at width 32 for the 5 x 3
    /// operator-operand transitions.
    public static let recipe = TrainingRecipe(
        dModel: 32, nLayers: 1, feedForward: "none", learningRate: 1e-3, weightDecay: 0, batchSize: 256, maxSteps: 3000,
        evalEvery: 250, note: "the parity setting at width 32")

    /// The expression and its '='.
    public static func trainingLength(_ options: OptionValues) -> Int { options.int("max_length") + 1 }

    public static func make(options: OptionValues, seed: UInt64) throws -> any SequenceTask {
        let sizes = SplitSizes(options)
        let range = try lengthRange(options)
        let testLengths = options.intList("test_lengths")
        let generator = ModularArithmeticGenerator()
        func split(_ name: String, _ count: Int) -> Dataset {
            .generated(name, count: count, seed: seed) { rng in generator.sample(length: rng.int(in: range), &rng) }
        }
        return BasicTask(
            name: name, inputVocabulary: ModularArithmeticGenerator.pad + 1, outputClasses: ModularArithmeticGenerator.modulus,
            head: .classification,
            train: split("train", sizes.train), validation: split("validation", sizes.validation),
            tests: [split("test", sizes.test)]
                + lengthTests(testLengths, count: sizes.test, seed: seed) { n, rng in generator.sample(length: n, &rng) },
            classificationPooling: .last)
    }
}
