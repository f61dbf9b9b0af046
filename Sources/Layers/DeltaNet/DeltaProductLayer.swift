import Foundation
import Tensors

/// fla's gated DeltaProduct layer (Siems et al. 2025, "DeltaProduct: Improving State-Tracking in Linear RNNs via
/// Householder Products"; DeltaNet = n_h 1, Yang et al. 2024):
///     q = x W_q [H K], k = x W_k [n_h H K], v = x W_v [n_h H V]     (short causal conv k = 4 + SiLU, or SiLU alone)
///     q, k L2-normalised per head (x / sqrt(sum x^2 + 1e-6));  beta = sigmoid(x W_b) [n_h H] (2 sigmoid with allow_neg_eigval)
///     g = -exp(A_log) softplus(x W_a + dt_bias) [H] (forget gate, optional), A ~ U(0, 16)
///     o = delta_product(q, k, v, beta, g) (`deltaProduct`, scale K^-1/2; chunked WY form by default)
///     y = (RMSNorm_per_head(o) [* swish(x W_g)]) W_o
/// Init as the standalone fla layer (`GatedDeltaProduct`, `DeltaNet`), which leaves its modules at PyTorch's default:
/// every projection W ~ U(+-1/sqrt(fan_in)) (nn.Linear), the convolutions U(+-1/sqrt(conv_size)) (depthwise
/// nn.Conv1d), the norm weight 1; A_log = log A with A ~ U(0, 16); dt_bias = softplus^-1(dt) with dt log-uniform on
/// [0.001, 0.1] (floor 1e-4) (docs/init.md; fla's models re-initialise Linear and Conv1d weights to N(0, 0.02^2)).
/// Step mode runs the recurrence (`deltaProductStep`) with S [B, H, K, V] and the convolution windows carried.
public final class DeltaProductLayer<T: TensorScalar>: SequenceLayer {
    public typealias Scalar = T
    public let dModel, heads, headKeyDim, headValueDim, householder: Int
    public let allowNegativeEigenvalues: Bool
    /// How the training (parallel) pass evaluates the delta rule: the chunked WY form or the fused recurrence.
    public let form: DeltaForm
    /// Sub-steps per chunk of the chunked form (tokens between checkpoints of the recurrent form).
    public let chunkSize: Int

    /// The default chunk for heads of key size K and value size V: max(K, V) clamped to [16, 64]. Per sub-step the
    /// chunked form costs about C (K + V) multiply-adds in its C x C products (K K^T, Q K^T, the solve, dA, ...)
    /// against K V in its state products, so C = max(K, V) keeps the intra-chunk part no larger than the state part
    /// while the GEMMs stay large enough for BLAS. Measured at K = V = 32 (n_h 2, release, loaded machine): C = 32
    /// is about 10% faster than fla's C = 64 at both benchmark shapes; with K = V = 64 this gives fla's 64.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func defaultChunkSize(keyDim: Int, valueDim: Int) -> Int { min(64, max(16, max(keyDim, valueDim))) }
    public let qProj, kProj, vProj, bProj, oProj: Linear<T>
    /// Forget gate: a_proj, A_log [H], dt_bias [H] (nil without the gate).
    public let forgetGate: (aProj: Linear<T>, aLog: Tensor<T>, dtBias: Tensor<T>)?
    /// Output gate g_proj (nil: plain RMSNorm).
    public let outputGate: Linear<T>?
    /// RMSNorm weight over one head's values [V].
    public let normWeight: Tensor<T>
    /// Short causal depthwise convolutions on q, k, v ([channels, conv_size] each), if enabled.
    public let convolutions: (q: Tensor<T>, k: Tensor<T>, v: Tensor<T>)?
    public var keyDim: Int { heads * headKeyDim }
    public var valueDim: Int { heads * headValueDim }

