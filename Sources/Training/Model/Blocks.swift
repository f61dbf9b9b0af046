import Layers
import Tensors

/// LayerNorm, RMSNorm or BatchNorm over the channels of [B, L, D] activations.
///
/// BatchNorm (Ioffe & Szegedy 2015; S4's LRA models) normalises each channel over batch and length with the batch's
/// statistics in training and running averages (momentum 0.1) in evaluation; its running statistics are buffers
/// (checkpointed, not trained).
final class Norm<T: TensorScalar> {
    let kind: NormKind
    let gamma: Tensor<T>
    let beta: Tensor<T>?
    let runningMean: Tensor<T>
    let runningVariance: Tensor<T>

    init(kind: NormKind, width: Int) {
        self.kind = kind
        gamma = Tensor.ones([width], requiresGrad: true)
        beta = kind == .rmsNorm ? nil : Tensor.zeros([width], requiresGrad: true)
        runningMean = Tensor.zeros([width])
        runningVariance = Tensor.ones([width])
    }

    func callAsFunction(_ x: Tensor<T>, training: Bool) -> Tensor<T> {
        switch kind {
        case .layerNorm: return x.layerNorm(gamma: gamma, beta: beta)
        case .rmsNorm: return x.rmsNorm(gamma: gamma)
        case .batchNorm:
            let axes = Array(0..<(x.rank - 1))
            if training {
                let mean = x.mean(axes: axes, keepDims: true)
                let centered = x - mean
                let variance = centered.square().mean(axes: axes, keepDims: true)
                let n = T(x.count / x.shape[x.rank - 1])
                for c in 0..<gamma.count {
                    runningMean.data[c] = 0.9 * runningMean.data[c] + 0.1 * mean.data[c]
                    runningVariance.data[c] = 0.9 * runningVariance.data[c] + 0.1 * variance.data[c] * n / Swift.max(n - 1, 1)
                }
                return centered * (variance + T(1e-5)).rsqrt().reshaped([gamma.count]) * gamma + beta!
            }
            let scale = Tensor(shape: [gamma.count], data: runningVariance.data.map { 1 / ($0 + T(1e-5)).squareRoot() })
            return (x - runningMean) * scale * gamma + beta!
        }
    }

    func parameters(_ name: String) -> [NamedParameter<T>] {
        [NamedParameter("\(name).weight", gamma, tags: .norm)]
            + (beta.map { [NamedParameter("\(name).bias", $0, tags: .norm)] } ?? [])
    }

    func buffers(_ name: String) -> [(String, Tensor<T>)] {
        kind == .batchNorm ? [("\(name).running_mean", runningMean), ("\(name).running_var", runningVariance)] : []
    }
}

/// The feed-forward channel mixer of a block: MLP (Linear, GELU, Linear) or GLU.
final class FeedForward<T: TensorScalar> {
    let up: Linear<T>
    let gate: Linear<T>?
    let down: Linear<T>

    init(kind: FeedForwardKind, width: Int, expand: Int, rng: inout RandomGenerator) {
        up = Linear(inputSize: width, outputSize: expand * width, rng: &rng)
        gate = kind == .glu ? Linear(inputSize: width, outputSize: expand * width, rng: &rng) : nil
        down = Linear(inputSize: expand * width, outputSize: width, rng: &rng)
    }

    func callAsFunction(_ x: Tensor<T>) -> Tensor<T> {
        if let gate { return down(up(x) * gate(x).sigmoid()) }
        return down(up(x).gelu())
    }

    func parameters(_ name: String) -> [NamedParameter<T>] {
        up.parameters("\(name).up") + (gate?.parameters("\(name).gate") ?? []) + down.parameters("\(name).down")
    }
}

/// One residual block: a sequence mixer (optionally bidirectional) and an optional feed-forward. A mixer whose
/// reference is a whole residual block (`includesResidual`: RAT, GAM) is called as it is, without the block's norm
/// and residual around it.
final class ResidualBlock<T: TensorScalar> {
    let mixer: any SequenceLayer<T>
    let reverseMixer: (any SequenceLayer<T>)?
    /// The norm before the mixer; nil when the mixer holds its own.
    let mixerNorm: Norm<T>?
    let feedForward: FeedForward<T>?
    let feedForwardNorm: Norm<T>?
    let prenorm: Bool
    let dropout: Double

