import Tensors

/// A task given by its values: what every generator and loader in this module returns.
///
/// Token conventions shared by all tasks here: ids are in `0..<inputVocabulary` and the pad token is the last id,
/// `inputVocabulary - 1`, which never occurs inside a sequence.
public struct BasicTask: SequenceTask {
    public let name: String
    public let inputVocabulary: Int
    public let outputClasses: Int
    public let head: TaskHead
    public let requiresCausalModel: Bool
    public let padToken: Int
    public let train: Dataset
    public let validation: Dataset
    public let tests: [Dataset]
    public let classificationPooling: ClassificationPooling

    public init(
        name: String, inputVocabulary: Int, outputClasses: Int, head: TaskHead,
        requiresCausalModel: Bool = false, padToken: Int? = nil,
        train: Dataset, validation: Dataset, tests: [Dataset],
        classificationPooling: ClassificationPooling = .mean
    ) {
        precondition(!tests.isEmpty && tests[0].name == "test", "task \(name): the first test split must be named \"test\"")
        self.name = name
        self.inputVocabulary = inputVocabulary
        self.outputClasses = outputClasses
        self.head = head
        self.requiresCausalModel = requiresCausalModel
        self.padToken = padToken ?? inputVocabulary - 1
        self.train = train
        self.validation = validation
        self.tests = tests
        self.classificationPooling = classificationPooling
    }

    /// Every split: train, validation, then the tests.
    public var allSplits: [Dataset] { [train, validation] + tests }
}

extension Dataset {
    /// A generated split named `name`: example i is `make(&rng)` with `rng = exampleGenerator(seed:, split: name,
    /// index: i)`, so it depends only on (seed, name, i).
    public static func generated(
        _ name: String, count: Int, seed: UInt64,
        _ make: @escaping @Sendable (inout RandomGenerator) -> Example
    ) -> Dataset {
        Dataset(name: name, count: count) { i in
            var rng = exampleGenerator(seed: seed, split: name, index: i)
            return make(&rng)
        }
    }
}

extension Dataset {
    /// This split with every example generated once, on all cores, and then held in memory: for generators that
    /// are slow per example (Pathfinder: about 1 ms at 32 x 32, 18 ms at 64 x 64 in a release build) when a
    /// trainer visits each example many times. The examples are the same as the split's.
    public func materialized() -> Dataset {
        var examples = [Example](repeating: Example(tokens: []), count: count)
        examples.withUnsafeMutableBufferPointer { out in
            let base = out.baseAddress!
            Parallel.forEachRange(count) { range in
                for i in range { (base + i).pointee = example(i) }
            }
        }
        return Dataset(name: name, examples: examples)
    }
}

/// The sizes of the generated splits (`train_size`, `val_size`, `test_size`; extra test splits get `test_size`
/// examples each).
public struct SplitSizes: Sendable {
    public var train: Int
    public var validation: Int
    public var test: Int

    /// The three size options with their defaults.
    public static func options(train: Int, validation: Int = 500, test: Int = 1000) -> [OptionSpec] {
        [
            OptionSpec("train_size", "\(train)", "number of training examples"),
            OptionSpec("val_size", "\(validation)", "number of validation examples"),
            OptionSpec("test_size", "\(test)", "number of examples in each test split"),
        ]
    }

    /// Reads the three options (defaults from `specs`), each at least 1.
    public init(_ options: Options, specs: [OptionSpec]) throws {
        train = try options.positiveInt("train_size", specs: specs)
        validation = try options.positiveInt("val_size", specs: specs)
        test = try options.positiveInt("test_size", specs: specs)
    }
}

extension Options {
    /// The default of option `name` in `specs` (a programming error if missing).
    static func defaultValue(_ name: String, in specs: [OptionSpec]) -> String {
        guard let spec = specs.first(where: { $0.name == name }) else {
            preconditionFailure("option \(name) has no OptionSpec")
        }
        return spec.defaultValue
    }

    /// Integer option `name` with its default from `specs`, required to lie in `range`.
    func int(_ name: String, specs: [OptionSpec], in range: ClosedRange<Int>) throws -> Int {
        let fallback = Int(Options.defaultValue(name, in: specs))!
        let v = try int(name, fallback)
        guard range.contains(v) else {
            let upper = range.upperBound == Int.max ? "" : " and at most \(range.upperBound)"
            throw SequenceLabError("option \(name): \(v) must be at least \(range.lowerBound)\(upper)")
        }
        return v
    }

    func positiveInt(_ name: String, specs: [OptionSpec]) throws -> Int {
        try int(name, specs: specs, in: 1...Int.max)
    }

    func double(_ name: String, specs: [OptionSpec]) throws -> Double {
        try double(name, Double(Options.defaultValue(name, in: specs))!)
    }

    func bool(_ name: String, specs: [OptionSpec]) throws -> Bool {
        let d = Options.defaultValue(name, in: specs)
        return try bool(name, d == "true")
    }

    func string(_ name: String, specs: [OptionSpec]) -> String {
        string(name, Options.defaultValue(name, in: specs))
    }

    /// A comma-separated list of integers, each at least `minimum` ("" is the empty list).
    func intList(_ name: String, specs: [OptionSpec], minimum: Int) throws -> [Int] {
        let text = string(name, specs: specs).trimmingCharacters(in: .whitespaces)
        if text.isEmpty { return [] }
        let values = try text.split(separator: ",", omittingEmptySubsequences: false).map { part -> Int in
            let item = part.trimmingCharacters(in: .whitespaces)
            guard let v = Int(item) else {
                throw SequenceLabError("option \(name): '\(item)' is not an integer (expected a comma-separated list such as 80,160)")
            }
            guard v >= minimum else { throw SequenceLabError("option \(name): \(v) must be at least \(minimum)") }
            return v
        }
        guard Set(values).count == values.count else { throw SequenceLabError("option \(name): a value is listed twice") }
        return values
    }
}

/// Extra test splits at other lengths: one split "test_len<n>" per length n, generated by `make(n, &rng)`.
func lengthTests(_ lengths: [Int], count: Int, seed: UInt64,
                 _ make: @escaping @Sendable (Int, inout RandomGenerator) -> Example) -> [Dataset] {
    lengths.map { n in .generated("test_len\(n)", count: count, seed: seed) { rng in make(n, &rng) } }
}

/// The option listing extra test lengths.
func testLengthsOption(_ defaults: String, _ help: String) -> OptionSpec {
    OptionSpec("test_lengths", defaults, help)
}

import Foundation
