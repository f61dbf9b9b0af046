import Tensors

/// The ListOps token vocabulary (Nangia & Bowman 2018; LRA, Tay et al. 2021): digits 0-9, the four operators, the
/// closing bracket, and the pad token. Parentheses of the released files are dropped (as in S4's and LRA's
/// tokenisers); the opening bracket is part of the operator token ("[MAX").
public enum ListOpsVocabulary {
    /// The operators, in id order after the digits.
    public enum Operator: Int, CaseIterable, Sendable {
        case min = 10, max, median, sumModulo

        /// The word in LRA's files.
        public var word: String {
            switch self {
            case .min: return "[MIN"
            case .max: return "[MAX"
            case .median: return "[MED"
            case .sumModulo: return "[SM"
            }
        }

        /// MIN, MAX, MED = int(median) (the mean of the two middle values, rounded down, for an even count),
        /// SM = sum mod 10.
        public func apply(_ values: [Int]) -> Int {
            switch self {
            case .min: return values.min()!
            case .max: return values.max()!
            case .median:
                let s = values.sorted()
                let n = s.count
                return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2
            case .sumModulo: return values.reduce(0, +) % 10
            }
        }
    }

    /// The id of ']'.
    public static let close = 14
    /// The pad id (never inside a sequence).
    public static let pad = 15
    /// Number of ids, pad included.
    public static let size = 16

    /// The id of a word of LRA's files ("7", "[MAX", "]"), or nil.
    public static func id(of word: Substring) -> Int? {
        if word.count == 1, let d = word.first?.wholeNumberValue, word.first!.isASCII { return d }
        if word == "]" { return close }
        return Operator.allCases.first(where: { $0.word == word })?.rawValue
    }

    /// The word of an id (for printing examples).
    public static func word(of id: Int) -> String {
        switch id {
        case 0...9: return String(id)
        case close: return "]"
        case pad: return "<pad>"
        default: return Operator(rawValue: id)?.word ?? "?"
        }
    }
}

/// LRA's ListOps tree generator (lra_benchmarks/data/listops.py): below `maxDepth` a node is an operator with
/// probability 0.25 (else a digit 0-9), with randint(2, maxArgs) children and a uniformly chosen operator; the root is
/// at depth 1 and a tree is kept when minLength < length < maxLength, where length counts digits, operators and ']'
/// (exactly the number of tokens once parentheses are dropped). The label is the tree's value.
public struct ListOpsGenerator: Sendable {
    public var maxDepth: Int
    public var maxArgs: Int
    public var minLength: Int
    public var maxLength: Int

    /// The probability that a node above the maximum depth is an operator (LRA's VALUE_P).
    public static let operatorProbability = 0.25

    public init(maxDepth: Int, maxArgs: Int, minLength: Int, maxLength: Int) {
        self.maxDepth = maxDepth
        self.maxArgs = maxArgs
        self.minLength = minLength
        self.maxLength = maxLength
    }

    /// The longest tree the depth and argument limits allow.
    public var longestPossibleTree: Int {
        var length = 1  // a leaf at the maximum depth
        for _ in 1..<max(maxDepth, 1) {
            length = max(1, 2 + maxArgs * length)
            if length > 1 << 40 { break }
        }
        return length
    }

    /// One example: trees are drawn until one has minLength < length < maxLength.
    public func sample(_ rng: inout RandomGenerator) -> Example {
        var tokens: [Int] = []
        tokens.reserveCapacity(maxLength)
        while true {
            tokens.removeAll(keepingCapacity: true)
            if let value = node(depth: 1, tokens: &tokens, rng: &rng), tokens.count > minLength && tokens.count < maxLength {
                return Example(tokens: tokens, label: value)
            }
        }
    }

    /// Appends one node's tokens and returns its value, or nil as soon as the tree reaches maxLength tokens (it can
    /// only grow, so it will be rejected).
    private func node(depth: Int, tokens: inout [Int], rng: inout RandomGenerator) -> Int? {
        guard tokens.count < maxLength else { return nil }
        let r = depth < maxDepth ? rng.uniform() : 1
        if r > Self.operatorProbability {
            let digit = rng.int(below: 10)
            tokens.append(digit)
            return digit
        }
        let count = rng.int(in: 2...maxArgs)
        let operatorSlot = tokens.count
        tokens.append(-1)
        var values: [Int] = []
        values.reserveCapacity(count)
        for _ in 0..<count {
            guard let v = node(depth: depth + 1, tokens: &tokens, rng: &rng) else { return nil }
            values.append(v)
        }
        let op = ListOpsVocabulary.Operator.allCases[rng.int(below: 4)]
        tokens[operatorSlot] = op.rawValue
        tokens.append(ListOpsVocabulary.close)
        return op.apply(values)
    }

