import Tensors

/// `mlstm` (docs/ops.md): q, k, v [B, L, H, E], i, f [B, L, H] (gate pre-activations), optionally the entering state
/// C0 [B, H, E, E], n0 [B, H, E], m0 [B, H] (all three or none) -> h [B, L, H, E] and the final C, n, m, in xlstm's
/// recurrent-step layout (C, n stabilised by e^{-m}; keys scaled by E^-1/2 inside). Options eps (1e-6), chunk_size.
public enum MatrixLSTMKernel: FunctionalKernel {
    public static let name = "mlstm"
    public static let inputs = [KernelInput("q"), KernelInput("k"), KernelInput("v"), KernelInput("i"), KernelInput("f"),
                                KernelInput("C0", optional: true), KernelInput("n0", optional: true), KernelInput("m0", optional: true)]
    public static let outputs = ["h", "C", "n", "m"]
    public static let options: [LayerOptionSpec] = [
        .number("eps", matrixLSTMEpsilon, "the normaliser's eps: h = q C / (max(|q n|, e^-m) + eps)", min: 0),
        .int("chunk_size", 64, "tokens per chunk of the chunkwise parallel form", min: 1, max: LayerLimits.maximumChunk),
    ]

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func evaluate<T: TensorScalar>(_ x: [String: Tensor<T>], options: OptionValues) throws -> [String: Tensor<T>] {
        let q = x["q"]!
        try requireRank(q, 4, "q", layout: "[B, L, H, E]", op: name)
        let (b, l, h, e) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        for key in ["k", "v"] { try requireShape(x[key]!, q.shape, key, op: name) }
        for key in ["i", "f"] {
            try requireShape(x[key]!, [b, l, h], key, op: name)
            guard x[key]!.data.allSatisfy({ $0.isFinite }) else { throw SequenceLabError("op \(name): \(key) holds gate pre-activations and must be finite") }
        }
        let given = ["C0", "n0", "m0"].filter { x[$0] != nil }
        guard given.isEmpty || given.count == 3 else {
            throw SequenceLabError("op \(name): the entering state is C0, n0 and m0 together; got only \(given.joined(separator: ", "))")
        }
        var state: MatrixLSTMState<T>? = nil
        if let c0 = x["C0"], let n0 = x["n0"], let m0 = x["m0"] {
            try requireShape(c0, [b, h, e, e], "C0", op: name)
            try requireShape(n0, [b, h, e], "n0", op: name)
            try requireShape(m0, [b, h], "m0", op: name)
            guard m0.data.allSatisfy({ $0.isFinite }) else { throw SequenceLabError("op \(name): m0 must be finite (omit C0, n0, m0 for the empty state)") }
            state = MatrixLSTMState(memory: Tensor.concatenate([c0, n0.reshaped([b, h, e, 1])], axis: 3), stabilizer: m0)
        }
        let chunk = options.int("chunk_size")
        let (out, final) = matrixLSTM(q: q, k: x["k"]!, v: x["v"]!, inputGates: x["i"]!, forgetGates: x["f"]!, initialState: state,
                                      eps: T(options.double("eps")), chunkSize: chunk)
        return ["h": out, "C": final.memory.slice(axis: 3, 0..<e), "n": final.memory.slice(axis: 3, e..<(e + 1)).reshaped([b, h, e]),
                "m": final.stabilizer]
    }
}

/// Op-level checks of the mLSTM: Float64 finite differences of the chunked form (through the stabiliser and
/// normaliser nodes and the GLA kernel) and chunked == recurrent (outputs, final state, every input gradient), at
/// lengths crossing chunk and sub-chunk edges, one token, with and without an entering state, weak and strong gates.
public enum MatrixLSTMChecks {
    /// The mLSTM on leaves (q, k, v, i, f[, C0, n0, m0]) with the gates multiplied by `gateScale` and the forget
    /// pre-activations shifted by `forgetShift`: [h, memory, m].
    static func mlstm(_ x: [Tensor<Double>], fast: Bool, gateScale: Double = 1, forgetShift: Double = 0, chunk: Int = 4) -> [Tensor<Double>] {
        let (i, f) = (x[3] * gateScale, x[4] * gateScale + forgetShift)
        let state = x.count > 5
            ? MatrixLSTMState(memory: Tensor.concatenate([x[5], x[6].reshaped(x[6].shape + [1])], axis: 3), stabilizer: x[7]) : nil
        let (h, final) = fast
            ? matrixLSTM(q: x[0], k: x[1], v: x[2], inputGates: i, forgetGates: f, initialState: state, chunkSize: chunk)
            : matrixLSTMRecurrent(q: x[0], k: x[1], v: x[2], inputGates: i, forgetGates: f, initialState: state)
        return [h, final.memory, final.stabilizer]
    }

