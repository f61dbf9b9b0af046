import Foundation
import Tensors

/// The useful arithmetic of a layer's forward pass, counted from its formulas (what the math asks for, not what a
/// kernel happens to execute: recomputation, padding and masked work are not counted), so that `seqlab bench` can
/// say how far each timing is from the machine's limits.
///
/// Conventions (docs/performance.md):
/// - a multiply-add is 2 FLOPs; a product [m, k] x [k, n] is 2 m n k;
/// - elementwise work is counted at the arithmetic its formula does (an add, a multiply, a gate product: 1 each);
/// - a transcendental evaluation (exp, log, sigmoid, softplus, the sigmoid of SiLU, tanh, cos/sin) costs
///   `transcendentalCost` FLOPs, the multiply-adds of SequenceLab's vector exp (range reduction + degree-5
///   polynomial + scaling);
/// - forward + backward is 3x the forward (each product's backward is two products of the same size, the rule behind
///   the field's "6 N D" training FLOPs and model-FLOPs utilisation); the same factor is applied to elementwise work.
public struct LayerWork: Sendable, Equatable {
    /// FLOPs of the forward pass in matrix products (projections, chunk products, score blocks) and FFTs (a long
    /// convolution is counted as its FFTs, `fft`, not as the direct convolution it replaces).
    public var products: Double
    /// FLOPs of the forward pass in elementwise arithmetic (scans, gates, norms, rotations).
    public var elementwise: Double
    /// Transcendental evaluations of the forward pass (each counted at `transcendentalCost` FLOPs).
    public var transcendentals: Double

    /// FLOPs charged per exp, log, sigmoid, softplus, tanh or cos/sin evaluation.
    public static let transcendentalCost: Double = 20
    /// Forward + backward work relative to the forward pass.
    public static let backwardFactor: Double = 3

    public init(products: Double = 0, elementwise: Double = 0, transcendentals: Double = 0) {
        (self.products, self.elementwise, self.transcendentals) = (products, elementwise, transcendentals)
    }

    /// The forward pass's FLOPs.
    public var forwardFlops: Double { products + elementwise + Self.transcendentalCost * transcendentals }
    /// The forward + backward pass's FLOPs (`backwardFactor` x the forward).
    public var forwardBackwardFlops: Double { Self.backwardFactor * forwardFlops }

    public static func + (a: LayerWork, b: LayerWork) -> LayerWork {
        LayerWork(products: a.products + b.products, elementwise: a.elementwise + b.elementwise,
                  transcendentals: a.transcendentals + b.transcendentals)
    }

    public static func * (count: Double, w: LayerWork) -> LayerWork {
        LayerWork(products: count * w.products, elementwise: count * w.elementwise, transcendentals: count * w.transcendentals)
    }

    /// A product [m, k] x [k, n]: 2 m n k.
    public static func product(_ m: Int, _ n: Int, _ k: Int) -> LayerWork {
        LayerWork(products: 2 * Double(m) * Double(n) * Double(k))
    }

    /// A linear map of `rows` vectors from `inputs` to `outputs` features (plus the bias adds).
    public static func linear(rows: Int, inputs: Int, outputs: Int, bias: Bool = false) -> LayerWork {
        product(rows, outputs, inputs) + LayerWork(elementwise: bias ? Double(rows) * Double(outputs) : 0)
    }

    /// A real-to-complex or complex-to-real FFT of size n: 2.5 n log2 n (half the usual 5 n log2 n of a complex FFT).
    public static func fft(_ n: Int) -> LayerWork {
        LayerWork(products: n > 1 ? 2.5 * Double(n) * log2(Double(n)) : 0)
    }

    /// `count` elements at `flops` each.
    public static func elementwise(_ count: Int, flops: Double) -> LayerWork {
        LayerWork(elementwise: Double(count) * flops)
    }

    /// `count` transcendental evaluations.
    public static func transcendental(_ count: Int) -> LayerWork {
        LayerWork(transcendentals: Double(count))
    }

    /// Layer norm or RMS norm of `rows` vectors of `width`: mean and variance (or mean square), scale and gain
    /// (about 5 FLOPs per element; the rsqrt per row is negligible).
    public static func norm(rows: Int, width: Int) -> LayerWork {
        elementwise(rows * width, flops: 5)
    }

    /// The taps a causal convolution of `width` taps applies per channel over a sequence of `length`: sum over t of
    /// min(t + 1, width) (the zero padding before the first token is not counted).
    public static func causalTaps(length: Int, width: Int) -> Double {
        let ramp = min(max(length, 0), width)
        return Double(ramp) * Double(ramp + 1) / 2 + Double(max(length - ramp, 0)) * Double(width)
    }

    /// A short causal depthwise convolution of `width` taps over `channels` (2 FLOPs per visible tap), then SiLU (a
    /// product and a sigmoid per element), on a batch of sequences of `length`.
    public static func shortConvolution(batch: Int, length: Int, channels: Int, width: Int) -> LayerWork {
        let taps = Double(batch * channels) * causalTaps(length: length, width: width), elements = Double(batch * length * channels)
        return LayerWork(elementwise: 2 * taps + elements, transcendentals: elements)
    }

    /// The output of the fla linear-attention layers, (RMSNorm_per_head(o) * swish(x W_g)) W_o, for `rows` tokens of
    /// `heads` heads of `valueDim` values: the norm, a product and a sigmoid for the swish, one product for the gate,
    /// the output projection to `dModel`.
    public static func gatedRMSNormOutput(rows: Int, heads: Int, valueDim: Int, dModel: Int) -> LayerWork {
        let values = rows * heads * valueDim
        return norm(rows: rows * heads, width: valueDim) + elementwise(values, flops: 2) + transcendental(values)
            + linear(rows: rows, inputs: heads * valueDim, outputs: dModel)
    }

    /// The (query, key) pairs a causal mask leaves visible in a sequence of `length`: L (L + 1) / 2.
    public static func causalPairs(_ length: Int) -> Double {
        Double(length) * Double(length + 1) / 2
    }
}
