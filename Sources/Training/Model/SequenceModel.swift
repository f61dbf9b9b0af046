import Layers
import Tasks
import Tensors

/// A batch of examples padded to one length: tokens [B, L] with the pad token after each sequence's end.
public struct Batch: Sendable {
    public let size: Int
    public let length: Int
    /// Token ids, row-major [B, L].
    public let tokens: [Int]
    /// Each sequence's unpadded length.
    public let lengths: [Int]
    /// Class labels (classification, matching).
    public let labels: [Int]
    /// Per-position targets [B, L] (per-token tasks; `Example.ignored` at unscored and padded positions).
    public let targets: [Int]
    /// The second sequences (matching).
    public let paired: PairedSequences?

    /// The second sequences of a matching batch.
    public struct PairedSequences: Sendable {
        public let length: Int
        public let tokens: [Int]
        public let lengths: [Int]
    }

    /// Collates examples, padding with `padToken`.
    public init(_ examples: [Example], padToken: Int) {
        size = examples.count
        length = examples.map(\.tokens.count).max() ?? 0
        lengths = examples.map(\.tokens.count)
        labels = examples.map(\.label)
        tokens = Batch.pad(examples.map(\.tokens), to: length, with: padToken)
        let hasTargets = examples.contains { !$0.targets.isEmpty }
        targets = hasTargets ? Batch.pad(examples.map(\.targets), to: length, with: Example.ignored) : []
        if examples.contains(where: { !$0.pairedTokens.isEmpty }) {
            let l2 = examples.map(\.pairedTokens.count).max() ?? 0
            paired = PairedSequences(length: l2, tokens: Batch.pad(examples.map(\.pairedTokens), to: l2, with: padToken),
                                     lengths: examples.map(\.pairedTokens.count))
        } else {
            paired = nil
        }
    }

    private init(size: Int, length: Int, tokens: [Int], lengths: [Int], labels: [Int], targets: [Int], paired: PairedSequences?) {
        (self.size, self.length, self.tokens, self.lengths) = (size, length, tokens, lengths)
        (self.labels, self.targets, self.paired) = (labels, targets, paired)
    }

    /// The first `count` sequences, padded to this batch's lengths (a memory probe runs them: `ActivationProbe`).
    public func prefix(_ count: Int) -> Batch {
        precondition(count >= 0 && count <= size, "Batch.prefix: \(count) of \(size) sequences")
        let second = paired.map {
            PairedSequences(length: $0.length, tokens: Array($0.tokens.prefix(count * $0.length)), lengths: Array($0.lengths.prefix(count)))
        }
        return Batch(size: count, length: length, tokens: Array(tokens.prefix(count * length)), lengths: Array(lengths.prefix(count)),
                     labels: Array(labels.prefix(count)), targets: Array(targets.prefix(count * length)), paired: second)
    }

    private static func pad(_ rows: [[Int]], to length: Int, with value: Int) -> [Int] {
        rows.flatMap { $0 + [Int](repeating: value, count: length - $0.count) }
    }

    /// Scalars the batch feeds through the model (for tokens/s).
    public var tokenCount: Int { lengths.reduce(0, +) + (paired?.lengths.reduce(0, +) ?? 0) }
}

/// A complete model for a task: token embedding -> residual blocks -> final norm -> head.
///
/// Heads: classification pools the sequence (mean over valid positions, or the last valid one) and maps it to class
/// logits; per-token prediction maps every position; matching (LRA Retrieval) encodes both sequences with the same
/// encoder and classifies [u, v, u * v, u - v] with an MLP.
public final class SequenceModel<T: TensorScalar> {
    public let config: ModelConfig
    public let head: TaskHead
    public let pooling: ClassificationPooling
    let embedding: Tensor<T>
    let blocks: [ResidualBlock<T>]
    let finalNorm: Norm<T>
    let output: Linear<T>
    let matchingHidden: Linear<T>?

