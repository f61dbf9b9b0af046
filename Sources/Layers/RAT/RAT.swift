import Tensors

/// RAT: recurrence within chunks, attention across chunks (Wei, Yadav, Pascanu & Gulcehre 2025, "RAT: Bridging RNN
/// Efficiency and Attention Accuracy in Language Modeling", arXiv:2507.04416).
///
///     h = RMSNorm(x)                                 input_norm, eps 1e-6, learnable gain
///     [z, v, a, q, k] = h W_in^T                     W_in [3D + 2 G E, D], no bias; q, k shared by G groups
///     g = sigmoid(a + gate_bias)                     one forget gate per channel
///     vt_l = g vt_{l-1} + (1 - g) v_l,  kt likewise  inside each chunk of C tokens, from zero (k tiled to D)
///     o_t = softmax attention of R(c(t)) q_t over the chunk ends R(j) kt, vt of the chunks j < c(t) and over
///           its own partial (kt_t, vt_t), merged exactly by log-sum-exp   (R: rotary embedding by chunk index)
///     y = x + (sigmoid(z) * o) W_out^T               W_out [D, D], no bias
///
/// This is the whole layer of the reference (CLAIRE-Labo/RAT `rat_slow.RATSlow`): its pre-norm RMSNorm and its
/// residual are inside (`includesResidual`), so the model's block adds neither a second norm nor a second residual.
/// C = 1 is causal softmax attention (with keys and values scaled by 1 - g); C >= L is a gated linear RNN.
/// Fused nodes: `tokenBlockedLinear` (in_proj), `chunkedGatedRecurrence`, `chunkAttention`,
/// `tokenBlockedGatedLinear` (gate + out_proj). Step mode keeps the partial (kt, vt), resets it at chunk
/// boundaries and caches one rotated key and one value per finished chunk.
public final class RAT<T: TensorScalar>: SequenceLayer {
    public typealias Scalar = T
    /// The model width D.
    public let dModel: Int
    /// Attention heads H.
    public let heads: Int
    /// Query/key groups G (head h uses group h mod G).
    public let groups: Int
    /// The head dimension E = D / H.
    public let headDim: Int
    /// Tokens per chunk C.
    public let chunkSize: Int
    /// The rotary base (nil: no rotary embedding).
    public let ropeBase: Double?
    /// The input RMSNorm gain [D] (`input_norm.weight`, init 1).
    public let inputNorm: Tensor<T>
    /// W_in [3D + 2 G E, D] producing z, v, a, q, k.
    public let inProj: Linear<T>
    /// Per-channel forget-gate bias [D], init log U(1, C - 1) (gates sigmoid(bias) between 1/2 and (C - 1) / C).
    public let gateBias: Tensor<T>
    /// W_out [D, D].
    public let outProj: Linear<T>

