// Ops that move scalars without arithmetic: reshape, permute, slice, concatenate, broadcast, where.

extension Tensor {
    /// The same scalars under a new shape; one extent may be -1 (inferred).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var target = newShape
        if let i = target.firstIndex(of: -1) {
            let known = target.filter { $0 != -1 }.reduce(1, *)
            precondition(known > 0 && count % known == 0, "reshape: cannot reshape \(shape) to \(newShape)")
            target[i] = count / known
        }
        precondition(elementCount(target) == count, "reshape: cannot reshape \(shape) (\(count) scalars) to \(newShape)")
        let result = Tensor(shape: target, data: data)
        Tape.record("reshape", inputs: [self], output: result) { dy in [dy] }
        return result
    }

    /// Axes reordered: result axis i is input axis `axes[i]`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func permuted(_ axes: [Int]) -> Tensor {
        precondition(
            axes.sorted() == Array(0..<rank), "permute: \(axes) is not a permutation of the axes of shape \(shape)")
        let outShape = axes.map { shape[$0] }
        let out = permuteData(data, shape: shape, axes: axes)
        let result = Tensor(shape: outShape, data: out)
        var inverse = [Int](repeating: 0, count: rank)
        for (i, a) in axes.enumerated() { inverse[a] = i }
        Tape.record("permute", inputs: [self], output: result) { dy in
            [permuteData(dy, shape: outShape, axes: inverse)]
        }
        return result
    }

    /// Two axes swapped (negative axes count from the end).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func transposed(_ a: Int = -2, _ b: Int = -1) -> Tensor {
        var axes = Array(0..<rank)
        axes.swapAt(normalizedAxis(a), normalizedAxis(b))
        return permuted(axes)
    }

    /// A non-negative axis index (negative axes count from the end).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func normalizedAxis(_ axis: Int) -> Int {
        let a = axis < 0 ? axis + rank : axis
        precondition(a >= 0 && a < Swift.max(rank, 1), "axis \(axis) is out of range for shape \(shape)")
        return a
    }

    /// The sub-range `range` of axis `axis`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func slice(axis: Int, _ range: Range<Int>) -> Tensor {
        let ax = normalizedAxis(axis)
        precondition(
            range.lowerBound >= 0 && range.upperBound <= shape[ax],
            "slice: range \(range) is out of bounds for axis \(ax) of shape \(shape)")
        let outer = shape[..<ax].reduce(1, *)
        let inner = shape[(ax + 1)...].reduce(1, *)
        var outShape = shape
        outShape[ax] = range.count
        let n = shape[ax], m = range.count, lo = range.lowerBound
        var out = [T](repeating: 0, count: outer * m * inner)
        for o in 0..<outer {
            let src = (o * n + lo) * inner, dst = o * m * inner
            for i in 0..<(m * inner) { out[dst + i] = data[src + i] }
        }
        let result = Tensor(shape: outShape, data: out)
        Tape.record("slice", inputs: [self], output: result) { dy in
            var dx = [T](repeating: 0, count: outer * n * inner)
            for o in 0..<outer {
                let dst = (o * n + lo) * inner, src = o * m * inner
                for i in 0..<(m * inner) { dx[dst + i] = dy[src + i] }
            }
            return [dx]
        }
        return result
    }

    /// Splits axis `axis` into pieces of the given sizes.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func split(axis: Int, sizes: [Int]) -> [Tensor] {
        let ax = normalizedAxis(axis)
        precondition(sizes.reduce(0, +) == shape[ax], "split: sizes \(sizes) do not add up to axis \(ax) of shape \(shape)")
        var start = 0
        return sizes.map { size in
            defer { start += size }
            return slice(axis: ax, start..<(start + size))
        }
    }

    /// Joins tensors along `axis`; all other extents must agree.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func concatenate(_ parts: [Tensor], axis: Int) -> Tensor {
        precondition(!parts.isEmpty, "concatenate: no tensors")
        let first = parts[0]
        let ax = first.normalizedAxis(axis)
        for p in parts {
            precondition(
                p.rank == first.rank && (0..<p.rank).allSatisfy { $0 == ax || p.shape[$0] == first.shape[$0] },
                "concatenate: shapes \(first.shape) and \(p.shape) differ outside axis \(ax)")
        }
        let outer = first.shape[..<ax].reduce(1, *)
        let inner = first.shape[(ax + 1)...].reduce(1, *)
        let extents = parts.map { $0.shape[ax] }
        let total = extents.reduce(0, +)
        var outShape = first.shape
        outShape[ax] = total
        var out = [T](repeating: 0, count: outer * total * inner)
        var offset = 0
        for (p, n) in zip(parts, extents) {
            for o in 0..<outer {
                let src = o * n * inner, dst = (o * total + offset) * inner
                for i in 0..<(n * inner) { out[dst + i] = p.data[src + i] }
            }
            offset += n
        }
        let result = Tensor(shape: outShape, data: out)
        Tape.record("concatenate", inputs: parts, output: result) { dy in
            var grads: [[T]?] = []
            var offset = 0
            for n in extents {
                var dx = [T](repeating: 0, count: outer * n * inner)
                for o in 0..<outer {
                    let dst = o * n * inner, src = (o * total + offset) * inner
                    for i in 0..<(n * inner) { dx[dst + i] = dy[src + i] }
                }
                grads.append(dx)
                offset += n
            }
            return grads
        }
        return result
    }

    /// Repeated along axes of extent 1 (and new leading axes) to `target`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func broadcast(to target: [Int]) -> Tensor {
        precondition(broadcastShape(shape, target, op: "broadcast(to:)") == target, "broadcast: cannot broadcast \(shape) to \(target)")
        let result = Tensor(shape: target, data: broadcastData(data, from: shape, to: target))
        let from = shape
        Tape.record("broadcast", inputs: [self], output: result) { dy in [sumToShape(dy, from: target, to: from)] }
        return result
    }

    /// `self` where `mask` is true, `other` elsewhere (mask broadcasts to the common shape of both).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func selecting(where mask: [Bool], maskShape: [Int], else other: Tensor) -> Tensor {
        let outShape = broadcastShape(broadcastShape(shape, other.shape, op: "where"), maskShape, op: "where")
        let m = broadcastMask(mask, from: maskShape, to: outShape)
        let a = broadcastData(data, from: shape, to: outShape)
        let b = broadcastData(other.data, from: other.shape, to: outShape)
        var out = b
        for i in 0..<out.count where m[i] { out[i] = a[i] }
        let result = Tensor(shape: outShape, data: out)
        let (aShape, bShape) = (shape, other.shape)
        Tape.record("where", inputs: [self, other], output: result) { dy in
            var da = dy, db = dy
            for i in 0..<dy.count { if m[i] { db[i] = 0 } else { da[i] = 0 } }
            return [sumToShape(da, from: outShape, to: aShape), sumToShape(db, from: outShape, to: bShape)]
        }
        return result
    }

    /// `value` where `mask` is true (mask broadcasts to this shape), this tensor elsewhere.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func maskedFill(_ mask: [Bool], maskShape: [Int], with value: T) -> Tensor {
        let m = broadcastMask(mask, from: maskShape, to: shape)
        var out = data
        for i in 0..<out.count where m[i] { out[i] = value }
        let result = Tensor(shape: shape, data: out)
        Tape.record("masked_fill", inputs: [self], output: result) { dy in
            var dx = dy
            for i in 0..<dx.count where m[i] { dx[i] = 0 }
            return [dx]
        }
        return result
    }
}

