import Foundation
import Tensors

/// GAM: a Gated Associative Memory block (Acharya 2025, "Gated Associative Memory: A Parallel O(N) Architecture
/// for Efficient Sequence Modeling"; the reference `GAMBlock` of rishiraj/gam).
///
///     xh = LayerNorm(x)
///     local = causal depthwise Conv1d(xh; kernel k, with bias)
///     global = softmax(xh M^T) M                    M [S, C] a learned memory bank (S slots), softmax over slots
///     [gl, gg] = xh W_g + b_g
///     h = x + sigmoid(gl) local + sigmoid(gg) global
///     y = h + Dropout(W2 GELU(W1 LayerNorm(h) + b1) + b2)     (FFN width expand * C)
///
/// A whole block (norms, residuals and feed-forward included), as the paper and its reference code define it.
/// Receptive field: M does not depend on the input and everything but the convolution acts per token, so y_t depends
/// on x_{t-k+1} .. x_t only (k tokens for one block; 6 (k - 1) + 1 = 13 tokens for six blocks with k = 3). GAM cannot
/// recall beyond that window (MQAR, long-range tasks): a useful control.
/// Two fused, token-blocked nodes: `gatedAssociativeMemory` (LayerNorm, convolution, memory, gates, residual) and
/// `residualFeedForward`. Step mode keeps the last k - 1 LayerNorm outputs (the convolution state).
/// Dropout (on the FFN output, as the reference) is active only while the tape records (training), never in steps.
public final class GAM<T: TensorScalar>: SequenceLayer {
    public typealias Scalar = T
    /// The model width C.
    public let dModel: Int
    /// Memory slots S.
    public let slots: Int
    /// The convolution width k.
    public let kernelSize: Int
    /// Dropout on the feed-forward output while training.
    public let dropout: Double
    /// LayerNorm before the mixer: weight, bias [C].
    public let norm1Weight: Tensor<T>, norm1Bias: Tensor<T>
    /// The depthwise convolution's taps [C, 1, k] (nn.Conv1d's layout; tap k - 1 multiplies the current token) and bias [C].
    public let convWeight: Tensor<T>, convBias: Tensor<T>
    /// The memory bank M [S, C], xavier-uniform.
    public let memory: Tensor<T>
    /// The gate projection W_g [2C, C] (nn.Linear layout), b_g [2C].
    public let gate: Linear<T>
    /// LayerNorm before the feed-forward: weight, bias [C].
    public let norm2Weight: Tensor<T>, norm2Bias: Tensor<T>
    /// The feed-forward: W1 [F, C] + b1, W2 [C, F] + b2 (nn.Linear layouts).
    public let up: Linear<T>, down: Linear<T>
    private var dropoutRNG: RandomGenerator

