import Foundation
import Tensors

// Rotary position embedding (Su et al. 2021, "RoFormer: Enhanced Transformer with Rotary Position Embedding"), in
// the half-split layout of GPT-NeoX and LLaMA: channel i pairs with channel i + R/2 (R = the head dimension rounded
// down to even; an odd last channel passes through), rotated by the angle p theta_i at position p:
//     y_i = x_i cos(p theta_i) - x_{i+R/2} sin(p theta_i),   y_{i+R/2} = x_{i+R/2} cos(p theta_i) + x_i sin(p theta_i),
//     theta_i = base^(-2i / R).
// Then <rope(q, p), rope(k, p')> depends on p - p' only. Backward is the rotation by -p theta_i.

/// cos and sin of p theta_i for a run of positions p and the R/2 frequencies of a head dimension, [L, R/2] each,
/// computed in Float64. Build it once per forward pass and rotate q and k with it.
public struct RotaryTable<T: TensorScalar> {
    public let positions: Range<Int>
    public let headDim: Int
    public let cosines, sines: [T]

    /// The table for `positions` and head dimension `headDim` with frequencies base^(-2i / R).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public init(positions: Range<Int>, headDim: Int, base: Double = 10_000) {
        (self.positions, self.headDim) = (positions, headDim)
        let half = headDim / 2
        var c = [T](repeating: 1, count: positions.count * half), s = [T](repeating: 0, count: positions.count * half)
        let frequencies = (0..<half).map { Foundation.pow(base, -2 * Double($0) / Double(2 * half)) }
        for (t, p) in positions.enumerated() {
            for i in 0..<half {
                let angle = Double(p) * frequencies[i]
                c[t * half + i] = T(Foundation.cos(angle))
                s[t * half + i] = T(Foundation.sin(angle))
            }
        }
        (cosines, sines) = (c, s)
    }
}

extension Tensor {
    /// Rotary position embedding of x [B, L, H, E] at positions offset, offset + 1, ...: one tape node.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func rotaryEmbedding(positionOffset offset: Int = 0, base: Double = 10_000) -> Tensor<T> {
        precondition(rank == 4, "rotaryEmbedding: x must be [B, L, H, E], got \(shape)")
        return rotaryEmbedding(RotaryTable(positions: offset..<(offset + shape[1]), headDim: shape[3], base: base))
    }

    /// Rotary position embedding of x [B, L, H, E] with a table for L positions and head dimension E: one tape node.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func rotaryEmbedding(_ table: RotaryTable<T>) -> Tensor<T> {
        precondition(rank == 4 && table.positions.count == shape[1] && table.headDim == shape[3],
                     "rotaryEmbedding: x \(shape) needs a table for \(shape[1]) positions and head dimension \(shape[3])")
        let (batch, length, heads, e) = (shape[0], shape[1], shape[2], shape[3])
        let half = e / 2
        let rotate = { (x: [T], direction: T) -> [T] in
            var y = x
            table.cosines.withUnsafeBufferPointer { cp in table.sines.withUnsafeBufferPointer { sp in
            x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
                let (cb, sb, xb, yb) = (cp.baseAddress!, sp.baseAddress!, xp.baseAddress!, yp.baseAddress!)
                for b in 0..<batch { for t in 0..<length {
                    let (c, s) = (cb + t * half, sb + t * half)
                    for h in 0..<heads {
                        let row = ((b * length + t) * heads + h) * e
                        let (x1, x2, y1, y2) = (xb + row, xb + row + half, yb + row, yb + row + half)
                        for i in 0..<half {
                            y1[i] = x1[i] * c[i] - direction * x2[i] * s[i]
                            y2[i] = x2[i] * c[i] + direction * x1[i] * s[i]
                        }
                    }
                } }
            } } } }
            return y
        }
        let result = Tensor(shape: shape, data: rotate(data, 1))
        Tape.record("rotary_embedding", inputs: [self], output: result) { dy in [rotate(dy, -1)] }
        return result
    }
}
