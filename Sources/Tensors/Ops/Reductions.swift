// Reductions over axes. A reduction is broadcasting's adjoint: sum(x, axes) is `sumToShape` onto the shape with
// those axes set to 1, and its gradient broadcasts back.

extension Tensor {
    private func reducedShape(_ axes: [Int]) -> (keep: [Int], axes: Set<Int>) {
        let set = Set(axes.map { normalizedAxis($0) })
        return (shape.enumerated().map { set.contains($0.offset) ? 1 : $0.element }, set)
    }

    private func finish(_ keep: [Int], _ axes: Set<Int>, keepDims: Bool) -> [Int] {
        keepDims ? keep : shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
    }

    /// Sum over `axes` (all axes if nil); reduced axes are dropped unless `keepDims`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func sum(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let (keep, set) = reducedShape(axes ?? Array(0..<rank))
        let outShape = finish(keep, set, keepDims: keepDims)
        let result = Tensor(shape: outShape, data: sumToShape(data, from: shape, to: keep))
        let inShape = shape
        Tape.record("sum", inputs: [self], output: result) { dy in [broadcastData(dy, from: keep, to: inShape)] }
        return result
    }

    /// Sum over one axis.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func sum(axis: Int, keepDims: Bool = false) -> Tensor { sum(axes: [axis], keepDims: keepDims) }

    /// Mean over `axes` (all axes if nil).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func mean(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let (keep, _) = reducedShape(axes ?? Array(0..<rank))
        let n = count / Swift.max(1, elementCount(keep))
        return sum(axes: axes, keepDims: keepDims).scaled(by: 1 / T(n))
    }

    /// Mean over one axis.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func mean(axis: Int, keepDims: Bool = false) -> Tensor { mean(axes: [axis], keepDims: keepDims) }

    /// Maximum over one axis; the gradient goes to the first maximal element.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func max(axis: Int, keepDims: Bool = false) -> Tensor {
        let ax = normalizedAxis(axis)
        let outer = shape[..<ax].reduce(1, *), n = shape[ax], inner = shape[(ax + 1)...].reduce(1, *)
        precondition(n > 0, "max: axis \(ax) of shape \(shape) is empty")
        var out = [T](repeating: 0, count: outer * inner)
        var argmax = [Int](repeating: 0, count: outer * inner)
        for o in 0..<outer {
            for i in 0..<inner {
                var best = data[o * n * inner + i], at = 0
                for j in 1..<n where data[(o * n + j) * inner + i] > best {
                    best = data[(o * n + j) * inner + i]
                    at = j
                }
                out[o * inner + i] = best
                argmax[o * inner + i] = (o * n + at) * inner + i
            }
        }
        var outShape = shape
        if keepDims { outShape[ax] = 1 } else { outShape.remove(at: ax) }
        let result = Tensor(shape: outShape, data: out)
        let total = count
        Tape.record("max", inputs: [self], output: result) { dy in
            var dx = [T](repeating: 0, count: total)
            for (k, at) in argmax.enumerated() { dx[at] += dy[k] }
            return [dx]
        }
        return result
    }
}
