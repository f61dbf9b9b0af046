// Broadcasting (NumPy rules): shapes align at their last axis; an axis of extent 1 (or a missing leading axis)
// repeats. `broadcastShape` gives the result shape, `forEachRow` walks it row by row (a row = the last axis),
// and `sumToShape` is broadcasting's adjoint: it sums a gradient back down to an operand's shape.

/// A shape error: the op and both shapes, in one line.
public struct ShapeError: Error, CustomStringConvertible {
    public let description: String
}

/// The broadcast of two shapes, or a `ShapeError` naming both.
public func broadcastShapeChecked(_ a: [Int], _ b: [Int], op: String = "broadcast") throws -> [Int] {
    let rank = max(a.count, b.count)
    var out = [Int](repeating: 1, count: rank)
    for i in 0..<rank {
        let da = i < rank - a.count ? 1 : a[i - (rank - a.count)]
        let db = i < rank - b.count ? 1 : b[i - (rank - b.count)]
        guard da == db || da == 1 || db == 1 else {
            throw ShapeError(description: "\(op): shapes \(a) and \(b) are not broadcast-compatible")
        }
        out[i] = da == 1 ? db : da
    }
    return out
}

/// The broadcast of two shapes, or a precondition failure naming both (a programming error inside a model).
public func broadcastShape(_ a: [Int], _ b: [Int], op: String = "broadcast") -> [Int] {
    do { return try broadcastShapeChecked(a, b, op: op) } catch { preconditionFailure("\(error)") }
}

/// Strides that read `shape` as if broadcast to `target` (0 along repeated axes).
func broadcastStrides(_ shape: [Int], to target: [Int]) -> [Int] {
    let offset = target.count - shape.count
    let own = rowMajorStrides(shape)
    return (0..<target.count).map { i in
        i < offset || shape[i - offset] == 1 ? 0 : own[i - offset]
    }
}

/// Calls `body(outputOffset, aOffset, bOffset)` at the start of every row (all axes but the last) of `shape`,
/// with the operands read through strides `aStrides`, `bStrides`. A shape of rank 0 is one row of length 1.
@inline(__always)
func forEachRow(
    _ shape: [Int], _ aStrides: [Int], _ bStrides: [Int], _ body: (_ out: Int, _ a: Int, _ b: Int) -> Void
) {
    let rank = shape.count
    if rank <= 1 { body(0, 0, 0); return }
    let inner = shape[rank - 1]
    let rows = shape.dropLast().reduce(1, *)
    if rows == 0 || inner == 0 { return }
    var index = [Int](repeating: 0, count: rank - 1)
    var aOff = 0, bOff = 0
    for row in 0..<rows {
        body(row * inner, aOff, bOff)
        var axis = rank - 2
        while axis >= 0 {
            index[axis] += 1
            aOff += aStrides[axis]
            bOff += bStrides[axis]
            if index[axis] < shape[axis] { break }
            aOff -= aStrides[axis] * shape[axis]
            bOff -= bStrides[axis] * shape[axis]
            index[axis] = 0
            axis -= 1
        }
    }
}

/// `data` (of shape `from`) repeated to shape `to` (which `from` broadcasts to).
func broadcastData<T: TensorScalar>(_ data: [T], from: [Int], to: [Int]) -> [T] {
    if from == to { return data }
    let strides = broadcastStrides(from, to: to)
    var out = [T](repeating: 0, count: elementCount(to))
    let inner = to.last ?? 1
    let s = strides.last ?? 0
    data.withUnsafeBufferPointer { src in
        out.withUnsafeMutableBufferPointer { dst in
            forEachRow(to, strides, strides) { o, a, _ in
                for j in 0..<inner { dst[o + j] = src[a + j * s] }
            }
        }
    }
    return out
}

/// Sums `data` (of shape `from`) down to shape `to`, which broadcasts to `from`: the adjoint of `broadcastData`.
func sumToShape<T: TensorScalar>(_ data: [T], from: [Int], to: [Int]) -> [T] {
    if from == to { return data }
    let strides = broadcastStrides(to, to: from)
    var out = [T](repeating: 0, count: elementCount(to))
    let inner = from.last ?? 1
    let s = strides.last ?? 0
    data.withUnsafeBufferPointer { src in
        out.withUnsafeMutableBufferPointer { dst in
            forEachRow(from, strides, strides) { o, a, _ in
                if s == 0 {
                    var acc: T = 0
                    for j in 0..<inner { acc += src[o + j] }
                    dst[a] += acc
                } else {
                    for j in 0..<inner { dst[a + j * s] += src[o + j] }
                }
            }
        }
    }
    return out
}
