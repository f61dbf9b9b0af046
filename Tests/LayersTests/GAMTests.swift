import XCTest
@testable import Layers
@testable import Tensors

/// GAM: fused nodes against their reference forms and finite differences, the receptive field, step == parallel,
/// the whole block against its composition from basic ops, dropout, and the layer check.
final class GAMTests: XCTestCase {
    func testFusedNodesPassTheirChecks() {
        for check in GAMChecks.checks {
            let r = check.run(false)
            XCTAssertTrue(r.passed, r.row)
        }
    }

    private func make(_ options: [String: String], d: Int = 8, seed: UInt64 = 0) throws -> GAM<Double> {
        try XCTUnwrap(try LayerRegistry.make("gam", dModel: d, options: LayerOptions(options), seed: seed, as: Double.self) as? GAM<Double>)
    }

    func testBlockEqualsItsCompositionFromBasicOps() throws {
        let layer = try make(["slots": "12", "kernel_size": "3"])
        var rng = RandomGenerator(seed: 2)
        let x = Tensor<Double>.randn([2, 11, 8], using: &rng)
        let h = referenceGatedAssociativeMemory(x, normWeight: layer.norm1Weight, normBias: layer.norm1Bias, convWeight: layer.convWeight,
                                                convBias: layer.convBias, memory: layer.memory, gateWeight: layer.gate.weight, gateBias: layer.gate.bias!)
        let y = h + layer.down(layer.up(h.layerNorm(gamma: layer.norm2Weight, beta: layer.norm2Bias)).gelu())
        XCTAssertLessThan(GradientCheck.relativeError(layer(x).data, y.data), 1e-12)
    }

    /// y_t depends on x_{t-k+1} .. x_t only: perturbing x_s for s < t - (k - 1) leaves y_t exactly unchanged, and
    /// perturbing x_{t-k+1} changes it.
    func testReceptiveFieldIsTheKernelWidth() throws {
        for k in [1, 3, 5] {
            let layer = try make(["slots": "6", "kernel_size": "\(k)"])
            var rng = RandomGenerator(seed: 4)
            let (length, t) = (12, 9)
            let x = Tensor<Double>.randn([1, length, 8], using: &rng)
            let y = Tape.withoutGradients { layer(x) }
            for s in 0...t {
                let moved = x.detached()
                for i in 0..<8 { moved.data[s * 8 + i] += 0.3 * Double(i * i) - 1 }  // not a constant shift: LayerNorm ignores those
                let ys = Tape.withoutGradients { layer(moved) }
                let change = (0..<8).map { abs(ys.data[t * 8 + $0] - y.data[t * 8 + $0]) }.max()!
                if s < t - (k - 1) {
                    XCTAssertEqual(change, 0, "k \(k): y_\(t) moved with x_\(s)")
                } else {
                    XCTAssertGreaterThan(change, 1e-6, "k \(k): y_\(t) ignores x_\(s)")
                }
            }
        }
    }

    func testStepEqualsParallel() throws {
        for (k, length) in [(3, 1), (3, 2), (3, 13), (1, 5), (4, 9)] {
            let layer = try make(["slots": "10", "kernel_size": "\(k)"])
            var rng = RandomGenerator(seed: 6)
            let x = Tensor<Double>.randn([3, length, 8], using: &rng)
            let (parallel, stepped) = Tape.withoutGradients { (layer(x), layer.stepThrough(x)) }
            XCTAssertLessThan(GradientCheck.relativeError(stepped.data, parallel.data), 1e-9, "k \(k), L \(length)")
        }
        let single: any SequenceLayer<Float> = try LayerRegistry.make("gam", dModel: 32, seed: 1)
        var rng = RandomGenerator(seed: 7)
        let x = Tensor<Float>.randn([2, 300, 32], using: &rng)
        let (parallel, stepped) = Tape.withoutGradients { (single(x), single.stepThrough(x)) }
        XCTAssertLessThan(GradientCheck.relativeError(stepped.data, parallel.data), 1e-4)
    }

    func testLayerGradientsAgainstFiniteDifferences() throws {
        let layer = try make(["slots": "7", "kernel_size": "3"], d: 6)
        var rng = RandomGenerator(seed: 8)
        let x = Tensor<Double>.randn([2, 9, 6], using: &rng)
        let leaves = [("x", x)] + layer.parameters.map { ($0.name, $0.tensor) }
        let r = GradientCheck.check("gam layer", leaves: leaves, maxProbes: 16) { [layer(x)] }
        XCTAssertTrue(r.passed, r.row)
    }

    func testDropoutOnlyWhileRecording() throws {
        let layer = try make(["slots": "6", "dropout": "0.5"])
        var rng = RandomGenerator(seed: 9)
        let x = Tensor<Double>.randn([2, 7, 8], using: &rng)
        let evaluation = Tape.withoutGradients { layer(x) }
        let plain = try make(["slots": "6"])
        XCTAssertLessThan(GradientCheck.relativeError(evaluation.data, Tape.withoutGradients { plain(x) }.data), 1e-15)
        let training = layer(x.detached().requiringGrad())
        XCTAssertGreaterThan(GradientCheck.relativeError(training.data, evaluation.data), 1e-3)
    }

    func testLayerCheckAndRegistry() throws {
        for r in try LayerCheck.run("gam", quick: true) { XCTAssertTrue(r.passed, r.row) }
        let layer: any SequenceLayer<Float> = try LayerRegistry.make("gam", dModel: 128)
        XCTAssertEqual(layer.parameters.map(\.name), [
            "ln1.weight", "ln1.bias", "causal_conv.weight", "causal_conv.bias", "memory_bank", "gate.weight", "gate.bias",
            "ln2.weight", "ln2.bias", "ffn.0.weight", "ffn.0.bias", "ffn.2.weight", "ffn.2.bias"])
        XCTAssertEqual(layer.parameterCount, 4 * 128 + 128 * 3 + 128 + 512 * 128 + 128 * 256 + 256 + 2 * 128 * 512 + 512 + 128)
        XCTAssertEqual(layer.stateSize(sequenceLength: 1000), 2 * 128)
        XCTAssertThrowsError(try LayerRegistry.make("gam", dModel: 8, options: LayerOptions(["slots": "0"]), as: Float.self))
        XCTAssertThrowsError(try LayerRegistry.make("gam", dModel: 8, options: LayerOptions(["dropout": "1"]), as: Float.self)) { error in
            XCTAssertEqual("\(error)", "layer gam: option dropout: '1' must be below 1")
        }
    }

    func testFloat32FastPathAgreesWithFloat64() throws {
        let d: any SequenceLayer<Double> = try LayerRegistry.make("gam", dModel: 32, seed: 5)
        let f: any SequenceLayer<Float> = try LayerRegistry.make("gam", dModel: 32, seed: 5)
        var rng = RandomGenerator(seed: 12)
        let x = Tensor<Double>.randn([2, 300, 32], using: &rng)
        XCTAssertLessThan(GradientCheck.relativeError(f(x.converted(to: Float.self)).data, d(x).data.map { Float($0) }), 1e-4)
    }
}
