import Tasks
import Tensors

/// What one training step's forward pass keeps for the backward pass, measured instead of counted: the bytes the
/// allocator holds once the loss of the batch's first sequence, then of its first two, is computed and its graph is
/// still alive (every buffer the tape kept: each layer's saved intermediates, the residual stream, the logits); the
/// whole batch's is extrapolated linearly in sequences (sequences of a batch are independent):
///     kept(B) = kept(1) + (B - 1) (kept(2) - kept(1))
/// at the batch's padded length. One mechanism for every layer, so a kernel that keeps more needs no count updated;
/// `ModelMemory.checkStep` compares it (with the parameters) against the process's memory limit before the step
/// runs. A floor: the backward pass's own gradients and scratch come on top.
public enum ActivationProbe {
    /// Sequences below which the probe is not run: it would cost as much as the step it guards.
    public static let smallestProbedBatch = 3

    /// Bytes the forward pass of `batch` keeps, or nil when the allocator cannot be measured (not glibc) or the batch
    /// has fewer than `smallestProbedBatch` sequences. The probe leaves no trace: gradients are not touched, the
    /// model's buffers (BatchNorm statistics) are restored, dropout draws from a generator of its own.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func keptBytes<T: TensorScalar>(model: SequenceModel<T>, batch: Batch) -> Double? {
        guard batch.size >= smallestProbedBatch, MemoryProbe.heapInUseBytes() != nil else { return nil }
        let buffers = model.buffers.map { ($0.1, $0.1.data) }
        defer { for (tensor, data) in buffers { tensor.data = data } }
        _ = forwardKeeps(model: model, batch: batch.prefix(1))  // first use: plans, caches and pools, not per sequence
        let one = forwardKeeps(model: model, batch: batch.prefix(1)), two = forwardKeeps(model: model, batch: batch.prefix(2))
        return one + Double(batch.size - 1) * max(0, two - one)
    }

    /// Heap bytes held after the loss of `batch` is computed, less those held before; the graph is then released.
    static func forwardKeeps<T: TensorScalar>(model: SequenceModel<T>, batch: Batch) -> Double {
        var rng = RandomGenerator(seed: 0x5EED_9A0B)
        let before = MemoryProbe.heapInUseBytes() ?? 0
        let loss = model.loss(batch, training: true, rng: &rng).loss
        let after = MemoryProbe.heapInUseBytes() ?? 0
        loss.discardGraph()
        return Double(max(0, after - before))
    }
}