    /// A model for `task` (vocabulary, classes and head come from it), initialised from `seed`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public init(config: ModelConfig, task: any SequenceTask, seed: UInt64) throws {
        guard config.dModel > 0, config.nLayers >= 0 else {
            throw SequenceLabError("model: d_model must be positive and n_layers non-negative")
        }
        guard config.embeddingInitStd > 0, config.embeddingInitStd.isFinite else {
            throw SequenceLabError("model: embedding_init_std must be positive, got \(config.embeddingInitStd)")
        }
        if task.requiresCausalModel && config.bidirectional {
            throw SequenceLabError("task \(task.name) is scored per position: a bidirectional model would see the answers")
        }
        var rng = RandomGenerator(seed: seed)
        self.config = config
        head = task.head
        pooling = config.pooling ?? task.classificationPooling
        // The memory floor (`ModelMemory`): the embedding and head before anything is allocated, then, after the first
        // block, the whole model before the other blocks are (blocks in order: the same draws as ever).
        let d = config.dModel, classes = task.outputClasses
        let outside = Double(task.inputVocabulary) * Double(d)                              // embedding
            + Double((task.head == .matching ? 4 * d * d + d : 0) + d * classes + classes + 2 * d)  // head, final norm
        let describe = { "\(config.layer), d_model \(d), n_layers \(config.nLayers)" }
        try ModelMemory.check(parameters: outside, scalarBytes: MemoryLayout<T>.size, describe: describe)
        embedding = Tensor.randn([task.inputVocabulary, d], std: T(config.embeddingInitStd), using: &rng, requiresGrad: true)
        var built: [ResidualBlock<T>] = []
        for i in 0..<config.nLayers {
            built.append(try ResidualBlock(config: config, index: i, seed: Self.mixerSeedBase(runSeed: seed), rng: &rng))
            if i == 0 {
                let perBlock = built[0].parameters("").scalarCount
                try ModelMemory.check(parameters: outside + Double(config.nLayers) * Double(perBlock),
                                      scalarBytes: MemoryLayout<T>.size, describe: describe)
            }
        }
        blocks = built
        finalNorm = Norm(kind: config.norm, width: config.dModel)
        if task.head == .matching {
            matchingHidden = Linear(inputSize: 4 * config.dModel, outputSize: config.dModel, rng: &rng)
            output = Linear(inputSize: config.dModel, outputSize: task.outputClasses, rng: &rng)
        } else {
            matchingHidden = nil
            output = Linear(inputSize: config.dModel, outputSize: task.outputClasses, rng: &rng)
        }
    }

    /// The seed block i's mixer draws from is `mixerSeedBase + 2 i` (its reverse mixer's, when bidirectional, + 1):
    /// 1000 + 4096 s for run seed s. Seed 0 keeps the 1000 + 2 i it always had; each run seed owns 4096 consecutive
    /// seeds, more than the 2 x 1024 a model of the deepest legal depth (`model.n_layers` <= 1024) draws, so no two
    /// (run seed, block) pairs share a mixer's initial weights. (Until 2026-12-07 it was s + 1000 + 2 i, so seed s + 2's
    /// first block drew what seed s's second block drew; docs/init.md.)
    static func mixerSeedBase(runSeed seed: UInt64) -> UInt64 { 1000 &+ 4096 &* seed }

    /// Features [B, L, D] of padded token sequences.
    func encode(tokens: [Int], batch: Int, length: Int, lengths: [Int], training: Bool, rng: inout RandomGenerator) -> Tensor<T> {
        var x = embedding.embedding(tokens, indexShape: [batch, length])
        for block in blocks { x = block(x, lengths: lengths, training: training, rng: &rng) }
        return finalNorm(x, training: training)
    }

    /// Pooled features [B, D]: the mean over valid positions, or the last valid position.
    func pool(_ h: Tensor<T>, lengths: [Int]) -> Tensor<T> {
        let (batch, length) = (h.shape[0], h.shape[1])
        var weights = [T](repeating: 0, count: batch * length)
        for b in 0..<batch {
            let n = Swift.max(1, Swift.min(lengths[b], length))
            switch pooling {
            case .mean: for t in 0..<n { weights[b * length + t] = 1 / T(n) }
            case .last: weights[b * length + n - 1] = 1
            }
        }
        return (h * Tensor(shape: [batch, length, 1], data: weights)).sum(axis: 1)
    }

    /// Logits: [B, C] (classification, matching) or [B, L, C] (per-token).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func logits(_ batch: Batch, training: Bool, rng: inout RandomGenerator) -> Tensor<T> {
        let h = encode(tokens: batch.tokens, batch: batch.size, length: batch.length, lengths: batch.lengths, training: training, rng: &rng)
        switch head {
        case .tokens: return output(h)
        case .classification: return output(pool(h, lengths: batch.lengths))
        case .matching:
            guard let second = batch.paired, let matchingHidden else { preconditionFailure("matching batch without second sequences") }
            let u = pool(h, lengths: batch.lengths)
            let h2 = encode(tokens: second.tokens, batch: batch.size, length: second.length, lengths: second.lengths, training: training, rng: &rng)
            let v = pool(h2, lengths: second.lengths)
            return output(matchingHidden(Tensor.concatenate([u, v, u * v, u - v], axis: 1)).gelu())
        }
    }

    /// Mean cross-entropy of the batch and the number of correct predictions out of the scored ones.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func loss(_ batch: Batch, training: Bool, rng: inout RandomGenerator) -> (loss: Tensor<T>, correct: Int, scored: Int) {
        let z = logits(batch, training: training, rng: &rng)
        let classes = z.shape[z.rank - 1]
        let targets = head == .tokens ? batch.targets : batch.labels
        let loss = z.crossEntropy(targets: targets, ignoreIndex: Example.ignored)
        var correct = 0, scored = 0
        for (row, target) in targets.enumerated() where target != Example.ignored {
            var best = 0
            for c in 1..<classes where z.data[row * classes + c] > z.data[row * classes + best] { best = c }
            scored += 1
            if best == target { correct += 1 }
        }
        return (loss, correct, scored)
    }

    /// The least number of scalars one training step on `batch` holds at once besides the parameters: the logits and
    /// the softmax the cross-entropy keeps of them (2 x rows x classes, rows = B x L for a per-token head, B
    /// otherwise), and the residual stream the tape keeps for the backward pass (the embedding's and every block's
    /// output, (n_layers + 1) x B x L x D, for each encoded sequence). A floor, not a forecast (`ModelMemory`).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func activationFloor(_ batch: Batch) -> Double {
        let d = Double(config.dModel), layers = Double(config.nLayers + 1)
        var stream = layers * Double(batch.size) * Double(batch.length) * d
        if let second = batch.paired { stream += layers * Double(batch.size) * Double(second.length) * d }
        let rows = head == .tokens ? Double(batch.size) * Double(batch.length) : Double(batch.size)
        return stream + 2 * rows * Double(output.weight.shape[0])
    }

    /// Every trainable parameter, named by its path ("blocks.0.mixer.A_log").
    public var parameters: [NamedParameter<T>] {
        var all = [NamedParameter("embedding.weight", embedding, tags: .embedding)]
        for (i, block) in blocks.enumerated() { all += block.parameters("blocks.\(i)") }
        all += finalNorm.parameters("norm") + (matchingHidden?.parameters("head.hidden") ?? []) + output.parameters("head.output")
        return all
    }

    /// Non-trained state saved in checkpoints (BatchNorm running statistics).
    public var buffers: [(String, Tensor<T>)] {
        blocks.enumerated().flatMap { $0.element.buffers("blocks.\($0.offset)") } + finalNorm.buffers("norm")
    }

    /// Tells every mixer that new parameter and buffer values were written (after a checkpoint or state dict load).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func stateDidLoad() {
        for block in blocks {
            block.mixer.stateDidLoad()
            block.reverseMixer?.stateDidLoad()
        }
    }

    /// Recurrent state of the whole model in scalars per sequence after `sequenceLength` tokens.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func stateSize(sequenceLength: Int) -> Int {
        blocks.reduce(0) { $0 + $1.mixer.stateSize(sequenceLength: sequenceLength) * ($1.reverseMixer == nil ? 1 : 2) }
    }

}

extension ModelConfig {
    /// The recurrent state of a model of this configuration in scalars per sequence after `length` tokens (one mixer
    /// is built to ask: every block holds the same, bidirectional blocks two).
    public func stateSize(sequenceLength length: Int) throws -> Int {
        let mixer: any SequenceLayer<Float> = try LayerRegistry.make(layer, dModel: dModel, options: layerOptions,
                                                                     context: LayerContext(depth: nLayers))
        return nLayers * (bidirectional ? 2 : 1) * mixer.stateSize(sequenceLength: length)
    }
}

extension TrainConfig {
    /// The length a run's state size is reported at: the task's declared longest training sequence
    /// (`TaskFactory.trainingLength`), or for a task outside the registry (handed to a `Trainer` directly) its
    /// first training example's length.
    public func stateLength(task: any SequenceTask) -> Int {
        if let declared = try? TaskRegistry.trainingLength(self.task, taskOptions) { return declared }
        return task.train.count > 0 ? task.train.example(0).tokens.count : 0
    }

    /// The state size a run reports (final.json's `state_size`, the tables' column): at the task's training length.
    public func reportedStateSize() throws -> Int {
        try model.stateSize(sequenceLength: TaskRegistry.trainingLength(task, taskOptions))
    }
}
