import Tensors

// Building blocks shared by the chunked linear-attention kernels (GLA, and the chunked delta rule / DeltaProduct of
// DeltaNet/DeltaChunked.swift, whose state pass is the same GEMM with V_n = the chunk's corrected values U - W S_n),
// after flash-linear-attention's `chunk_h` / `chunk_bwd_dh` split:
//   - `ChunkGrid`: a length-L sequence cut into chunks of C (the last one shorter), each into sub-chunks of c;
//   - `LinearAttentionGeometry`: the [B, L, H, K] / [B, L, H, V] / [B, H, K, V] strides of the fla signature;
//   - `ChunkState.decayAndAccumulate`: the one GEMM of the inter-chunk state pass (per-key decays for GLA, one
//     scalar decay per head for the gated delta rule), in both directions:
//         forward   S_{n+1} = diag(gamma_n) S_n + Kd_n^T V_n       (Kd = keys decayed to the chunk end)
//         backward  dS_n    = diag(gamma_n) dS_{n+1} + Qd_n^T dO_n  (Qd = queries decayed from the chunk start)
//   - `chunkCumulativeSum`: G = inclusive cumsum of log-gates within a chunk;
//   - `reverseCumulativeSum`: the gate-gradient sweep dg_t = sum_{s >= t} dG_s.

/// A sequence of `length` tokens cut into chunks of `chunkSize` (the last may be shorter), each cut into
/// sub-chunks of `subChunkSize` for the numerically safe intra-chunk products.
public struct ChunkGrid: Sendable {
    public let length: Int
    public let chunkSize: Int
    public let subChunkSize: Int

    /// A grid over `length` tokens; the chunk size is capped at the length (one chunk either way: the same
    /// arithmetic, but chunk-sized workspaces stay sequence-sized, so a chunk_size of 2^20 on 64 tokens does not ask
    /// for a 2^40-entry score buffer), the sub-chunk size at the chunk size.
    public init(length: Int, chunkSize: Int, subChunkSize: Int) {
        precondition(chunkSize >= 1 && subChunkSize >= 1, "ChunkGrid: chunk sizes must be positive (got \(chunkSize), \(subChunkSize))")
        self.length = length
        self.chunkSize = min(chunkSize, max(1, length))
        self.subChunkSize = min(subChunkSize, self.chunkSize)
    }

    /// The number of chunks, ceil(L / C).
    public var count: Int { (length + chunkSize - 1) / chunkSize }

    /// Token range of chunk n.
    @inline(__always) public func chunk(_ n: Int) -> Range<Int> { (n * chunkSize)..<min(length, (n + 1) * chunkSize) }

    /// Local row ranges of the sub-chunks of a chunk of `rows` tokens.
    @inline(__always) public func subChunks(rows: Int) -> StrideTo<Int> { stride(from: 0, to: rows, by: subChunkSize) }
}

/// Strides of the fla kernel signature: q, k, g [B, L, H, K], v, o [B, L, H, V], states [B, H, K, V].
/// Row t of head h is a strided row (leading dimension H K or H V), which BLAS reads directly.
public struct LinearAttentionGeometry: Sendable {
    public let batch, length, heads, keyDim, valueDim: Int

    /// The geometry of q, k, g [B, L, H, K], v [B, L, H, V] and states [B, H, K, V].
    public init(batch: Int, length: Int, heads: Int, keyDim: Int, valueDim: Int) {
        (self.batch, self.length, self.heads, self.keyDim, self.valueDim) = (batch, length, heads, keyDim, valueDim)
    }

    /// Leading dimensions of key-like ([B, L, H, K]) and value-like ([B, L, H, V]) rows.
    public var keyStride: Int { heads * keyDim }
    public var valueStride: Int { heads * valueDim }
    /// The number of independent (batch member, head) items.
    public var items: Int { batch * heads }
    /// Offset of row 0 of item (b, h) in a key-like tensor.
    @inline(__always) public func keyOffset(_ item: Int) -> Int { (item / heads) * length * keyStride + (item % heads) * keyDim }
    /// Offset of row 0 of item (b, h) in a value-like tensor.
    @inline(__always) public func valueOffset(_ item: Int) -> Int { (item / heads) * length * valueStride + (item % heads) * valueDim }
    /// Offset of item (b, h)'s state in a [B, H, K, V] tensor.
    @inline(__always) public func stateOffset(_ item: Int) -> Int { item * keyDim * valueDim }
}

/// The end of a gated linear-attention kernel (GLA's per-key gates, the scalar-gate kernel): o [B, L, H, V] and
/// hT [B, H, K, V] from their buffers, recorded as one tape node over [q, k, v, g] (+ h0). `backward(dO, dhT)` gives
/// [dq, dk, dv, dg, dh0]; the node returns the gradients of the inputs it was given (no dh0 without an h0).
func recordGatedLinearAttention<T: TensorScalar>(
    _ name: String, geo: LinearAttentionGeometry, q: Tensor<T>, k: Tensor<T>, v: Tensor<T>, g: Tensor<T>, h0: Tensor<T>?,
    output: [T], finalState: [T], backward: @escaping (_ dO: [T]?, _ dhT: [T]?) -> [[T]?]
) -> (output: Tensor<T>, finalState: Tensor<T>) {
    let o = Tensor(shape: [geo.batch, geo.length, geo.heads, geo.valueDim], data: output)
    let hT = Tensor(shape: [geo.batch, geo.heads, geo.keyDim, geo.valueDim], data: finalState)
    let inputs = [q, k, v, g] + (h0.map { [$0] } ?? [])
    Tape.record(name, inputs: inputs, outputs: [o, hT]) { grads in Array(backward(grads[0], grads[1]).prefix(inputs.count)) }
    return (o, hT)
}

