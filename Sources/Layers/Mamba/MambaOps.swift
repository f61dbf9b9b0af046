import Tensors

// A fused node of the Mamba block besides the scan (its short convolution + SiLU is Modules' `shortConvolutionSiLU`),
// specialised for Float and Double so that it runs at full speed when the block is called through `any SequenceLayer`
// (generic code would look up type metadata per element): splitting the last axis of a projection
// ([x, z] = in_proj(input), [dt, Bs, Cs] = x_proj(u)) into contiguous tensors, one node with several outputs.

/// Splits the last axis of x [..., S] into contiguous pieces [..., s_i] with sum s_i = S (one tape node).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func splitLastAxis<T: TensorScalar>(_ x: Tensor<T>, sizes: [Int]) -> [Tensor<T>] {
    let width = x.shape.last ?? 0
    precondition(x.rank >= 1 && sizes.allSatisfy { $0 >= 0 } && sizes.reduce(0, +) == width,
                 "splitLastAxis: sizes \(sizes) do not add up to the last axis of \(x.shape)")
    let rows = width == 0 ? 0 : x.count / width
    var offsets = [Int](), start = 0
    for s in sizes { offsets.append(start); start += s }
    let pieces: [[T]] = zip(sizes, offsets).map { size, offset in
        var out = [T](repeating: 0, count: rows * size)
        x.data.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for r in 0..<rows {
                    let (from, to) = (src.baseAddress! + r * width + offset, dst.baseAddress! + r * size)
                    for j in 0..<size { to[j] = from[j] }
                }
            }
        }
        return out
    }
    let lead = Array(x.shape.dropLast())
    let outputs = zip(sizes, pieces).map { Tensor(shape: lead + [$0], data: $1) }
    Tape.record("split_last_axis", inputs: [x], outputs: outputs) { grads in
        var dx = [T](repeating: 0, count: rows * width)
        dx.withUnsafeMutableBufferPointer { dst in
            for (k, g) in grads.enumerated() {
                guard let g else { continue }
                let (size, offset) = (sizes[k], offsets[k])
                g.withUnsafeBufferPointer { src in
                    for r in 0..<rows {
                        let (from, to) = (src.baseAddress! + r * size, dst.baseAddress! + r * width + offset)
                        for j in 0..<size { to[j] = from[j] }
                    }
                }
            }
        }
        return [dx]
    }
    return outputs
}

/// An array of `count` scalars whose contents are left undefined: for outputs that a kernel overwrites entirely.
@inline(__always)
func uninitializedScalars<T: TensorScalar>(_: T.Type, count: Int) -> [T] {
    [T](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
}
