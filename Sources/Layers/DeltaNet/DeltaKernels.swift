import Tensors

/// `delta_rule` (KERNELS.md): q, k [B, L, H, K], v [B, L, H, V], beta [B, L, H], g [B, L, H] (optional log-decay
/// <= 0), h0 [B, H, K, V] (optional) -> o [B, L, H, V], hT [B, H, K, V]; options scale (default K^-1/2), chunk_size
/// (default 64: sub-steps per chunk of the chunked form; tokens between the recurrent form's state checkpoints), form
/// (chunked, the default, or recurrent).
///     S_t = e^{g_t} S_{t-1};  S_t += k_t (beta_t (v_t - S_t^T k_t))^T;  o_t = S_t^T (s q_t).
public enum DeltaRuleKernel: FunctionalKernel {
    public static let name = "delta_rule"
    public static let inputs = [KernelInput("q"), KernelInput("k"), KernelInput("v"), KernelInput("beta"),
                                KernelInput("g", optional: true), KernelInput("h0", optional: true)]
    public static let outputs = ["o", "hT"]
    public static let options: [LayerOptionSpec] = [
        .numberOrAuto("scale", derived: "K^-1/2", "query scale s in o_t = S_t^T (s q_t)"),
        .int("chunk_size", 64, "chunked form: sub-steps per chunk; recurrent form: tokens between state checkpoints",
             min: 1, max: LayerLimits.maximumChunk),
        .choice("form", DeltaForm.chunked.rawValue, DeltaForm.allCases.map(\.rawValue),
                "chunked (WY / UT form) or recurrent (fused token recurrence)"),
    ]

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func evaluate<T: TensorScalar>(_ x: [String: Tensor<T>], options: OptionValues) throws -> [String: Tensor<T>] {
        let q = x["q"]!, k = x["k"]!, v = x["v"]!, beta = x["beta"]!
        try requireRank(q, 4, "q", layout: "[B, L, H, K]", op: name)
        try requireShape(k, q.shape, "k", op: name)
        try requireRank(v, 4, "v", layout: "[B, L, H, V]", op: name)
        try requireShape(v, Array(q.shape.prefix(3)) + [v.shape[3]], "v", op: name)
        try requireShape(beta, Array(q.shape.prefix(3)), "beta", op: name)
        if let g = x["g"] { try requireShape(g, Array(q.shape.prefix(3)), "g", op: name) }
        if let h0 = x["h0"] { try requireShape(h0, [q.shape[0], q.shape[2], q.shape[3], v.shape[3]], "h0", op: name) }
        try DeltaProductKernelOp.requireLogDecay(x["g"], op: name)
        let (chunk, scale, form) = try DeltaProductKernelOp.commonOptions(options)
        let (o, hT) = deltaRule(q: q, k: k, v: v, beta: beta, logDecay: x["g"], initialState: x["h0"],
                                scale: scale.map { T($0) }, form: form, chunkSize: chunk)
        return ["o": o, "hT": hT]
    }
}

/// `delta_product` (KERNELS.md): q [B, L, H, K], k [B, L, NH, H, K], v [B, L, NH, H, V], beta [B, L, NH, H],
/// g [B, L, H] (optional), h0 [B, H, K, V] (optional) -> o [B, L, H, V], hT; per token the gate once, then NH delta
/// steps, then o_t is read (Siems et al. 2025, "DeltaProduct").
public enum DeltaProductKernelOp: FunctionalKernel {
    public static let name = "delta_product"
    public static let inputs = DeltaRuleKernel.inputs
    public static let outputs = ["o", "hT"]
    public static let options = DeltaRuleKernel.options

    static func requireLogDecay<T: TensorScalar>(_ g: Tensor<T>?, op: String) throws {
        guard let g else { return }
        guard g.data.allSatisfy({ $0 <= 0 && $0.isFinite }) else { throw SequenceLabError("op \(op): g holds log-decays and must be <= 0 everywhere (and finite)") }
    }