private func broadcastMask(_ mask: [Bool], from: [Int], to: [Int]) -> [Bool] {
    precondition(elementCount(from) == mask.count, "mask: \(mask.count) entries for mask shape \(from)")
    precondition(broadcastShape(from, to, op: "mask") == to, "mask: shape \(from) does not broadcast to \(to)")
    let idx = broadcastData((0..<mask.count).map { Double($0) }, from: from, to: to)
    return idx.map { mask[Int($0)] }
}

/// Row-major data of shape `shape` permuted so that result axis i is input axis `axes[i]`.
func permuteData<T>(_ data: [T], shape: [Int], axes: [Int]) -> [T] {
    let rank = shape.count
    if rank == 0 || axes == Array(0..<rank) { return data }
    let inStrides = rowMajorStrides(shape)
    let outShape = axes.map { shape[$0] }
    let srcStrides = axes.map { inStrides[$0] }  // input stride of each output axis
    var out = data
    let inner = outShape[rank - 1], s = srcStrides[rank - 1]
    data.withUnsafeBufferPointer { src in
        out.withUnsafeMutableBufferPointer { dst in
            forEachRow(outShape, srcStrides, srcStrides) { o, a, _ in
                for j in 0..<inner { dst[o + j] = src[a + j * s] }
            }
        }
    }
    return out
}