    /// A RAT mixer of width `dModel`, initialised as the reference repository configures RATSlow.init_weights
    /// (configs/model/backbone/sequence.yaml: init `fixed`, initializer_range 0.02): W_in, W_out ~ N(0, 0.02^2),
    /// gate bias log U(1, C - 1) (0 for C <= 2), input norm gain 1 (docs/init.md).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public init(dModel: Int, heads: Int, groups: Int, chunkSize: Int, ropeBase: Double?, rng: inout RandomGenerator) {
        precondition(dModel % heads == 0 && heads % groups == 0 && chunkSize >= 1, "RAT: d_model \(dModel), heads \(heads), groups \(groups), chunk \(chunkSize)")
        self.dModel = dModel
        self.heads = heads
        self.groups = groups
        headDim = dModel / heads
        self.chunkSize = chunkSize
        self.ropeBase = ropeBase
        inputNorm = Tensor.ones([dModel], requiresGrad: true)
        inProj = Linear(inputSize: dModel, outputSize: 3 * dModel + 2 * groups * headDim, bias: false,
                        normalStd: Self.initializerRange, rng: &rng)
        gateBias = Tensor(shape: [dModel], data: (0..<dModel).map { _ in
            chunkSize > 2 ? T.log(1 + T(rng.uniform()) * T(chunkSize - 2)) : 0
        }, requiresGrad: true)
        outProj = Linear(inputSize: dModel, outputSize: dModel, bias: false, normalStd: Self.initializerRange, rng: &rng)
    }

    /// The std of the projections' init (the reference repository's `initializer_range`).
    public static var initializerRange: Double { 0.02 }

    /// The epsilon of the input RMSNorm (the reference's `torch.nn.RMSNorm(d_model, eps=1e-6)`).
    public static var inputNormEpsilon: T { 1e-6 }

    /// The layer is a whole pre-norm residual block, as the reference's.
    public var includesResidual: Bool { true }

    /// The widths of z, v, a, q, k in the projection.
    var splits: [Int] { [dModel, dModel, dModel, groups * headDim, groups * headDim] }

    /// The parallel form: x [B, L, D] -> y [B, L, D].
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func callAsFunction(_ x: Tensor<T>) -> Tensor<T> {
        precondition(x.rank == 3 && x.shape[2] == dModel, "RAT: input \(x.shape) for width \(dModel)")
        let (batch, length) = (x.shape[0], x.shape[1])
        let h = x.rmsNorm(gamma: inputNorm, eps: Self.inputNormEpsilon)        // [B, L, D]
        let p = tokenBlockedLinear(h, weight: inProj.weight, splits: splits)  // z, v, a [B, L, D]; q, k [B, L, G E]
        let (vt, kt) = chunkedGatedRecurrence(values: p[1], keys: p[4], gateLogits: p[2], gateBias: gateBias, chunkSize: chunkSize)
        let o = chunkAttention(
            q: p[3].reshaped([batch, length, groups, headDim]), k: kt.reshaped([batch, length, heads, headDim]),
            v: vt.reshaped([batch, length, heads, headDim]), chunkSize: chunkSize, ropeBase: ropeBase)  // [B, L, H, E]
        return x + tokenBlockedGatedLinear(o.reshaped([batch, length, dModel]), gateLogits: p[0], weight: outProj.weight)
    }

    /// The recurrent state: the position, the partial (kt, vt) [B, D], and per sequence the rotated chunk-end keys
    /// and the chunk-end values of the finished chunks ([chunks, D] each, appended).
    public struct State {
        /// Tokens consumed so far.
        public var position = 0
        /// The partial kt, vt of the current chunk [B, D].
        public var partialKeys: [T]
        public var partialValues: [T]
        /// Per sequence: the rotated chunk-end keys and the chunk-end values of the finished chunks [chunks, D].
        public var cachedKeys: [[T]]
        public var cachedValues: [[T]]
    }

    /// Position 0, empty caches, zero partial states.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func initialState(batchSize: Int) -> State {
        State(partialKeys: [T](repeating: 0, count: batchSize * dModel), partialValues: [T](repeating: 0, count: batchSize * dModel),
              cachedKeys: Array(repeating: [], count: batchSize), cachedValues: Array(repeating: [], count: batchSize))
    }

    /// One token x [B, D] -> y [B, D]. Inference only: not recorded on the tape.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func step(_ x: Tensor<T>, state: inout State) -> Tensor<T> {
        Tape.withoutGradients {
            let batch = x.shape[0]
            let (d, e, qk) = (dModel, headDim, groups * headDim)
            let p = inProj(x.rmsNorm(gamma: inputNorm, eps: Self.inputNormEpsilon)).data  // [B, 3D + 2 G E]
            let width = 3 * d + 2 * qk
            let chunk = state.position / chunkSize, first = state.position % chunkSize == 0
            let rotary = ChunkRotary<T>(positions: 1, dim: e, base: ropeBase, firstPosition: chunk)
            let scale = 1 / T(e).squareRoot()
            var gated = [T](repeating: 0, count: batch * d)
            var qr = [T](repeating: 0, count: e)
            for b in 0..<batch {
                let row = b * width
                for i in 0..<d {
                    let g = stableSigmoid(p[row + 2 * d + i] + gateBias.data[i])
                    let (k, v) = (p[row + 3 * d + qk + i % qk], p[row + d + i])
                    let (pk, pv) = first ? (T(0), T(0)) : (state.partialKeys[b * d + i], state.partialValues[b * d + i])
                    state.partialKeys[b * d + i] = g * pk + (1 - g) * k
                    state.partialValues[b * d + i] = g * pv + (1 - g) * v
                }
                let cached = state.cachedKeys[b].count / d
                for h in 0..<heads {
                    let qOffset = row + 3 * d + (h % groups) * e
                    p.withUnsafeBufferPointer { pp in qr.withUnsafeMutableBufferPointer { qrp in
                        rotary.rotate(pp.baseAddress! + qOffset, into: qrp.baseAddress!, position: chunk)
                    } }
                    var scores = [T](repeating: 0, count: cached + 1)
                    for j in 0..<cached {
                        var dot: T = 0
                        for i in 0..<e { dot += qr[i] * state.cachedKeys[b][j * d + h * e + i] }
                        scores[j] = scale * dot
                    }
                    var selfDot: T = 0
                    for i in 0..<e { selfDot += p[qOffset + i] * state.partialKeys[b * d + h * e + i] }
                    scores[cached] = scale * selfDot
                    let m = scores.max()!
                    let w = scores.map { T.exp($0 - m) }
                    let total = w.reduce(0, +)
                    for i in 0..<e {
                        var o = w[cached] * state.partialValues[b * d + h * e + i]
                        for j in 0..<cached { o += w[j] * state.cachedValues[b][j * d + h * e + i] }
                        gated[b * d + h * e + i] = o / total * stableSigmoid(p[row + h * e + i])
                    }
                }
                if state.position % chunkSize == chunkSize - 1 {  // the chunk is finished: cache its end state
                    var rotated = [T](repeating: 0, count: d)
                    state.partialKeys.withUnsafeBufferPointer { kp in rotated.withUnsafeMutableBufferPointer { rp in
                        for h in 0..<heads { rotary.rotate(kp.baseAddress! + b * d + h * e, into: rp.baseAddress! + h * e, position: chunk) }
                    } }
                    state.cachedKeys[b] += rotated
                    state.cachedValues[b] += state.partialValues[(b * d)..<((b + 1) * d)]
                }
            }
            state.position += 1
            return x + outProj(Tensor(shape: [batch, d], data: gated))
        }
    }

    /// input_norm.weight [D] and gate_bias [D] (no weight decay), in_proj.weight [3D + 2 G E, D], out_proj.weight [D, D]:
    /// the reference RATSlow's state_dict keys and shapes.
    public var parameters: [NamedParameter<T>] {
        [NamedParameter("input_norm.weight", inputNorm, tags: .norm)] + inProj.parameters("in_proj")
            + [NamedParameter("gate_bias", gateBias, tags: .ssm)] + outProj.parameters("out_proj")
    }

    /// RMSNorm, in_proj, out_proj; per (token, channel) the gate sigmoid(a + b) (1 + 1 sigmoid), the recurrences of vt and kt
    /// (7: 1 - g, then g h + (1 - g) x for each; 3 at a chunk's first token) and sigmoid(z) o + x (2 + 1 sigmoid); per head
    /// and visible (query, key) pair (the chunk ends j < c(t) and the own partial state) attention's 4 E + 4 + 1 exp;
    /// rotary by chunk index (3 per element) on the queries that see chunk ends and on the chunk ends they see.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func work(batch: Int, length: Int) -> LayerWork? {
        let rows = batch * length, elements = Double(rows * dModel)
        let chunks = (length + chunkSize - 1) / chunkSize, (full, rest) = (length / chunkSize, length % chunkSize)
        let earlierEnds = Double(chunkSize) * Double(full) * Double(full - 1) / 2 + Double(rest * full)  // sum_t floor(t / C)
        let pairs = Double(batch * heads) * (Double(length) + earlierEnds)
        let firstTokens = Double(batch * chunks * dModel)
        var w = LayerWork.norm(rows: rows, width: dModel) + LayerWork.linear(rows: rows, inputs: dModel, outputs: inProj.outputSize)
            + LayerWork.linear(rows: rows, inputs: dModel, outputs: dModel)
        w = w + LayerWork(elementwise: 10 * elements - 4 * firstTokens, transcendentals: 2 * elements)
        w = w + LayerWork(products: 4 * Double(headDim) * pairs, elementwise: 4 * pairs, transcendentals: pairs)
        if ropeBase != nil {
            let rotatedQueries = max(length - chunkSize, 0) * groups * headDim, rotatedEnds = max(length - 1, 0) / chunkSize * dModel
            w = w + LayerWork.elementwise(batch * (rotatedQueries + rotatedEnds), flops: 3)
        }
        return w
    }

    /// One key and one value of width D per finished chunk, plus the partial (kt, vt): 2 D (floor(T / C) + 1).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func stateSize(sequenceLength: Int) -> Int { 2 * dModel * (sequenceLength / chunkSize + 1) }
}