    /// A GAM block of width `c`, initialised as the reference (PyTorch defaults; xavier-uniform memory bank).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public init(dModel c: Int, slots: Int, kernelSize k: Int, expand: Int, dropout: Double, rng: inout RandomGenerator) {
        precondition(slots >= 1 && k >= 1 && expand >= 1 && dropout >= 0 && dropout < 1, "GAM: slots \(slots), kernel \(k), expand \(expand), dropout \(dropout)")
        dModel = c
        self.slots = slots
        kernelSize = k
        self.dropout = dropout
        norm1Weight = Tensor.ones([c], requiresGrad: true)
        norm1Bias = Tensor.zeros([c], requiresGrad: true)
        let convBound = T(1 / Double(k).squareRoot())  // PyTorch Conv1d default: fan_in = k for a depthwise filter
        convWeight = Tensor.uniform([c, 1, k], low: -convBound, high: convBound, using: &rng, requiresGrad: true)
        convBias = Tensor.uniform([c], low: -convBound, high: convBound, using: &rng, requiresGrad: true)
        let xavier = T((6 / Double(slots + c)).squareRoot())
        memory = Tensor.uniform([slots, c], low: -xavier, high: xavier, using: &rng, requiresGrad: true)
        gate = Linear(inputSize: c, outputSize: 2 * c, rng: &rng)
        norm2Weight = Tensor.ones([c], requiresGrad: true)
        norm2Bias = Tensor.zeros([c], requiresGrad: true)
        up = Linear(inputSize: c, outputSize: expand * c, rng: &rng)
        down = Linear(inputSize: expand * c, outputSize: c, rng: &rng)
        dropoutRNG = rng.split()
    }

    /// The block holds its norms and residuals, as the reference `GAMBlock`.
    public var includesResidual: Bool { true }

    /// The parallel form: x [B, L, C] -> y [B, L, C].
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func callAsFunction(_ x: Tensor<T>) -> Tensor<T> {
        precondition(x.rank == 3 && x.shape[2] == dModel, "GAM: input \(x.shape) for width \(dModel)")
        let h = gatedAssociativeMemory(x, normWeight: norm1Weight, normBias: norm1Bias, convWeight: convWeight, convBias: convBias,
                                       memory: memory, gateWeight: gate.weight, gateBias: gate.bias!)
        var mask: [T]? = nil
        if dropout > 0 && Tape.isRecording {
            let keep = T(1 / (1 - dropout))
            mask = (0..<x.count).map { _ in dropoutRNG.uniform() >= dropout ? keep : 0 }
        }
        return residualFeedForward(h, normWeight: norm2Weight, normBias: norm2Bias, upWeight: up.weight, upBias: up.bias!,
                                   downWeight: down.weight, downBias: down.bias!, dropoutMask: mask)
    }

    /// The convolution state: the last k - 1 LayerNorm outputs [B, k - 1, C] (zeros before the first token).
    public struct State {
        /// [B, k - 1, C], oldest first.
        public var history: Tensor<T>
    }

    /// Zeros: the convolution's causal padding.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func initialState(batchSize: Int) -> State { State(history: Tensor.zeros([batchSize, kernelSize - 1, dModel])) }

    /// One token x [B, D] -> y [B, D], from basic tape ops (differentiable).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func step(_ x: Tensor<T>, state: inout State) -> Tensor<T> {
        let (batch, c) = (x.shape[0], dModel)
        let xh = x.layerNorm(gamma: norm1Weight, beta: norm1Bias)  // [B, C]
        let current = xh.reshaped([batch, 1, c])
        let window = kernelSize > 1 ? Tensor.concatenate([state.history, current], axis: 1) : current  // [B, k, C]
        let local = (window * convWeight.reshaped([c, kernelSize]).transposed()).sum(axis: 1) + convBias
        let global = xh.matmul(memory, transposeOther: true).softmax().matmul(memory)
        let gates = gate(xh).split(axis: 1, sizes: [c, c])
        let h = x + gates[0].sigmoid() * local + gates[1].sigmoid() * global
        if kernelSize > 1 { state.history = window.slice(axis: 1, 1..<kernelSize) }
        return h + down(up(h.layerNorm(gamma: norm2Weight, beta: norm2Bias)).gelu())
    }

    /// Named and shaped as the reference GAMBlock's state_dict; LayerNorm parameters without weight decay.
    public var parameters: [NamedParameter<T>] {
        [NamedParameter("ln1.weight", norm1Weight, tags: .norm), NamedParameter("ln1.bias", norm1Bias, tags: .norm),
         NamedParameter("causal_conv.weight", convWeight), NamedParameter("causal_conv.bias", convBias),
         NamedParameter("memory_bank", memory)] + gate.parameters("gate")
            + [NamedParameter("ln2.weight", norm2Weight, tags: .norm), NamedParameter("ln2.bias", norm2Bias, tags: .norm)]
            + up.parameters("ffn.0") + down.parameters("ffn.2")
    }

    /// Two LayerNorms; the causal depthwise conv (2 per visible tap + bias); the memory softmax(xh M^T) M (2 products
    /// of 2 C S per token, softmax 4 + 1 exp per slot); the gates W_g (+ bias, 2 C sigmoids) and x + s_l local + s_g global
    /// (4 per channel); the FFN W1 (+ bias), GELU (4 + 1 erf), W2 (+ bias) and its residual add. No dropout.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func work(batch: Int, length: Int) -> LayerWork? {
        let rows = batch * length, c = dModel, elements = Double(rows * c), width = up.outputSize
        let taps = Double(batch * c) * LayerWork.causalTaps(length: length, width: kernelSize)
        let mixer = LayerWork.norm(rows: rows, width: c) + LayerWork(elementwise: 2 * taps + elements)
            + LayerWork.product(rows, slots, c) + LayerWork.product(rows, c, slots)
            + LayerWork(elementwise: 4 * Double(rows * slots), transcendentals: Double(rows * slots))
            + LayerWork.linear(rows: rows, inputs: c, outputs: 2 * c, bias: true)
            + LayerWork(elementwise: 4 * elements, transcendentals: 2 * elements)
        let feedForward = LayerWork.norm(rows: rows, width: c) + LayerWork.linear(rows: rows, inputs: c, outputs: width, bias: true)
            + LayerWork(elementwise: 4 * Double(rows * width), transcendentals: Double(rows * width))
            + LayerWork.linear(rows: rows, inputs: width, outputs: c, bias: true) + LayerWork.elementwise(rows * c, flops: 1)
        return mixer + feedForward
    }

    /// The convolution state: (k - 1) C scalars per sequence, whatever the length.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func stateSize(sequenceLength: Int) -> Int { (kernelSize - 1) * dModel }
}

/// Registry entry for `gam`.
public enum GAMFactory: LayerFactory {
    public static let name = "gam"
    public static let plotColor = "#882255"
    public static var opChecks: [OpCheck] { GAMChecks.checks }
    public static let summary = "GAM block: causal conv + softmax memory bank, sigmoid-gated, with FFN (Acharya 2025)"
    public static let options: [LayerOptionSpec] = [
        .int("slots", 512, "memory bank slots S", min: 1, max: LayerLimits.maximumWidth),
        .int("kernel_size", 3, "causal depthwise convolution width k (receptive field k tokens per block)", min: 1, max: LayerLimits.maximumConvolutionWidth),
        .int("ffn_expand", 4, "feed-forward width / d_model", min: 1, max: LayerLimits.maximumExpansion),
        .dropout("dropout", "dropout on the feed-forward output while training"),
    ]

    /// Builds GAM from its options; bad values get a one-line error.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func make<T: TensorScalar>(dModel: Int, options: OptionValues, context: LayerContext,
                                             rng: inout RandomGenerator) throws -> any SequenceLayer<T> {
        GAM<T>(dModel: dModel, slots: options.int("slots"), kernelSize: options.int("kernel_size"),
               expand: options.int("ffn_expand"), dropout: options.double("dropout"), rng: &rng)
    }

    /// Small memory banks keep the debug-build check fast; kernel widths 1, 3 and 4.
    public static var checkOptions: [LayerOptions] {
        [LayerOptions(["slots": "16"]), LayerOptions(["slots": "5", "kernel_size": "1", "ffn_expand": "2"]),
         LayerOptions(["slots": "9", "kernel_size": "4"])]
    }
}