    static func commonOptions(_ options: OptionValues) -> (Int, Double?, DeltaForm) {
        (options.int("chunk_size"), options.optionalDouble("scale"), DeltaForm(rawValue: options.string("form"))!)
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func evaluate<T: TensorScalar>(_ x: [String: Tensor<T>], options: OptionValues) throws -> [String: Tensor<T>] {
        let q = x["q"]!, k = x["k"]!, v = x["v"]!, beta = x["beta"]!
        try requireRank(q, 4, "q", layout: "[B, L, H, K]", op: name)
        try requireRank(k, 5, "k", layout: "[B, L, NH, H, K]", op: name)
        let (B, L, H, K, NH) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3], k.shape[2])
        try requireShape(k, [B, L, NH, H, K], "k", op: name)
        try requireRank(v, 5, "v", layout: "[B, L, NH, H, V]", op: name)
        try requireShape(v, [B, L, NH, H, v.shape[4]], "v", op: name)
        try requireShape(beta, [B, L, NH, H], "beta", op: name)
        guard NH >= 1 else { throw SequenceLabError("op \(name): NH (k axis 2) must be >= 1") }
        if let g = x["g"] { try requireShape(g, [B, L, H], "g", op: name) }
        if let h0 = x["h0"] { try requireShape(h0, [B, H, K, v.shape[4]], "h0", op: name) }
        try requireLogDecay(x["g"], op: name)
        let (chunk, scale, form) = try commonOptions(options)
        let (o, hT) = deltaProduct(q: q, k: k, v: v, beta: beta, logDecay: x["g"], initialState: x["h0"],
                                   scale: scale.map { T($0) }, form: form, chunkSize: chunk)
        return ["o": o, "hT": hT]
    }
}

/// Op-level checks of the delta-rule kernels: Float64 finite differences of both fused nodes (chunked, recurrent),
/// chunked == recurrent and recurrent == the tape-op reference (outputs, final state, all gradients), DeltaProduct ==
/// the delta rule on the interleaved sequence.
public enum DeltaRuleChecks {
    /// The forms `run` evaluates.
    enum Form { case chunked, recurrentFused, reference, interleaved }

    /// Leaves (q, k, v, beta logits, g logits, h0) -> [o, hT] with beta = betaMax sigmoid(.), g = logsigmoid(.) /
    /// normalizer, keys L2-normalised. `chunk`: sub-steps per chunk (chunked) or tokens per checkpoint (recurrent).
    static func run(_ x: [Tensor<Double>], form: Form, betaMax: Double = 2, gated: Bool = true, chunk: Int = 4,
                    normalizer: Double = 1) -> [Tensor<Double>] {
        let k = x[1] * (x[1].square().sum(axis: 4, keepDims: true) + 1e-6).rsqrt()
        let beta = x[3].sigmoid() * betaMax
        let g = gated ? x[4].logSigmoid() / normalizer : nil
        let h0 = x.count > 5 ? x[5] : nil
        let r: (output: Tensor<Double>, finalState: Tensor<Double>)
        switch form {
        case .chunked: r = deltaProductChunked(q: x[0], k: k, v: x[2], beta: beta, logDecay: g, initialState: h0, chunkSize: chunk)
        case .recurrentFused: r = deltaProductRecurrentFused(q: x[0], k: k, v: x[2], beta: beta, logDecay: g, initialState: h0, segment: chunk)
        case .reference: r = deltaProductRecurrent(q: x[0], k: k, v: x[2], beta: beta, logDecay: g, initialState: h0)
        case .interleaved: r = deltaProductInterleaved(q: x[0], k: k, v: x[2], beta: beta, logDecay: g, initialState: h0)
        }
        return [r.output, r.finalState]
    }

    /// Shapes (q, k, v, beta logits, g logits, h0) for B, L, NH, H, K, V.
    static func shapes(_ b: Int, _ l: Int, _ nh: Int, _ h: Int, _ k: Int, _ v: Int) -> [[Int]] {
        [[b, l, h, k], [b, l, nh, h, k], [b, l, nh, h, v], [b, l, nh, h], [b, l, h], [b, h, k, v]]
    }

    static func gradientCheck(_ name: String, form: Form, shapes: [[Int]], betaMax: Double, gated: Bool, chunk: Int,
                              normalizer: Double = 1) -> OpCheck {
        OpCheck(name) { quick in
            var rng = RandomGenerator(seed: 606)
            let leaves = shapes.enumerated().map { ("x\($0.offset)", Tensor<Double>.randn($0.element, using: &rng)) }
            return GradientCheck.check(name, leaves: leaves, maxProbes: quick ? 12 : 48) {
                run(leaves.map(\.1), form: form, betaMax: betaMax, gated: gated, chunk: chunk, normalizer: normalizer)
            }
        }
    }

