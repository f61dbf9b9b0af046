import Tensors

/// `selective_scan` (KERNELS.md): u [B,L,D], delta [B,L,D], A [D,N], Bs [B,L,N], Cs [B,L,N], Dskip [D] (opt),
/// z [B,L,D] (opt), delta_bias [D] (opt) -> y [B,L,D], hT [B,D,N]. Options: delta_softplus (default "true") and,
/// beyond KERNELS.md, negative_eigenvalues (default "false": dA = exp(dt A); "true": 2 exp(dt A) - 1).
public enum SelectiveScanKernel: FunctionalKernel {
    public static let name = "selective_scan"
    public static let inputs = [
        KernelInput("u"), KernelInput("delta"), KernelInput("A"), KernelInput("Bs"), KernelInput("Cs"),
        KernelInput("Dskip", optional: true), KernelInput("z", optional: true), KernelInput("delta_bias", optional: true),
    ]
    public static let outputs = ["y", "hT"]
    public static let options: [LayerOptionSpec] = [
        .bool("delta_softplus", true, "dt = softplus(delta + delta_bias)"),
        .bool("negative_eigenvalues", false, "dA = 2 exp(dt A) - 1 instead of exp(dt A)"),
    ]

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func evaluate<T: TensorScalar>(_ x: [String: Tensor<T>], options: OptionValues) throws -> [String: Tensor<T>] {
        let u = x["u"]!, A = x["A"]!
        try requireRank(u, 3, "u", layout: "[B, L, D]", op: name)
        try requireRank(A, 2, "A", layout: "[D, N]", op: name)
        let (b, l, d, n) = (u.shape[0], u.shape[1], u.shape[2], A.shape[1])
        guard n > 0 else { throw SequenceLabError("op \(name): A has shape \(A.shape): the state size N must be at least 1") }
        try requireShape(A, [d, n], "A", op: name)
        try requireShape(x["delta"]!, [b, l, d], "delta", op: name)
        try requireShape(x["Bs"]!, [b, l, n], "Bs", op: name)
        try requireShape(x["Cs"]!, [b, l, n], "Cs", op: name)
        if let t = x["Dskip"] { try requireShape(t, [d], "Dskip", op: name) }
        if let t = x["z"] { try requireShape(t, [b, l, d], "z", op: name) }
        if let t = x["delta_bias"] { try requireShape(t, [d], "delta_bias", op: name) }
        let (y, hT) = selectiveScan(
            u: u, delta: x["delta"]!, A: A, B: x["Bs"]!, C: x["Cs"]!, D: x["Dskip"], z: x["z"], deltaBias: x["delta_bias"],
            deltaSoftplus: options.bool("delta_softplus"), negativeEigenvalues: options.bool("negative_eigenvalues"))
        return ["y": y, "hT": hT]
    }
}

/// Random inputs of a selective scan in its working domain: A < 0, moderate delta, optional D, z, delta_bias.
public struct SelectiveScanProblem: Sendable {
    public var batch = 2, length = 9, channels = 5, stateSize = 4
    public var withSkip = true, withGate = true, withBias = true
    public var deltaSoftplus = true, negativeEigenvalues = false
    /// Added to delta: large positive values make dt large (fast decay), negative ones make it small.
    public var deltaOffset = 0.0
    public var tiling = SelectiveScanTiling(channelBlock: 2, checkpointInterval: 4)

    public init() {}

    /// [u, delta, A, Bs, Cs] + the optional [Dskip, z, delta_bias] that are switched on, in Float64.
    public func inputs(seed: UInt64) -> [Tensor<Double>] {
        var rng = RandomGenerator(seed: seed)
        let (b, l, d, n) = (batch, length, channels, stateSize)
        var list = [Tensor<Double>.randn([b, l, d], using: &rng),
                    Tensor<Double>.randn([b, l, d], mean: deltaOffset - 1, std: 0.5, using: &rng),
                    Tensor<Double>.uniform([d, n], low: -2, high: -0.2, using: &rng),
                    Tensor<Double>.randn([b, l, n], using: &rng), Tensor<Double>.randn([b, l, n], using: &rng)]
        if withSkip { list.append(Tensor<Double>.randn([d], using: &rng)) }
        if withGate { list.append(Tensor<Double>.randn([b, l, d], using: &rng)) }
        if withBias { list.append(Tensor<Double>.randn([d], std: 0.5, using: &rng)) }
        if !deltaSoftplus { list[1] = Tensor(shape: list[1].shape, data: list[1].data.map { 0.05 + 0.3 * Swift.abs($0) }) }
        return list
    }

    /// The fused scan (or the reference) on `x` as produced by `inputs`; returns [y, hT].
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func run<T: TensorScalar>(_ x: [Tensor<T>], fused: Bool) -> [Tensor<T>] {
        var rest = Array(x[5...])
        let D = withSkip ? rest.removeFirst() : nil
        let z = withGate ? rest.removeFirst() : nil
        let bias = withBias ? rest.removeFirst() : nil
        let r = fused
            ? selectiveScan(u: x[0], delta: x[1], A: x[2], B: x[3], C: x[4], D: D, z: z, deltaBias: bias,
                            deltaSoftplus: deltaSoftplus, negativeEigenvalues: negativeEigenvalues, tiling: tiling)
            : referenceSelectiveScan(u: x[0], delta: x[1], A: x[2], B: x[3], C: x[4], D: D, z: z, deltaBias: bias,
                                     deltaSoftplus: deltaSoftplus, negativeEigenvalues: negativeEigenvalues)
        return [r.y, r.finalState]
    }

    /// Fused == reference: outputs and every input gradient under random cotangents of y and hT (worst relative error).
    public func compareForms(seed: UInt64 = 3) -> (error: Double, at: String) {
        let base = inputs(seed: seed)
        var rng = RandomGenerator(seed: seed &+ 1)
        var results: [[[Double]]] = [], cotangents: [[Double]] = []
        for fused in [true, false] {
            let x = base.map { $0.detached().requiringGrad() }
            let outputs = run(x, fused: fused)
            if cotangents.isEmpty { cotangents = outputs.map { Tensor<Double>.randn($0.shape, using: &rng).data } }
            var loss = (outputs[0] * Tensor(shape: outputs[0].shape, data: cotangents[0])).sum()
            loss = loss + (outputs[1] * Tensor(shape: outputs[1].shape, data: cotangents[1])).sum()
            loss.backward()
            results.append(outputs.map(\.data) + x.map { $0.grad ?? [Double](repeating: 0, count: $0.count) })
        }
        let names = ["y", "hT", "du", "ddelta", "dA", "dBs", "dCs"] + (withSkip ? ["dDskip"] : [])
            + (withGate ? ["dz"] : []) + (withBias ? ["ddelta_bias"] : [])
        var worst = 0.0, at = ""
        for (i, name) in names.enumerated() {
            let e = GradientCheck.relativeError(results[0][i], results[1][i])
            if e > worst || e.isNaN { (worst, at) = (e.isNaN ? .infinity : e, name) }
        }
        return (worst, at)
    }

    /// Float64 finite-difference check of the fused node with respect to every input.
    public func gradientCheck(_ name: String, quick: Bool) -> CheckResult {
        let x = inputs(seed: 11)
        let labels = ["u", "delta", "A", "Bs", "Cs"] + (withSkip ? ["Dskip"] : []) + (withGate ? ["z"] : [])
            + (withBias ? ["delta_bias"] : [])
        return GradientCheck.check(name, leaves: Array(zip(labels, x)), maxProbes: quick ? 12 : 48) { run(x, fused: true) }
    }
}