    init(config: ModelConfig, index: Int, seed: UInt64, rng: inout RandomGenerator) throws {
        let d = config.dModel
        let context = LayerContext(depth: config.nLayers)
        mixer = try LayerRegistry.make(config.layer, dModel: d, options: config.layerOptions, context: context,
                                       seed: seed &+ UInt64(2 * index))
        reverseMixer = config.bidirectional
            ? try LayerRegistry.make(config.layer, dModel: d, options: config.layerOptions, context: context,
                                     seed: seed &+ UInt64(2 * index + 1))
            : nil
        if mixer.includesResidual && config.bidirectional {
            throw SequenceLabError("layer \(config.layer) is a whole residual block (norm and residual inside); it has no bidirectional form")
        }
        mixerNorm = mixer.includesResidual ? nil : Norm(kind: config.norm, width: d)
        if config.feedForward != .none {
            feedForward = FeedForward(kind: config.feedForward, width: d, expand: config.feedForwardExpand, rng: &rng)
            feedForwardNorm = Norm(kind: config.norm, width: d)
        } else {
            feedForward = nil
            feedForwardNorm = nil
        }
        prenorm = config.prenorm
        dropout = config.dropout
    }

    func callAsFunction(_ x: Tensor<T>, lengths: [Int], training: Bool, rng: inout RandomGenerator) -> Tensor<T> {
        var h = x
        if let mixerNorm {
            h = residual(x, norm: mixerNorm, training: training, rng: &rng) { u in
                var y = mixer(u)
                if let reverseMixer {
                    y = y + reverseMixer(u.reversedWithin(lengths: lengths)).reversedWithin(lengths: lengths)
                }
                return y
            }
        } else {
            h = mixer(x)
        }
        if let feedForward, let feedForwardNorm {
            h = residual(h, norm: feedForwardNorm, training: training, rng: &rng) { feedForward($0) }
        }
        return h
    }

    private func residual(
        _ x: Tensor<T>, norm: Norm<T>, training: Bool, rng: inout RandomGenerator, _ f: (Tensor<T>) -> Tensor<T>
    ) -> Tensor<T> {
        if prenorm { return x + f(norm(x, training: training)).dropout(dropout, training: training, using: &rng) }
        return norm(x + f(x).dropout(dropout, training: training, using: &rng), training: training)
    }

    func parameters(_ name: String) -> [NamedParameter<T>] {
        mixer.parameters.prefixed("\(name).mixer") + (reverseMixer?.parameters.prefixed("\(name).reverse_mixer") ?? [])
            + (mixerNorm?.parameters("\(name).norm1") ?? []) + (feedForward?.parameters("\(name).ff") ?? [])
            + (feedForwardNorm?.parameters("\(name).norm2") ?? [])
    }

    func buffers(_ name: String) -> [(String, Tensor<T>)] {
        mixer.buffers.map { ("\(name).mixer.\($0.name)", $0.tensor) }
            + (reverseMixer?.buffers.map { ("\(name).reverse_mixer.\($0.name)", $0.tensor) } ?? [])
            + (mixerNorm?.buffers("\(name).norm1") ?? []) + (feedForwardNorm?.buffers("\(name).norm2") ?? [])
    }
}

extension Tensor {
    /// [B, L, ...] with each sequence b reversed over its first lengths[b] positions (padding stays in place):
    /// a permutation, so its adjoint is itself.
    func reversedWithin(lengths: [Int]) -> Tensor {
        precondition(rank >= 2 && lengths.count == shape[0], "reversedWithin: \(lengths.count) lengths for shape \(shape)")
        let (batch, length) = (shape[0], shape[1])
        let width = count / Swift.max(1, batch * length)
        func permute(_ src: [T]) -> [T] {
            var out = src
            for b in 0..<batch {
                let n = Swift.min(lengths[b], length)
                for t in 0..<n {
                    let from = (b * length + n - 1 - t) * width, to = (b * length + t) * width
                    for i in 0..<width { out[to + i] = src[from + i] }
                }
            }
            return out
        }
        let result = Tensor(shape: shape, data: permute(data))
        Tape.record("reversed_within", inputs: [self], output: result) { dy in [permute(dy)] }
        return result
    }
}
