import Foundation
import Tensors

/// Rotary position embedding (Su et al. 2021, RoFormer) over the two halves of a head vector, as in LLaMA /
/// `apply_rotary_pos_emb`: for i < E/2 with angle theta_i = position * base^(-2i/E),
///   y_i = x_i cos theta_i - x_{i+E/2} sin theta_i,   y_{i+E/2} = x_{i+E/2} cos theta_i + x_i sin theta_i.
/// RAT rotates by chunk index: position = floor(t / chunk_size). `base` nil turns the rotation off.
public struct ChunkRotary<T: TensorScalar> {
    /// The head dimension E (even when enabled).
    public let dim: Int
    /// Whether a rotation is applied (false: identity).
    public let enabled: Bool
    /// The first tabulated position.
    public let firstPosition: Int
    let cos: [T], sin: [T]  // [positions, E/2]

    /// Tables for positions firstPosition ..< firstPosition + positions.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public init(positions: Int, dim: Int, base: Double?, firstPosition: Int = 0) {
        precondition(base == nil || dim % 2 == 0, "rotary embedding: head dimension \(dim) must be even")
        self.dim = dim
        self.firstPosition = firstPosition
        enabled = base != nil
        let half = dim / 2
        var c = [T](repeating: 1, count: enabled ? positions * half : 0)
        var s = [T](repeating: 0, count: c.count)
        if let base {
            for p in 0..<positions {
                for i in 0..<half {
                    let theta = Double(firstPosition + p) * Foundation.pow(base, -2 * Double(i) / Double(dim))
                    c[p * half + i] = T(Foundation.cos(theta))
                    s[p * half + i] = T(Foundation.sin(theta))
                }
            }
        }
        cos = c
        sin = s
    }

    /// y = R(position) x.
    @inline(__always)
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func rotate(_ x: UnsafePointer<T>, into y: UnsafeMutablePointer<T>, position: Int) {
        guard enabled else { y.update(from: x, count: dim); return }
        let half = dim / 2
        cos.withUnsafeBufferPointer { cp in sin.withUnsafeBufferPointer { sp in
            let (c, s) = (cp.baseAddress! + (position - firstPosition) * half, sp.baseAddress! + (position - firstPosition) * half)
            let (x2, y2) = (x + half, y + half)
            for i in 0..<half {
                let (a, b) = (x[i], x2[i])
                y[i] = a * c[i] - b * s[i]
                y2[i] = b * c[i] + a * s[i]
            }
        } }
    }

    /// y += R(position)^T d: the gradient of a rotated vector taken back to the unrotated one.
    @inline(__always)
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func addRotatedBack(_ d: UnsafePointer<T>, into y: UnsafeMutablePointer<T>, position: Int) {
        guard enabled else { for i in 0..<dim { y[i] += d[i] }; return }
        let half = dim / 2
        cos.withUnsafeBufferPointer { cp in sin.withUnsafeBufferPointer { sp in
            let (c, s) = (cp.baseAddress! + (position - firstPosition) * half, sp.baseAddress! + (position - firstPosition) * half)
            let (d2, y2) = (d + half, y + half)
            for i in 0..<half {
                let (a, b) = (d[i], d2[i])
                y[i] += a * c[i] + b * s[i]
                y2[i] += b * c[i] - a * s[i]
            }
        } }
    }
}

/// Rotary embedding of x [B, L, H, E] at the given position of each row t (positions.count = L), from basic tape
/// ops: the reference form for `chunkAttention`'s built-in rotation.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func referenceRotary<T: TensorScalar>(_ x: Tensor<T>, positions: [Int], base: Double?) -> Tensor<T> {
    guard let base else { return x }
    let (length, e) = (x.shape[1], x.shape[3])
    let half = e / 2
    var c = [T](repeating: 0, count: length * half), s = c
    for t in 0..<length {
        for i in 0..<half {
            let theta = Double(positions[t]) * Foundation.pow(base, -2 * Double(i) / Double(e))
            c[t * half + i] = T(Foundation.cos(theta))
            s[t * half + i] = T(Foundation.sin(theta))
        }
    }
    let cosT = Tensor(shape: [length, 1, half], data: c), sinT = Tensor(shape: [length, 1, half], data: s)
    let parts = x.split(axis: 3, sizes: [half, half])
    return Tensor.concatenate([parts[0] * cosT - parts[1] * sinT, parts[1] * cosT + parts[0] * sinT], axis: 3)
}