    /// Chunked == recurrent fused node (outputs, final state, all six input gradients) in Float64.
    static func chunkedCheck(_ name: String, shapes: [[Int]], betaMax: Double, gated: Bool, chunk: Int = 64,
                             normalizer: Double = 1, seed: UInt64 = 77) -> OpCheck {
        OpCheck.formCheck(name, shapes: shapes, tolerance: 1e-9, seed: seed) { x, fast in
            run(x, form: fast ? .chunked : .recurrentFused, betaMax: betaMax, gated: gated, chunk: chunk, normalizer: normalizer)
        }
    }

    /// The checks `seqlab check --op delta_rule` / `delta_product` run (appended to `CheckCatalog.opChecks`).
    public static let all: [OpCheck] = [
        gradientCheck("delta_rule_chunked", form: .chunked, shapes: shapes(2, 9, 1, 2, 3, 4), betaMax: 1, gated: true, chunk: 4),
        gradientCheck("delta_product_chunked", form: .chunked, shapes: shapes(1, 7, 2, 2, 3, 2), betaMax: 2, gated: true, chunk: 4),
        gradientCheck("delta_product_chunked_ungated", form: .chunked, shapes: shapes(1, 5, 3, 1, 4, 3), betaMax: 2, gated: false, chunk: 6),
        gradientCheck("delta_product_chunked_strong_gates", form: .chunked, shapes: shapes(1, 6, 2, 1, 3, 3), betaMax: 2, gated: true,
                      chunk: 64, normalizer: 0.1),
        gradientCheck("delta_product_chunked_one_token", form: .chunked, shapes: shapes(2, 1, 2, 1, 3, 2), betaMax: 2, gated: true, chunk: 4),
        gradientCheck("delta_rule_fused", form: .recurrentFused, shapes: shapes(2, 9, 1, 2, 3, 4), betaMax: 1, gated: true, chunk: 4),
        gradientCheck("delta_product_fused", form: .recurrentFused, shapes: shapes(1, 7, 2, 2, 3, 2), betaMax: 2, gated: true, chunk: 3),
        gradientCheck("delta_product_fused_ungated", form: .recurrentFused, shapes: shapes(1, 5, 3, 1, 4, 3), betaMax: 2, gated: false, chunk: 64),
        gradientCheck("delta_product_fused_one_token", form: .recurrentFused, shapes: shapes(2, 1, 2, 1, 3, 2), betaMax: 2, gated: true, chunk: 4),
        OpCheck("silu_l2_normalize") { quick in
            var rng = RandomGenerator(seed: 607)
            let x = Tensor<Double>.randn([3, 2, 5], using: &rng)
            return GradientCheck.check("silu_l2_normalize", leaves: [("x", x)], maxProbes: quick ? 12 : 30) { [x.siluL2Normalized()] }
        },
        OpCheck("silu_l2_normalize==composite") { _ in
            OpCheck.compareForms("silu_l2_normalize==composite", shapes: [[2, 7, 3, 6]], floor: 1e-4) { x, fast in
                let y = x[0].silu()
                return [fast ? x[0].siluL2Normalized() : y * (y.square().sum(axis: 3, keepDims: true) + 1e-6).rsqrt()]
            }
        },
        OpCheck("l2_normalize") { quick in
            var rng = RandomGenerator(seed: 608)
            let x = Tensor<Double>.randn([3, 2, 5], using: &rng)
            return GradientCheck.check("l2_normalize", leaves: [("x", x)], maxProbes: quick ? 12 : 30) { [x.l2Normalized()] }
        },
        OpCheck.formCheck("l2_normalize==composite", shapes: [[2, 7, 3, 6]]) { x, fast in
            fast ? x[0].l2Normalized() : x[0] * (x[0].square().sum(axis: 3, keepDims: true) + 1e-6).rsqrt()
        },
        OpCheck("short_conv_silu") { quick in
            var rng = RandomGenerator(seed: 609)
            let x = Tensor<Double>.randn([2, 6, 5], using: &rng), w = Tensor<Double>.randn([5, 4], using: &rng)
            return GradientCheck.check("short_conv_silu", leaves: [("x", x), ("w", w)], maxProbes: quick ? 12 : 40) {
                [shortConvolutionSiLU(x, weight: w)]
            }
        },
        OpCheck.formCheck("short_conv_silu==conv_then_silu", shapes: [[3, 37, 19], [19, 4]]) { x, fast in
            fast ? shortConvolutionSiLU(x[0], weight: x[1]) : x[0].causalDepthwiseConv1d(weight: x[1]).silu()
        },
        OpCheck.formCheck("short_conv_silu==conv_then_silu_row_blocks", shapes: [[2, 301, 64], [64, 4]]) { x, fast in
            fast ? shortConvolutionSiLU(x[0], weight: x[1]) : x[0].causalDepthwiseConv1d(weight: x[1]).silu()
        },
        OpCheck.formCheck("short_conv_silu==conv_then_silu_short", shapes: [[2, 2, 3], [3, 4]]) { x, fast in
            fast ? shortConvolutionSiLU(x[0], weight: x[1]) : x[0].causalDepthwiseConv1d(weight: x[1]).silu()
        },
        // Row ranges that start and end inside a sequence (rows 1055 in 4 ranges of 264; sequences of 211), and
        // ranges holding many sequences shorter than the kernel (903 rows in 3 ranges of 301; sequences of 3, k 5).
        OpCheck.formCheck("short_conv_silu==conv_then_silu_ranges_mid_sequence", shapes: [[5, 211, 64], [64, 4]]) { x, fast in
            fast ? shortConvolutionSiLU(x[0], weight: x[1]) : x[0].causalDepthwiseConv1d(weight: x[1]).silu()
        },
        OpCheck.formCheck("short_conv_silu==conv_then_silu_short_sequences", shapes: [[301, 3, 64], [64, 5]]) { x, fast in
            fast ? shortConvolutionSiLU(x[0], weight: x[1]) : x[0].causalDepthwiseConv1d(weight: x[1]).silu()
        },
        OpCheck("gated_rms_norm") { quick in
            var rng = RandomGenerator(seed: 610)
            let o = Tensor<Double>.randn([2, 3, 5], using: &rng), z = Tensor<Double>.randn([2, 15], using: &rng)
            let w = Tensor<Double>.randn([5], using: &rng)
            return GradientCheck.check("gated_rms_norm", leaves: [("o", o), ("z", z), ("w", w)], maxProbes: quick ? 12 : 40) {
                [gatedRMSNorm(o, gate: z, weight: w)]
            }
        },
        OpCheck.formCheck("gated_rms_norm==composite", shapes: [[2, 300, 4, 8], [2, 300, 32], [8]]) { x, fast in
            fast ? gatedRMSNorm(x[0], gate: x[1], weight: x[2]) : x[0].rmsNorm(gamma: x[2]) * x[1].reshaped(x[0].shape).silu()
        },
        OpCheck.formCheck("rms_norm_rows==rms_norm", shapes: [[3, 41, 2, 7], [7]]) { x, fast in
            fast ? gatedRMSNorm(x[0], gate: nil, weight: x[1]) : x[0].rmsNorm(gamma: x[1])
        },
        chunkedCheck("delta_rule_chunked==recurrent", shapes: shapes(2, 75, 1, 2, 5, 3), betaMax: 1, gated: true),
        chunkedCheck("delta_product_chunked==recurrent", shapes: shapes(1, 75, 2, 2, 4, 6), betaMax: 2, gated: true),
        chunkedCheck("delta_product_chunked==recurrent_ungated", shapes: shapes(2, 23, 3, 1, 5, 3), betaMax: 2, gated: false, chunk: 8),
        chunkedCheck("delta_product_chunked==recurrent_strong_gates", shapes: shapes(1, 70, 2, 1, 6, 7), betaMax: 2, gated: true,
                     normalizer: 0.05),
        OpCheck("delta_product==recurrent") { _ in
            OpCheck.compareForms("delta_product==recurrent", shapes: shapes(2, 23, 2, 2, 5, 3), floor: 1e-4) { x, fast in
                run(x, form: fast ? .recurrentFused : .reference, chunk: 8)
            }
        },
        OpCheck("delta_product==interleaved_delta_rule") { _ in
            OpCheck.compareForms("delta_product==interleaved_delta_rule", shapes: shapes(1, 11, 3, 2, 4, 3), floor: 1e-4) { x, fast in
                run(x, form: fast ? .chunked : .interleaved, chunk: 6)
            }
        },
    ]
}