    /// The fraction of trees accepted in `draws` draws (to reject settings that would loop almost forever).
    func acceptanceRate(draws: Int) -> Double {
        var rng = RandomGenerator(seed: 0x4C49_5354)
        var tokens: [Int] = []
        var accepted = 0
        for _ in 0..<draws {
            tokens.removeAll(keepingCapacity: true)
            if node(depth: 1, tokens: &tokens, rng: &rng) != nil, tokens.count > minLength && tokens.count < maxLength {
                accepted += 1
            }
        }
        return Double(accepted) / Double(draws)
    }
}

/// `listops`: LRA's ListOps generated on the fly, at a CPU-sized default (lengths 20 < L < 100, depth 5, up to 5
/// arguments; LRA's own setting is `--min-length 500 --max-length 2000 --max-depth 10 --max-args 10`). Measured at the
/// recipe's 2-block width-64 model: GAM reaches 0.354 validation accuracy after 1250 steps here, 0.288 at the earlier
/// default of depth 7, 6 arguments, lengths 30-120.
public enum ListOpsTask: TaskFactory {
    public static let name = "listops"
    public static let summary = "ListOps (LRA, Tay et al. 2021): evaluate nested MIN/MAX/MED/SM lists, 10 classes"
    public static let options: [OptionSpec] = [
        .int("min_length", 20, "keep trees longer than this many tokens (LRA: 500)", min: 0, max: maximumSequenceLength),
        .int("max_length", 100, "keep trees shorter than this many tokens (LRA: 2000)", min: 2, max: maximumSequenceLength),
        .int("max_depth", 5, "maximum tree depth, root = 1 (LRA: 10)", min: 1, max: 64),
        .int("max_args", 5, "maximum number of arguments of an operator (LRA: 10)", min: 2, max: 1000),
    ] + SplitSizes.options(train: 20000)

    /// Two pre-norm bidirectional blocks of width 64 with MLPs (LRA's encoders see the whole input; S4's and S5's
    /// ListOps models are bidirectional), mean pooling, lr 3e-3, 2000 steps of batch 32 (about 3 passes). Measured
    /// causal: attention 0.368 test, S4 0.326 after 2000 steps. S4 and S4D take S4's own ListOps optimiser setting
    /// (s4-lra-listops: lr 0.01, weight decay 0.05; their A, B, dt keep lr 1e-3): S4 0.464 validation after 1500
    /// steps, against 0.346 after 2000 at lr 3e-3.
    public static let recipe = TrainingRecipe(
        dModel: 64, nLayers: 2, feedForward: "mlp", bidirectional: true, learningRate: 3e-3, maxSteps: 2000, evalEvery: 250,
        layerOverrides: ["s4": TrainingRecipe(learningRate: 1e-2, weightDecay: 0.05),
                         "s4d": TrainingRecipe(learningRate: 1e-2, weightDecay: 0.05)],
        note: "a CPU-sized LRA model")

    /// Trees are kept when shorter than max_length.
    public static func trainingLength(_ options: OptionValues) -> Int { options.int("max_length") - 1 }

    public static func make(options: OptionValues, seed: UInt64) throws -> any SequenceTask {
        let sizes = SplitSizes(options)
        let generator = ListOpsGenerator(
            maxDepth: options.int("max_depth"), maxArgs: options.int("max_args"),
            minLength: options.int("min_length"), maxLength: options.int("max_length"))
        guard generator.maxLength > generator.minLength + 1 else {
            throw SequenceLabError("task listops: max_length (\(generator.maxLength)) must exceed min_length + 1 (\(generator.minLength + 1))")
        }
        guard generator.longestPossibleTree > generator.minLength else {
            throw SequenceLabError("task listops: trees with max_depth \(generator.maxDepth) and max_args \(generator.maxArgs) never exceed \(generator.longestPossibleTree) tokens, below min_length \(generator.minLength)")
        }
        guard generator.acceptanceRate(draws: 2000) > 0 else {
            throw SequenceLabError("task listops: no tree in 2000 draws has \(generator.minLength) < length < \(generator.maxLength); widen the length range or raise max_depth / max_args")
        }
        func split(_ name: String, _ count: Int) -> Dataset {
            .generated(name, count: count, seed: seed) { rng in generator.sample(&rng) }
        }
        return BasicTask(
            name: name, inputVocabulary: ListOpsVocabulary.size, outputClasses: 10, head: .classification,
            train: split("train", sizes.train), validation: split("validation", sizes.validation),
            tests: [split("test", sizes.test)])
    }
}