/// The inter-chunk state pass of chunked linear attention.
public enum ChunkState {
    /// S <- diag(gamma) S + A^T B over one chunk: S [K, V] (row-major, leading dimension V), gamma [K],
    /// A [rows, K] (leading dimension lda), B [rows, V] (leading dimension ldb). One GEMM after the row scaling.
    /// Forward it advances the state with decayed keys and values; backward it carries the state gradient with
    /// decayed queries and output gradients.
    @inline(__always)
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func decayAndAccumulate<T: TensorScalar>(
        _ S: UnsafeMutablePointer<T>, keyDim: Int, valueDim: Int, gamma: UnsafePointer<T>,
        a: UnsafePointer<T>, lda: Int, b: UnsafePointer<T>, ldb: Int, rows: Int
    ) {
        for d in 0..<keyDim {
            let row = S + d * valueDim, decay = gamma[d]
            for j in 0..<valueDim { row[j] *= decay }
        }
        if rows > 0 {
            T.gemm(transA: true, transB: false, m: keyDim, n: valueDim, k: rows, alpha: 1,
                   a: a, lda: lda, b: b, ldb: ldb, beta: 1, c: S, ldc: valueDim)
        }
    }

    /// S <- diag(gamma) S + A^T B for a scalar decay gamma (one decay per head, as in the gated delta rule): the same
    /// pass as `decayAndAccumulate` with gamma broadcast over the K rows.
    @inline(__always)
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func decayAndAccumulate<T: TensorScalar>(
        _ S: UnsafeMutablePointer<T>, keyDim: Int, valueDim: Int, scalarDecay gamma: T,
        a: UnsafePointer<T>, lda: Int, b: UnsafePointer<T>, ldb: Int, rows: Int
    ) {
        if gamma != 1 { for i in 0..<(keyDim * valueDim) { S[i] *= gamma } }
        accumulate(S, keyDim: keyDim, valueDim: valueDim, a: a, lda: lda, b: b, ldb: ldb, rows: rows)
    }

    /// S <- S + A^T B (no decay): a second rank-`rows` term of the same pass, e.g. the gated delta rule's state
    /// gradient, which collects both the queries' and the keys' contributions.
    @inline(__always)
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func accumulate<T: TensorScalar>(
        _ S: UnsafeMutablePointer<T>, keyDim: Int, valueDim: Int, a: UnsafePointer<T>, lda: Int, b: UnsafePointer<T>, ldb: Int, rows: Int
    ) {
        guard rows > 0 else { return }
        T.gemm(transA: true, transB: false, m: keyDim, n: valueDim, k: rows, alpha: 1,
               a: a, lda: lda, b: b, ldb: ldb, beta: 1, c: S, ldc: valueDim)
    }
}

/// G[i, d] = sum_{i' <= i} g[i', d] for the `rows` rows of one chunk: g strided by `ld`, G contiguous [rows, width].
@inline(__always)
@_specialize(where T == Float)
@_specialize(where T == Double)
public func chunkCumulativeSum<T: TensorScalar>(_ g: UnsafePointer<T>, ld: Int, rows: Int, width: Int, into G: UnsafeMutablePointer<T>) {
    for d in 0..<width { G[d] = g[d] }
    for i in 1..<max(rows, 1) {
        let src = g + i * ld, prev = G + (i - 1) * width, dst = G + i * width
        for d in 0..<width { dst[d] = prev[d] + src[d] }
    }
}

/// In place over `rows` rows strided by `ld`: x_t <- sum_{s >= t} x_s (each of `width` columns), plus `tail` [width]
/// added to every row (the gradient reaching the final cumulative gate from the final state).
@inline(__always)
@_specialize(where T == Float)
@_specialize(where T == Double)
public func reverseCumulativeSum<T: TensorScalar>(_ x: UnsafeMutablePointer<T>, ld: Int, rows: Int, width: Int, tail: UnsafePointer<T>?) {
    guard rows > 0 else { return }
    let last = x + (rows - 1) * ld
    if let tail { for d in 0..<width { last[d] += tail[d] } }
    for t in stride(from: rows - 2, through: 0, by: -1) {
        let row = x + t * ld, next = row + ld
        for d in 0..<width { row[d] += next[d] }
    }
}

extension Tensor {
    /// The slices along axis 1 with that axis dropped: [B, L, R...] -> L tensors [B, R...]; one tape node whose
    /// backward scatters every slice gradient at once (recurrent reference forms walk tokens with it).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func timeSteps() -> [Tensor<T>] {
        precondition(rank >= 2, "timeSteps: needs [B, L, ...], got \(shape)")
        let (batch, length) = (shape[0], shape[1])
        let inner = shape.dropFirst(2).reduce(1, *)
        let pieceShape = [batch] + Array(shape.dropFirst(2))
        let x = data
        let pieces = (0..<length).map { t -> Tensor<T> in
            var d = [T](repeating: 0, count: batch * inner)
            for b in 0..<batch { for i in 0..<inner { d[b * inner + i] = x[(b * length + t) * inner + i] } }
            return Tensor(shape: pieceShape, data: d)
        }
        let fullCount = count
        Tape.record("time_steps", inputs: [self], outputs: pieces) { grads in
            var dx = [T](repeating: 0, count: fullCount)
            for (t, g) in grads.enumerated() {
                guard let g else { continue }
                for b in 0..<batch { for i in 0..<inner { dx[(b * length + t) * inner + i] = g[b * inner + i] } }
            }
            return [dx]
        }
        return pieces
    }
}
