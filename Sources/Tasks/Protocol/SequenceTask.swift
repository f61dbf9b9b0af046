import Tensors

/// What a model must produce for a task.
public enum TaskHead: String, Codable, Sendable {
    /// One label per sequence, from pooled features (ListOps, Pathfinder, parity, LRA Text and Image).
    case classification
    /// One target per position; positions whose target is `Example.ignored` are not scored (MQAR, copying, word problems).
    case tokens
    /// One label per pair of sequences, from a dual encoder (LRA Retrieval).
    case matching
}

/// How a classification head reduces the per-position features of a sequence to one vector.
public enum ClassificationPooling: String, Codable, CaseIterable, Sendable {
    /// The mean over the non-pad positions (LRA's default).
    case mean
    /// The features at the last non-pad position (tasks whose answer is due at the end: parity, modular arithmetic).
    case last
}

/// One example. Token ids are in 0..<inputVocabulary; `padToken` never occurs inside a sequence.
public struct Example: Sendable, Equatable, Codable {
    /// The target of a position that is not scored (PyTorch's ignore_index).
    public static let ignored = -100

    /// The input sequence.
    public var tokens: [Int]
    /// The class (classification, matching); unused (0) for per-token tasks.
    public var label: Int
    /// Per-position targets (per-token tasks), `Example.ignored` where not scored; empty otherwise.
    public var targets: [Int]
    /// The second sequence of a pair (matching); empty otherwise.
    public var pairedTokens: [Int]

    public init(tokens: [Int], label: Int = 0, targets: [Int] = [], pairedTokens: [Int] = []) {
        self.tokens = tokens
        self.label = label
        self.targets = targets
        self.pairedTokens = pairedTokens
    }
}

/// A split of a task: `count` examples, each produced on demand by `example(i)` (generated tasks derive example i
/// from the task seed, the split and i, so a split is the same in every run and nothing is stored) or held in memory
/// (loaded files).
public struct Dataset: Sendable {
    /// The split's name in metrics and final.json ("train", "validation", "test", "test_len256", ...).
    public let name: String
    /// The number of examples.
    public let count: Int
    private let make: @Sendable (Int) -> Example

    /// A generated split: `make(i)` must be a pure function of i.
    public init(name: String, count: Int, make: @escaping @Sendable (Int) -> Example) {
        self.name = name
        self.count = count
        self.make = make
    }

    /// A split held in memory.
    public init(name: String, examples: [Example]) {
        self.init(name: name, count: examples.count) { examples[$0] }
    }

    /// Example i (0 <= i < count).
    public func example(_ i: Int) -> Example {
        precondition(i >= 0 && i < count, "dataset \(name): example \(i) is outside 0..<\(count)")
        return make(i)
    }
}

/// A sequence task: its vocabulary, head, and splits.
public protocol SequenceTask: Sendable {
    /// The registry name.
    var name: String { get }
    /// Input token ids are in 0..<inputVocabulary (including the pad token).
    var inputVocabulary: Int { get }
    /// Number of classes (classification, matching) or of output tokens (per-token tasks).
    var outputClasses: Int { get }
    /// What the model predicts.
    var head: TaskHead { get }
    /// Whether the model must be causal (a per-token task whose answers are visible later in the input).
    var requiresCausalModel: Bool { get }
    /// The id used to pad sequences of a batch to one length (masked out of pooling and loss).
    var padToken: Int { get }
    /// Training split.
    var train: Dataset { get }
    /// Validation split (model selection, early stopping).
    var validation: Dataset { get }
    /// Test splits: the first is "test"; more for length extrapolation ("test_len256", ...).
    var tests: [Dataset] { get }
    /// The pooling a classification or matching head should use (the task's paper protocol); `.mean` by default.
    var classificationPooling: ClassificationPooling { get }
}

extension SequenceTask {
    public var classificationPooling: ClassificationPooling { .mean }
}

/// How to build a task by name from options and a seed.
public protocol TaskFactory {
    static var name: String { get }
    /// One line with the paper or benchmark it comes from.
    static var summary: String { get }
    /// The options: name, type, range, default and help of each (the defaults make a sensible small CPU run).
    static var options: [OptionSpec] { get }
    /// The task of `options` (checked against `options`, defaults filled in) and `seed`.
    static func make(options: OptionValues, seed: UInt64) throws -> any SequenceTask
    /// The training settings this task suggests (empty by default: the trainer's built-in defaults).
    static var recipe: TrainingRecipe { get }
    /// The longest training sequence `options` declare (MQAR's seq_len, a word problem's max_length, Pathfinder's
    /// image_size^2; a loader's truncation length): the length results tables report recurrent state sizes at.
    static func trainingLength(_ options: OptionValues) -> Int
}

extension TaskFactory {
    public static var recipe: TrainingRecipe { TrainingRecipe() }
}

/// The tasks `seqlab train --task` knows.
public enum TaskRegistry {
    /// Every registered task, in the order `seqlab list` shows them.
    public static let factories: [TaskFactory.Type] = [
        ListOpsTask.self, ListOpsTSVTask.self, PathfinderTask.self,
        MQARTask.self, SelectiveCopyTask.self, InductionHeadsTask.self,
        ParityTask.self, ModularArithmeticTask.self, WordProblemTask.self,
        LRATextTask.self, LRARetrievalTask.self, CIFAR10Task.self,
    ]

    public static var names: [String] { factories.map { $0.name } }

    /// The factory registered under `name`, or a one-line error listing the known names.
    public static func factory(named name: String) throws -> TaskFactory.Type {
        guard let f = factories.first(where: { $0.name == name }) else {
            throw SequenceLabError("unknown task '\(name)'" + suggestion(name, among: names) + " (known: \(names.joined(separator: ", ")))")
        }
        return f
    }

    /// The longest training sequence of task `name` with `options` (`TaskFactory.trainingLength`).
    public static func trainingLength(_ name: String, _ options: Options) throws -> Int {
        try factory(named: name).trainingLength(resolvedOptions(name, options))
    }

    /// The options of task `name` checked against its declarations, defaults filled in.
    public static func resolvedOptions(_ name: String, _ options: Options) throws -> OptionValues {
        try options.resolved(against: factory(named: name).options, owner: "task \(name)")
    }

    /// Builds task `name` with `options` (checked against its declarations) and `seed`.
    public static func make(_ name: String, options: Options = Options(), seed: UInt64 = 0) throws -> any SequenceTask {
        try factory(named: name).make(options: resolvedOptions(name, options), seed: seed)
    }
}

/// A generator for example i of a split: a `RandomGenerator` seeded from (task seed, split, index), so every
/// example is reproducible on its own.
public func exampleGenerator(seed: UInt64, split: String, index: Int) -> RandomGenerator {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325  // FNV-1a over the split name
    for byte in split.utf8 { h = (h ^ UInt64(byte)) &* 0x100_0000_01B3 }
    return RandomGenerator(seed: seed &* 0x9E37_79B9_7F4A_7C15 ^ h ^ UInt64(index) &* 0xD1B5_4A32_D192_ED03)
}
