import Tensors

// Token-blocked execution for GEMM-bound layers. On this machine a tall-skinny product such as
// [8192, 128] x [128, 512] runs at 60-70 GFLOP/s through one OpenBLAS call, while the same product cut into blocks of
// 256 tokens (operands resident in the 512 KB L2) runs at about 100 GFLOP/s per core. So the fused projection nodes
// below cut the tokens into blocks, give each core its own blocks (BLAS single-threaded inside), do the
// elementwise work of a block while it is in cache, and accumulate weight gradients per worker (summed at the end).

/// Static scheduling of row blocks over the cores.
public enum TokenBlocks {
    /// Rows (tokens) per block.
    public static let rows = 256

    /// The number of workers for `count` rows: one per core, at most one per block.
    public static func workers(count: Int, blockRows: Int = rows) -> Int {
        Swift.max(1, Swift.min(Parallel.threadCount, (count + blockRows - 1) / blockRows))
    }

    /// Runs `body(worker, rows)` over the blocks of 0..<count, worker w taking blocks w, w + W, w + 2W, ...
    /// (W = `workers(count:)`), the workers in parallel with single-threaded BLAS.
    public static func forEach(count: Int, blockRows: Int = rows, _ body: (_ worker: Int, _ rows: Range<Int>) -> Void) {
        let blocks = (count + blockRows - 1) / blockRows
        let w = workers(count: count, blockRows: blockRows)
        Parallel.forEach(w) { worker in
            var b = worker
            while b < blocks {
                body(worker, (b * blockRows)..<Swift.min(count, (b + 1) * blockRows))
                b += w
            }
        }
    }

    /// Runs `body(worker, item)` for the items 0..<count on min(cores, count) workers, worker w taking items
    /// w, w + W, ... (static: a worker can own accumulators).
    @discardableResult
    public static func forEachItem(count: Int, _ body: (_ worker: Int, _ item: Int) -> Void) -> Int {
        let w = Swift.max(1, Swift.min(Parallel.threadCount, count))
        Parallel.forEach(w) { worker in
            var i = worker
            while i < count {
                body(worker, i)
                i += w
            }
        }
        return w
    }

    /// The number of workers `forEachItem(count:)` uses.
    public static func itemWorkers(count: Int) -> Int { Swift.max(1, Swift.min(Parallel.threadCount, count)) }

    /// Per-worker accumulators of `count` scalars each, zeroed.
    public static func accumulators<T>(_ workers: Int, _ count: Int) -> [PooledBuffer<T>] {
        (0..<workers).map { _ in PooledBuffer<T>(count: count, zeroed: true) }
    }

    /// Per-worker scratch of `count` scalars each, not zeroed.
    public static func scratch<T>(_ workers: Int, _ count: Int) -> [PooledBuffer<T>] {
        (0..<workers).map { _ in PooledBuffer<T>(count: count) }
    }

    /// The sum of the workers' accumulators as an array.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func reduce<T: TensorScalar>(_ parts: [PooledBuffer<T>]) -> [T] {
        let n = parts[0].count
        var out = [T](repeating: 0, count: n)
        out.withUnsafeMutableBufferPointer { o in
            for part in parts { let p = part.pointer; for i in 0..<n { o[i] += p[i] } }
        }
        return out
    }
}

