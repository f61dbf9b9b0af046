import XCTest
@testable import Layers
@testable import Tensors

/// RAT: its fused nodes against their reference forms and finite differences, the two limits of the chunk size
/// (softmax attention and a gated RNN), step == parallel, and the layer check.
final class RATTests: XCTestCase {
    func testFusedNodesPassTheirChecks() {
        for check in RATChecks.checks {
            let r = check.run(false)
            XCTAssertTrue(r.passed, r.row)
        }
    }

    /// The layer's pieces, recomputed by hand: z, v, a, q, k from one projection of the RMS-normalised input.
    private func projections(_ layer: RAT<Double>, _ x: Tensor<Double>) -> [Tensor<Double>] {
        layer.inProj(x.rmsNorm(gamma: layer.inputNorm, eps: 1e-6)).split(axis: 2, sizes: layer.splits)
    }

    func testChunkSizeOneIsCausalSoftmaxAttention() {
        var rng = RandomGenerator(seed: 3)
        let layer = RAT<Double>(dModel: 12, heads: 3, groups: 3, chunkSize: 1, ropeBase: 10_000, rng: &rng)
        let x = Tensor<Double>.randn([2, 13, 12], using: &rng)
        let p = projections(layer, x)
        let g = (p[2] + layer.gateBias).sigmoid()
        let positions = Array(0..<13)
        // keys and values are (1 - g) k and (1 - g) v: the recurrence restarts at every token
        let q = referenceRotary(p[3].reshaped([2, 13, 3, 4]), positions: positions, base: 10_000)
        let k = referenceRotary(((1 - g) * p[4]).reshaped([2, 13, 3, 4]), positions: positions, base: 10_000)
        let v = ((1 - g) * p[1]).reshaped([2, 13, 3, 4])
        let o = scaledDotProductAttention(q: q, k: k, v: v).reshaped([2, 13, 12])
        let expected = x + layer.outProj(o * p[0].sigmoid())
        XCTAssertLessThan(GradientCheck.relativeError(layer(x).data, expected.data), 1e-12)
    }

    func testChunkAsLongAsTheSequenceIsAGatedLinearRNN() {
        var rng = RandomGenerator(seed: 4)
        let (batch, length, d) = (2, 9, 8)
        let layer = RAT<Double>(dModel: d, heads: 2, groups: 1, chunkSize: 9, ropeBase: 10_000, rng: &rng)
        let x = Tensor<Double>.randn([batch, length, d], using: &rng)
        let p = projections(layer, x).map(\.data)
        var expected = [Double](repeating: 0, count: batch * length * d)
        for b in 0..<batch {
            var h = [Double](repeating: 0, count: d)
            for t in 0..<length {
                let r = (b * length + t) * d
                for i in 0..<d {
                    let g = 1 / (1 + Foundation.exp(-(p[2][r + i] + layer.gateBias.data[i])))
                    h[i] = g * h[i] + (1 - g) * p[1][r + i]
                    expected[r + i] = h[i] / (1 + Foundation.exp(-p[0][r + i]))
                }
            }
        }
        let y = x + layer.outProj(Tensor(shape: [batch, length, d], data: expected))
        XCTAssertLessThan(GradientCheck.relativeError(layer(x).data, y.data), 1e-12)
        let longer = RAT<Double>(dModel: d, heads: 2, groups: 1, chunkSize: 64, ropeBase: nil, rng: &rng)
        XCTAssertEqual(longer(x).shape, [batch, length, d])
    }