    /// Shapes (q, k, v, i, f[, C0, n0, m0]) for B, L, H, E.
    static func shapes(_ b: Int, _ l: Int, _ h: Int, _ e: Int, initialState: Bool = true) -> [[Int]] {
        [[b, l, h, e], [b, l, h, e], [b, l, h, e], [b, l, h], [b, l, h]] + (initialState ? [[b, h, e, e], [b, h, e], [b, h]] : [])
    }

    static func gradientCheck(_ name: String, shapes: [[Int]], gateScale: Double = 1, forgetShift: Double = 0, chunk: Int = 4) -> OpCheck {
        OpCheck(name) { quick in
            var rng = RandomGenerator(seed: 2025)
            let leaves = shapes.enumerated().map { ("x\($0.offset)", Tensor<Double>.randn($0.element, using: &rng)) }
            return GradientCheck.check(name, leaves: leaves, maxProbes: quick ? 12 : 48) {
                mlstm(leaves.map(\.1), fast: true, gateScale: gateScale, forgetShift: forgetShift, chunk: chunk)
            }
        }
    }

    static func formCheck(_ name: String, shapes: [[Int]], gateScale: Double = 1, forgetShift: Double = 0, chunk: Int) -> OpCheck {
        OpCheck(name) { _ in
            OpCheck.compareForms(name, shapes: shapes, floor: 1e-4) { x, fast in
                mlstm(x, fast: fast, gateScale: gateScale, forgetShift: forgetShift, chunk: chunk)
            }
        }
    }

    /// The block-diagonal projection written densely: x [.., nb ni] against the [nb no, nb ni] matrix with W's blocks
    /// on its diagonal.
    static func headwiseDense(_ x: Tensor<Double>, _ w: Tensor<Double>) -> Tensor<Double> {
        let (nb, no, ni) = (w.shape[0], w.shape[1], w.shape[2])
        var mask = [Double](repeating: 0, count: nb * no * nb * ni)
        for h in 0..<nb { for o in 0..<no { for d in 0..<ni { mask[(h * no + o) * nb * ni + h * ni + d] = 1 } } }
        let blocks = w.reshaped([nb, no, 1, ni]).broadcast(to: [nb, no, nb, ni]).reshaped([nb * no, nb * ni])
        return x.matmul(blocks * Tensor(shape: [nb * no, nb * ni], data: mask), transposeOther: true)
    }

    /// The checks `seqlab check --op mlstm` runs (and the block-diagonal projection's, `headwise_linear`).
    public static let all: [OpCheck] = [
        OpCheck("headwise_linear") { quick in
            var rng = RandomGenerator(seed: 611)
            let (x, w) = (Tensor<Double>.randn([2, 3, 12], using: &rng), Tensor<Double>.randn([3, 4, 4], using: &rng))
            let (x2, w2) = (Tensor<Double>.randn([5, 6], using: &rng), Tensor<Double>.randn([2, 5, 3], using: &rng))
            return GradientCheck.check("headwise_linear", leaves: [("x", x), ("w", w), ("x2", x2), ("w2", w2)], maxProbes: quick ? 12 : 40) {
                [headwiseProduct(x, weight: w), headwiseProduct(x2, weight: w2)]
            }
        },
        OpCheck.formCheck("headwise_linear==dense", shapes: [[3, 41, 64], [16, 4, 4]]) { x, fast in
            fast ? headwiseProduct(x[0], weight: x[1]) : headwiseDense(x[0], x[1])
        },
        OpCheck.formCheck("headwise_linear==dense_rectangular_blocks", shapes: [[2, 9, 12], [4, 2, 3]]) { x, fast in
            fast ? headwiseProduct(x[0], weight: x[1]) : headwiseDense(x[0], x[1])
        },
        gradientCheck("mlstm_chunked", shapes: shapes(2, 11, 2, 3)),
        gradientCheck("mlstm_chunked_strong_gates", shapes: shapes(1, 9, 2, 3), gateScale: 6),
        gradientCheck("mlstm_chunked_one_token", shapes: shapes(2, 1, 1, 3)),
        gradientCheck("mlstm_chunked_no_initial_state", shapes: shapes(1, 7, 1, 4, initialState: false), forgetShift: 3, chunk: 64),
        formCheck("mlstm==recurrent", shapes: shapes(2, 37, 2, 5), chunk: 8),
        formCheck("mlstm==recurrent_no_initial_state", shapes: shapes(1, 70, 2, 4, initialState: false), forgetShift: 4, chunk: 64),
        formCheck("mlstm==recurrent_strong_gates", shapes: shapes(1, 41, 1, 6, initialState: false), gateScale: 8, chunk: 16),
    ]
}