    /// A layer of width `dModel` with `heads` heads of key size `headDim` and value size expandV headDim, `householder`
    /// (n_h) delta steps per token; `shortConvolution` is the conv width (nil: SiLU only).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public init(dModel: Int, heads: Int = 4, headDim: Int = 32, expandV: Double = 1, householder: Int = 2,
                allowNegativeEigenvalues: Bool = false, useForgetGate: Bool = true, useOutputGate: Bool = true,
                shortConvolution: Int? = 4, form: DeltaForm = .chunked, chunkSize: Int? = nil,
                rng: inout RandomGenerator) {
        (self.dModel, self.heads, self.headKeyDim, self.householder) = (dModel, heads, headDim, householder)
        headValueDim = Int(Double(headDim) * expandV)
        precondition(heads >= 1 && headDim >= 1 && headValueDim >= 1 && householder >= 1, "deltaproduct: bad sizes")
        self.allowNegativeEigenvalues = allowNegativeEigenvalues
        (self.form, self.chunkSize) = (form, chunkSize ?? Self.defaultChunkSize(keyDim: headDim, valueDim: headValueDim))
        let (kd, vd) = (heads * headDim, heads * headValueDim)
        func linear(_ n: Int, _ m: Int) -> Linear<T> { Linear(inputSize: n, outputSize: m, bias: false, rng: &rng) }
        qProj = linear(dModel, kd); kProj = linear(dModel, kd * householder)
        vProj = linear(dModel, vd * householder); bProj = linear(dModel, heads * householder)
        oProj = linear(vd, dModel)
        if useForgetGate {
            let a = linear(dModel, heads)
            // fla: A ~ U(0, 16), A_log = log A (1 - u in (0, 1] keeps log finite).
            let aLog = Tensor<T>(shape: [heads], data: (0..<heads).map { _ in T(Foundation.log((1 - rng.uniform()) * 16)) })
            // fla: dt = exp(U (log 0.1 - log 0.001) + log 0.001) clamped >= 1e-4; dt_bias = dt + log(-expm1(-dt)).
            let dt = Tensor<T>(shape: [heads], data: TimeStepInit.biases(heads, rng: &rng))
            forgetGate = (a, aLog.requiringGrad(), dt.requiringGrad())
        } else {
            forgetGate = nil
        }
        outputGate = useOutputGate ? linear(dModel, vd) : nil
        normWeight = Tensor.ones([headValueDim], requiresGrad: true)
        convolutions = shortConvolution.map { ShortConvolutionWeights.draw(kd, kd * householder, vd * householder, width: $0, rng: &rng) }
    }

    private var scale: T { 1 / T(headKeyDim).squareRoot() }

    /// x / sqrt(sum x^2 + 1e-6) over the last axis.
    private func l2Normalized(_ x: Tensor<T>) -> Tensor<T> {
        x * (x.square().sum(axis: x.rank - 1, keepDims: true) + T(1e-6)).rsqrt()
    }

    /// The projections of x [..., D] as one node (`linearGroup`): q [..., H K], k [..., n_h H K], v [..., n_h H V],
    /// the beta logits [..., n_h H], the forget gate's x W_a [..., H] and the output gate x W_g [..., H V] (nil
    /// without them).
    private func project(_ x: Tensor<T>) -> (q: Tensor<T>, k: Tensor<T>, v: Tensor<T>, b: Tensor<T>, a: Tensor<T>?, gate: Tensor<T>?) {
        let maps = [qProj, kProj, vProj, bProj] + (forgetGate.map { [$0.aProj] } ?? []) + (outputGate.map { [$0] } ?? [])
        let y = linearGroup(x, maps)
        let a = forgetGate == nil ? nil : y[4]
        let gate = outputGate == nil ? nil : y[y.count - 1]
        return (y[0], y[1], y[2], y[3], a, gate)
    }

    /// beta [..., n_h H] and the log-decay g [..., H] (nil without the forget gate) from the beta logits x W_b and
    /// the forget gate's x W_a.
    private func betaAndDecay(_ logits: Tensor<T>, _ a: Tensor<T>?) -> (Tensor<T>, Tensor<T>?) {
        let b = logits.sigmoid()
        let beta = allowNegativeEigenvalues ? b * T(2) : b
        let g = forgetGate.flatMap { f in a.map { ($0 + f.dtBias).softplus() * (-f.aLog.exp()) } }
        return (beta, g)
    }

    /// (RMSNorm_per_head(o) [* swish(x W_g)]) W_o for o [..., H, V] and the output gate's x W_g.
    private func output(_ o: Tensor<T>, gate: Tensor<T>?) -> Tensor<T> {
        let normed = gatedRMSNorm(o, gate: gate, weight: normWeight, eps: 1e-5)  // [..., H, V]
        return oProj(normed.reshaped(Array(o.shape.dropLast(2)) + [valueDim]))
    }

    /// x [B, L, D] -> y [B, L, D].
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func callAsFunction(_ x: Tensor<T>) -> Tensor<T> {
        precondition(x.rank == 3 && x.shape[2] == dModel, "deltaproduct: input \(x.shape) for d_model \(dModel)")
        let (B, L, H, NH) = (x.shape[0], x.shape[1], heads, householder)
        let p = project(x)
        var (q, k, v) = (p.q, p.k, p.v)  // [B, L, H K], [B, L, NH H K], [B, L, NH H V]
        if let c = convolutions {
            // silu(conv(.)) as one node each (`shortConvolutionSiLU`), then L2 norms.
            let convolve = { (u: Tensor<T>, w: Tensor<T>) in shortConvolutionSiLU(u, weight: w) }
            q = convolve(q, c.q).reshaped([B, L, H, headKeyDim]).l2Normalized()          // [B, L, H, K]
            k = convolve(k, c.k).reshaped([B, L, NH, H, headKeyDim]).l2Normalized()      // [B, L, NH, H, K]
            v = convolve(v, c.v).reshaped([B, L, NH, H, headValueDim])                   // [B, L, NH, H, V]
        } else {
            q = q.reshaped([B, L, H, headKeyDim]).siluL2Normalized()                     // [B, L, H, K]
            k = k.reshaped([B, L, NH, H, headKeyDim]).siluL2Normalized()                 // [B, L, NH, H, K]
            v = v.silu().reshaped([B, L, NH, H, headValueDim])                           // [B, L, NH, H, V]
        }
        let (beta, g) = betaAndDecay(p.b, p.a)                               // [B, L, NH H], [B, L, H]
        let (o, _) = deltaProduct(q: q, k: k, v: v, beta: beta.reshaped([B, L, NH, H]), logDecay: g, scale: scale,
                                  form: form, chunkSize: chunkSize)
        return output(o, gate: p.gate)                                       // [B, L, D]
    }

    /// The recurrent state: S [B, H, K, V] and, with short convolutions, the last conv_size - 1 inputs of q, k, v.
    public typealias State = LinearAttentionState<T>

    /// Zero memory and zero convolution windows.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func initialState(batchSize: Int) -> State {
        State(batchSize: batchSize, heads: heads, keyDim: headKeyDim, valueDim: headValueDim, convolutions: convolutions)
    }

    /// One token x [B, D] -> y [B, D], advancing the state.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func step(_ x: Tensor<T>, state: inout State) -> Tensor<T> {
        precondition(x.rank == 2 && x.shape[1] == dModel, "deltaproduct step: input \(x.shape) for d_model \(dModel)")
        let (B, H, NH) = (x.shape[0], heads, householder)
        let p = project(x)
        var (q, k, v) = (p.q, p.k, p.v)  // [B, H K], [B, NH H K], [B, NH H V]
        if let c = convolutions { (q, k, v) = state.convolutionStep(q: q, k: k, v: v, weights: c) }
        q = l2Normalized(q.silu().reshaped([B, H, headKeyDim]))              // [B, H, K]
        k = l2Normalized(k.silu().reshaped([B, NH, H, headKeyDim]))          // [B, NH, H, K]
        v = v.silu().reshaped([B, NH, H, headValueDim])                      // [B, NH, H, V]
        let (beta, g) = betaAndDecay(p.b, p.a)                               // [B, NH H], [B, H]
        let (o, memory) = deltaProductStep(q: q, k: k, v: v, beta: beta.reshaped([B, NH, H]), logDecay: g,
                                           state: state.memory, scale: scale)  // [B, H, V]
        state.memory = memory
        return output(o, gate: p.gate)
    }

    public var parameters: [NamedParameter<T>] {
        var p = qProj.parameters("q_proj") + kProj.parameters("k_proj") + vProj.parameters("v_proj") + bProj.parameters("b_proj")
        if let f = forgetGate {
            p += f.aProj.parameters("a_proj")
            p += [NamedParameter("A_log", f.aLog, tags: .ssm), NamedParameter("dt_bias", f.dtBias, tags: .ssm)]
        }
        if let gp = outputGate { p += gp.parameters("g_proj") }
        p.append(NamedParameter("o_norm.weight", normWeight, tags: .norm))
        if let c = convolutions {
            p += [NamedParameter("q_conv1d.weight", c.q), NamedParameter("k_conv1d.weight", c.k), NamedParameter("v_conv1d.weight", c.v)]
        }
        return p + oProj.parameters("o_proj")
    }

    /// Projections (q, k, v, beta, the gates, o), the short convs (2 per visible tap) and SiLU of q, k, v, L2 norms of
    /// q, k (3 per element), beta (a sigmoid), the forget gate (2 + softplus, exp per head: S *= exp g, K V), and per token
    /// and head n_h delta steps S += k (beta (v - k^T S))^T (4 K V + 2 V each), the readout s q S (2 K V + K), gated RMSNorm.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func work(batch: Int, length: Int) -> LayerWork? {
        let rows = batch * length, tokens = rows * heads, (kd, vd, nh) = (headKeyDim, headValueDim, householder)
        let projections = LayerWork.linear(rows: rows, inputs: dModel, outputs: keyDim)
            + LayerWork.linear(rows: rows, inputs: dModel, outputs: nh * keyDim)
            + LayerWork.linear(rows: rows, inputs: dModel, outputs: nh * valueDim)
            + LayerWork.linear(rows: rows, inputs: dModel, outputs: nh * heads)
            + LayerWork.linear(rows: rows, inputs: valueDim, outputs: dModel)
        let keyChannels = (1 + nh) * keyDim, channels = keyChannels + nh * valueDim
        var w = projections + LayerWork(elementwise: Double(rows * channels), transcendentals: Double(rows * channels))  // SiLU
        if let c = convolutions {
            w = w + LayerWork(elementwise: 2 * Double(batch * channels) * LayerWork.causalTaps(length: length, width: c.q.shape[2]))
        }
        w = w + LayerWork.elementwise(rows * keyChannels, flops: 3)  // L2 norms of q and k
        w = w + LayerWork(elementwise: allowNegativeEigenvalues ? Double(rows * nh * heads) : 0, transcendentals: Double(rows * nh * heads))
        let stateEntries = Double(tokens) * Double(kd * vd)
        if let f = forgetGate {  // softplus(x W_a + dt_bias) * -exp(A_log), then S *= exp(g)
            w = w + LayerWork.linear(rows: rows, inputs: dModel, outputs: heads, bias: f.aProj.bias != nil)
                + LayerWork(elementwise: 2 * Double(tokens) + stateEntries, transcendentals: 2 * Double(tokens))
        }
        w = w + LayerWork(products: Double(4 * nh + 2) * stateEntries, elementwise: Double(tokens * (2 * nh * vd + kd)))
        w = w + LayerWork.norm(rows: tokens, width: vd)
        if let g = outputGate {  // * swish(x W_g): a product and a sigmoid for the swish, one product for the gate
            w = w + LayerWork.linear(rows: rows, inputs: dModel, outputs: valueDim, bias: g.bias != nil)
                + LayerWork(elementwise: 2 * Double(rows * valueDim), transcendentals: Double(rows * valueDim))
        }
        return w
    }

    /// H K V (the matrix memory), plus (conv_size - 1)(channels of q, k, v) with short convolutions.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func stateSize(sequenceLength: Int) -> Int {
        heads * headKeyDim * headValueDim
            + (convolutions.map { ($0.q.shape[2] - 1) * ($0.q.shape[0] + $0.k.shape[0] + $0.v.shape[0]) } ?? 0)
    }
}
