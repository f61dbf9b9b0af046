import Foundation
import Tensors

// Rotary position embedding (Su et al. 2021, "RoFormer: Enhanced Transformer with Rotary Position Embedding"), in
// the half-split layout of GPT-NeoX and LLaMA: channel i pairs with channel i + R/2 (R = the head dimension rounded
// down to even; an odd last channel passes through), rotated by the angle p theta_i at position p:
//     y_i = x_i cos(p theta_i) - x_{i+R/2} sin(p theta_i),   y_{i+R/2} = x_{i+R/2} cos(p theta_i) + x_i sin(p theta_i),
//     theta_i = base^(-2i / R).
// Then <rope(q, p), rope(k, p')> depends on p - p' only. Backward is the rotation by -p theta_i.

extension Tensor {
    /// Rotary position embedding of x [B, L, H, E] at positions offset, offset + 1, ...: one tape node.
    public func rotaryEmbedding(positionOffset offset: Int = 0, base: Double = 10_000) -> Tensor<T> {
        precondition(rank == 4, "rotaryEmbedding: x must be [B, L, H, E], got \(shape)")
        let (batch, length, heads, e) = (shape[0], shape[1], shape[2], shape[3])
        let half = e / 2
        // cos, sin of (offset + t) theta_i: [L, R/2], computed in Float64.
        var cosines = [T](repeating: 1, count: length * half), sines = [T](repeating: 0, count: length * half)
        for t in 0..<length {
            for i in 0..<half {
                let angle = Double(offset + t) * Foundation.pow(base, -2 * Double(i) / Double(2 * half))
                cosines[t * half + i] = T(Foundation.cos(angle))
                sines[t * half + i] = T(Foundation.sin(angle))
            }
        }
        let rotate = { (x: [T], direction: T) -> [T] in
            var y = x
            for b in 0..<batch { for t in 0..<length { for h in 0..<heads {
                let base = ((b * length + t) * heads + h) * e
                for i in 0..<half {
                    let (c, s) = (cosines[t * half + i], direction * sines[t * half + i])
                    let (x1, x2) = (x[base + i], x[base + half + i])
                    y[base + i] = x1 * c - x2 * s
                    y[base + half + i] = x2 * c + x1 * s
                }
            } } }
            return y
        }
        let result = Tensor(shape: shape, data: rotate(data, 1))
        Tape.record("rotary_embedding", inputs: [self], output: result) { dy in [rotate(dy, -1)] }
        return result
    }
}