/// Registry entry for `rat`.
public enum RATFactory: LayerFactory {
    public static let name = "rat"
    public static let plotColor = "#999999"
    public static var opChecks: [OpCheck] { RATChecks.checks }
    public static let summary = "RAT: gated recurrence within chunks, softmax attention across chunks (Wei et al. 2025)"
    public static let options: [LayerOptionSpec] = [
        .int("chunk_size", 16, "tokens per chunk (1: softmax attention; >= L: gated linear RNN)", min: 1, max: LayerLimits.maximumChunk),
        .int("n_heads", 4, "attention heads (head dim = d_model / n_heads)", min: 1, max: LayerLimits.maximumWidth),
        .int("n_groups", 2, "query/key groups shared by the heads (divides n_heads)", min: 1, max: LayerLimits.maximumWidth),
        .number("rope_base", 10_000, "rotary base for positions by chunk index (0: no rotary embedding)", min: 0),
    ]

    /// Builds RAT from its options; bad values get a one-line error.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func make<T: TensorScalar>(dModel: Int, options: OptionValues, context: LayerContext,
                                             rng: inout RandomGenerator) throws -> any SequenceLayer<T> {
        let chunk = options.int("chunk_size"), heads = options.int("n_heads"), groups = options.int("n_groups")
        let base = options.double("rope_base")
        guard dModel % heads == 0 else { throw SequenceLabError("layer rat: n_heads \(heads) must divide d_model \(dModel)") }
        guard heads % groups == 0 else { throw SequenceLabError("layer rat: n_groups \(groups) must divide n_heads \(heads)") }
        guard base == 0 || (dModel / heads) % 2 == 0 else {
            throw SequenceLabError("layer rat: the rotary embedding needs an even head dim, got \(dModel / heads) (set rope_base=0 to turn it off)")
        }
        return RAT<T>(dModel: dModel, heads: heads, groups: groups, chunkSize: chunk, ropeBase: base == 0 ? nil : base, rng: &rng)
    }

    /// Short chunks so that the check's few tokens cross several chunk boundaries; grouped and ungrouped queries.
    public static var checkOptions: [LayerOptions] {
        [LayerOptions(["chunk_size": "3", "n_heads": "4", "n_groups": "2"]),
         LayerOptions(["chunk_size": "2", "n_heads": "2", "n_groups": "1"]),
         LayerOptions(["chunk_size": "1", "n_heads": "2", "n_groups": "2", "rope_base": "0"])]
    }
}
