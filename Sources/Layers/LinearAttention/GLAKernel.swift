import Tensors

/// `gla` (KERNELS.md): q, k [B, L, H, K], v [B, L, H, V], g [B, L, H, K] (log-gates <= 0; or [B, L, H], one gate per
/// head: the scalar-gate kernel of RetNet, Mamba-2 and the mLSTM), h0 [B, H, K, V] (optional) -> o [B, L, H, V],
/// hT [B, H, K, V]; options scale (default K^-1/2), chunk_size (default 64).
public enum GLAKernel: FunctionalKernel {
    public static let name = "gla"
    public static let inputs = [KernelInput("q"), KernelInput("k"), KernelInput("v"), KernelInput("g"), KernelInput("h0", optional: true)]
    public static let outputs = ["o", "hT"]
    public static let options: [LayerOptionSpec] = [
        .numberOrAuto("scale", derived: "K^-1/2", "query scale s in o_t = s q_t S_t"),
        .int("chunk_size", 64, "tokens per chunk of the chunkwise parallel form", min: 1, max: LayerLimits.maximumChunk),
    ]

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func evaluate<T: TensorScalar>(_ x: [String: Tensor<T>], options: OptionValues) throws -> [String: Tensor<T>] {
        let q = x["q"]!, k = x["k"]!, v = x["v"]!, g = x["g"]!
        try requireRank(q, 4, "q", layout: "[B, L, H, K]", op: name)
        try requireShape(k, q.shape, "k", op: name)
        let perHead = g.rank == 3
        try requireShape(g, perHead ? Array(q.shape.prefix(3)) : q.shape, "g", op: name)
        try requireRank(v, 4, "v", layout: "[B, L, H, V]", op: name)
        try requireShape(v, Array(q.shape.prefix(3)) + [v.shape[3]], "v", op: name)
        if let h0 = x["h0"] { try requireShape(h0, [q.shape[0], q.shape[2], q.shape[3], v.shape[3]], "h0", op: name) }
        guard g.data.allSatisfy({ $0 <= 0 && $0.isFinite }) else { throw SequenceLabError("op \(name): g holds log-gates and must be <= 0 everywhere (and finite)") }
        let scale = options.optionalDouble("scale").map { T($0) }, chunk = options.int("chunk_size")
        let (o, hT) = perHead
            ? scalarGatedLinearAttention(q: q, k: k, v: v, logGates: g, initialState: x["h0"], scale: scale, chunkSize: chunk)
            : gatedLinearAttention(q: q, k: k, v: v, logGates: g, initialState: x["h0"], scale: scale, chunkSize: chunk)
        return ["o": o, "hT": hT]
    }
}
