import XCTest
@testable import Tensors

/// The Float activations' libm-free forms (`stableSigmoid`, `stableSoftplus` through `vectorExp` and `log1pUnit`)
/// against the Double libm forms, over the whole Float range that matters, forward and backward (the derivatives
/// `map` records), including the extremes where the stable forms switch branches or underflow.
final class ActivationAccuracyTests: XCTestCase {
    /// Inputs from -120 to 120: dense near 0, every integer out to the clamps, and the signed extremes.
    private let inputs: [Float] = (-2400...2400).map { Float($0) / 100 } + (-120...120).map(Float.init)
        + [-1e-8, 1e-8, -87.5, 87.5, -88.5, 88.5, -1e4, 1e4]

    /// |f - ref| <= 2e-6 |ref| + floor for every input: relative error at the Float level; the floor is 1e-35 for
    /// values (results below Float's normal range) and 1e-7 for derivatives (sigmoid's y (1 - y) loses e^-x once y
    /// rounds to 1 in Float, x > 16: a property of the formula in Float, not of the exp).
    private func check(_ name: String, _ op: (Tensor<Float>) -> Tensor<Float>, _ opRef: (Tensor<Double>) -> Tensor<Double>) {
        let x = Tensor<Float>(shape: [inputs.count], data: inputs).requiringGrad()
        let xRef = Tensor<Double>(shape: [inputs.count], data: inputs.map(Double.init)).requiringGrad()
        let y = op(x), yRef = opRef(xRef)
        y.backward(seed: [Float](repeating: 1, count: inputs.count))
        yRef.backward(seed: [Double](repeating: 1, count: inputs.count))
        for (label, got, want, floor) in [("value", y.data.map(Double.init), yRef.data, 1e-35),
                                          ("derivative", x.grad!.map(Double.init), xRef.grad!, 1e-7)] {
            var worst = 0.0, at: Float = 0
            for i in inputs.indices {
                let excess = abs(got[i] - want[i]) - (2e-6 * abs(want[i]) + floor)
                if excess > worst { (worst, at) = (excess, inputs[i]) }
            }
            XCTAssertEqual(worst, 0, "\(name) \(label): beyond 2e-6 relative at x = \(at)")
        }
    }

    func testSigmoidSiLUSoftplusAndLogSigmoidMatchLibmInFloat() {
        check("sigmoid", { $0.sigmoid() }, { $0.sigmoid() })
        check("silu", { $0.silu() }, { $0.silu() })
        check("softplus", { $0.softplus() }, { $0.softplus() })
        check("logsigmoid", { $0.logSigmoid() }, { $0.logSigmoid() })
    }
}