/// y_i = (x W^T + b)[..., columns of part i]: one affine map over the last axis whose output is cut into parts of
/// the given widths (RAT's in_proj -> z, v, g, q, k). x [..., Din], W [P, Din] (PyTorch's nn.Linear layout), b [P]
/// (optional), P = sum of widths.
/// One tape node, token-blocked: per block one GEMM into an L2-resident scratch, scattered into the parts.
/// Backward per block: dY gathered from the parts' gradients (zero where a part got none),
/// dX = dY W, dW += dY^T X, db += sum dY.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func tokenBlockedLinear<T: TensorScalar>(
    _ x: Tensor<T>, weight: Tensor<T>, bias: Tensor<T>? = nil, splits: [Int]? = nil
) -> [Tensor<T>] {
    precondition(x.rank >= 1 && weight.rank == 2 && weight.shape[1] == x.shape[x.rank - 1],
                 "tokenBlockedLinear: x \(x.shape) with weight \(weight.shape) (needs [..., Din] and [P, Din])")
    let (p, din) = (weight.shape[0], weight.shape[1])
    if let bias { precondition(bias.shape == [p], "tokenBlockedLinear: bias \(bias.shape) for \(p) outputs") }
    let widths = splits ?? [p]
    precondition(widths.reduce(0, +) == p && widths.allSatisfy { $0 > 0 }, "tokenBlockedLinear: splits \(widths) must add up to \(p)")
    let rows = din == 0 ? 0 : x.count / din
    let offsets = widths.indices.map { i in widths[..<i].reduce(0, +) }
    let lead = Array(x.shape.dropLast())
    let xData = x.data, wData = weight.data, bData = bias?.data
    var parts: [[T]] = widths.map { overwrittenArray(count: rows * $0) }
    let single = widths.count == 1

    xData.withUnsafeBufferPointer { xp in wData.withUnsafeBufferPointer { wp in
        withMutablePointers(&parts) { outs in
            let scratch: [PooledBuffer<T>] = TokenBlocks.scratch(TokenBlocks.workers(count: rows), single ? 1 : TokenBlocks.rows * p)
            TokenBlocks.forEach(count: rows) { worker, r in
                let n = r.count
                let c = single ? outs[0] + r.lowerBound * p : scratch[worker].pointer
                T.gemm(transA: false, transB: true, m: n, n: p, k: din, alpha: 1, a: xp.baseAddress! + r.lowerBound * din, lda: din,
                       b: wp.baseAddress!, ldb: din, beta: 0, c: c, ldc: p)  // [rows, P] = X W^T
                if let bData {
                    bData.withUnsafeBufferPointer { bp in
                        for i in 0..<n { let row = c + i * p; for j in 0..<p { row[j] += bp[j] } }
                    }
                }
                if !single {
                    for (part, (off, w)) in zip(outs, zip(offsets, widths)) {
                        for i in 0..<n { (part + (r.lowerBound + i) * w).update(from: c + i * p + off, count: w) }
                    }
                }
            }
        }
    } }

    let results = zip(parts, widths).map { Tensor(shape: lead + [$1], data: $0) }
    let inputs = [x, weight] + (bias.map { [$0] } ?? [])
    let (needX, needW, needB) = (x.requiresGrad, weight.requiresGrad, bias?.requiresGrad ?? false)
    Tape.record("token_blocked_linear", inputs: inputs, outputs: results) { grads in
        var dx: [T] = overwrittenArray(count: needX ? xData.count : 0)
        let workers = TokenBlocks.workers(count: rows)
        let dW: [PooledBuffer<T>] = TokenBlocks.accumulators(needW ? workers : 0, din * p)
        let dB: [PooledBuffer<T>] = TokenBlocks.accumulators(needB ? workers : 0, p)
        let scratch: [PooledBuffer<T>] = TokenBlocks.scratch(workers, TokenBlocks.rows * p)
        xData.withUnsafeBufferPointer { xp in wData.withUnsafeBufferPointer { wp in dx.withUnsafeMutableBufferPointer { dxp in
            TokenBlocks.forEach(count: rows) { worker, r in
                let n = r.count, g = scratch[worker].pointer  // dY of the block [rows, P]
                for (k, (off, w)) in zip(offsets, widths).enumerated() {
                    if let dy = grads[k] {
                        dy.withUnsafeBufferPointer { d in
                            for i in 0..<n { (g + i * p + off).update(from: d.baseAddress! + (r.lowerBound + i) * w, count: w) }
                        }
                    } else {
                        for i in 0..<n { (g + i * p + off).update(repeating: 0, count: w) }
                    }
                }
                if needX {  // dX = dY W  [rows, Din]
                    T.gemm(transA: false, transB: false, m: n, n: din, k: p, alpha: 1, a: g, lda: p, b: wp.baseAddress!, ldb: din,
                           beta: 0, c: dxp.baseAddress! + r.lowerBound * din, ldc: din)
                }
                if needW {  // dW += dY^T X  [P, Din]
                    T.gemm(transA: true, transB: false, m: p, n: din, k: n, alpha: 1, a: g, lda: p,
                           b: xp.baseAddress! + r.lowerBound * din, ldb: din, beta: 1, c: dW[worker].pointer, ldc: din)
                }
                if needB { let db = dB[worker].pointer; for i in 0..<n { let row = g + i * p; for j in 0..<p { db[j] += row[j] } } }
            }
        } } }
        return [needX ? dx : nil, needW ? TokenBlocks.reduce(dW) : nil] + (bias != nil ? [needB ? TokenBlocks.reduce(dB) : nil] : [])
    }
    return results
}

/// Runs `body` with a base pointer for each array (all mutable at once; each array is moved into its own box so
/// that the nested accesses do not overlap).
func withMutablePointers<T, R>(_ arrays: inout [[T]], _ body: ([UnsafeMutablePointer<T>]) -> R) -> R {
    let boxes = arrays.map { ArrayBox($0) }
    arrays = []
    defer { arrays = boxes.map { $0.array } }
    func recurse(_ i: Int, _ acc: [UnsafeMutablePointer<T>]) -> R {
        if i == boxes.count { return body(acc) }
        if boxes[i].array.isEmpty { return recurse(i + 1, acc + [UnsafeMutablePointer<T>(bitPattern: 64)!]) }
        return boxes[i].array.withUnsafeMutableBufferPointer { recurse(i + 1, acc + [$0.baseAddress!]) }
    }
    return recurse(0, [])
}

/// An array in a box of its own (so that several arrays can be accessed mutably at once).
final class ArrayBox<T> {
    var array: [T]
    init(_ array: [T]) { self.array = array }
}