    func testStepEqualsParallelAtLengthsThatAreNotAMultipleOfTheChunk() throws {
        for (chunk, length) in [(4, 1), (4, 7), (4, 13), (5, 18), (1, 6), (16, 11)] {
            let options = LayerOptions(["chunk_size": "\(chunk)", "n_heads": "4", "n_groups": "2"])
            let layer: any SequenceLayer<Double> = try LayerRegistry.make("rat", dModel: 16, options: options, seed: 1)
            var rng = RandomGenerator(seed: 9)
            let x = Tensor<Double>.randn([3, length, 16], using: &rng)
            let (parallel, stepped) = Tape.withoutGradients { (layer(x), layer.stepThrough(x)) }
            XCTAssertLessThan(GradientCheck.relativeError(stepped.data, parallel.data), 1e-9, "chunk \(chunk), L \(length)")
        }
        let single: any SequenceLayer<Float> = try LayerRegistry.make("rat", dModel: 32, options: LayerOptions(["chunk_size": "3"]), seed: 2)
        var rng = RandomGenerator(seed: 10)
        let x = Tensor<Float>.randn([2, 20, 32], using: &rng)
        let (parallel, stepped) = Tape.withoutGradients { (single(x), single.stepThrough(x)) }
        XCTAssertLessThan(GradientCheck.relativeError(stepped.data, parallel.data), 1e-4)
    }

    func testLayerGradientsAgainstFiniteDifferences() throws {
        let layer: any SequenceLayer<Double> = try LayerRegistry.make("rat", dModel: 8, options: LayerOptions(["chunk_size": "3", "n_heads": "2"]), seed: 3)
        var rng = RandomGenerator(seed: 11)
        let x = Tensor<Double>.randn([2, 10, 8], using: &rng)
        let leaves = [("x", x)] + layer.parameters.map { ($0.name, $0.tensor) }
        let r = GradientCheck.check("rat layer", leaves: leaves, maxProbes: 24) { [layer(x)] }
        XCTAssertTrue(r.passed, r.row)
    }

    func testLayerCheckAndRegistry() throws {
        for r in try LayerCheck.run("rat", quick: true) { XCTAssertTrue(r.passed, r.row) }
        let layer: any SequenceLayer<Float> = try LayerRegistry.make("rat", dModel: 128)
        XCTAssertEqual(layer.parameters.map(\.name), ["input_norm.weight", "in_proj.weight", "gate_bias", "out_proj.weight"])
        XCTAssertEqual(layer.parameterCount, 128 + 128 * (3 * 128 + 2 * 2 * 32) + 128 + 128 * 128)
        XCTAssertEqual(layer.stateSize(sequenceLength: 40), 2 * 128 * 3)
        XCTAssertThrowsError(try LayerRegistry.make("rat", dModel: 16, options: LayerOptions(["n_heads": "3"]), as: Float.self)) { error in
            XCTAssertTrue("\(error)".contains("n_heads 3 must divide d_model 16"), "\(error)")
        }
        XCTAssertThrowsError(try LayerRegistry.make("rat", dModel: 16, options: LayerOptions(["n_groups": "3"]), as: Float.self))
        XCTAssertThrowsError(try LayerRegistry.make("rat", dModel: 16, options: LayerOptions(["chunk_size": "0"]), as: Float.self))
        XCTAssertThrowsError(try LayerRegistry.make("rat", dModel: 12, options: LayerOptions(["n_heads": "4"]), as: Float.self)) { error in
            XCTAssertTrue("\(error)".contains("even head dim"), "\(error)")
        }
    }

    func testFloat32FastPathAgreesWithFloat64() throws {
        let d: any SequenceLayer<Double> = try LayerRegistry.make("rat", dModel: 32, options: LayerOptions(["chunk_size": "4"]), seed: 5)
        let f: any SequenceLayer<Float> = try LayerRegistry.make("rat", dModel: 32, options: LayerOptions(["chunk_size": "4"]), seed: 5)
        var rng = RandomGenerator(seed: 12)
        let x = Tensor<Double>.randn([2, 300, 32], using: &rng)
        let yd = d(x), yf = f(x.converted(to: Float.self))
        XCTAssertLessThan(GradientCheck.relativeError(yf.data, yd.data.map { Float($0) }), 1e-4)
    }
}

import Foundation
