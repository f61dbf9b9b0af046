import Foundation
import XCTest
@testable import Layers
@testable import Tensors

/// The fused selective scan against its reference, its gradients, the Mamba block's step mode, long sequences,
/// the `seqlab op selective_scan` contract and the block's initialisation.
final class MambaTests: XCTestCase {
    // MARK: fused == reference

    /// Outputs, final state and all eight input gradients, Float64, at L in {1, 17, 128, 1000}; the checkpoint
    /// interval 7 divides none of them, channel blocks of 2 leave a partial block of 1.
    func testFusedScanMatchesReferenceAcrossLengthsAndModes() {
        for length in [1, 17, 128, 1000] {
            var variants: [(String, SelectiveScanProblem)] = []
            var p = SelectiveScanProblem()
            (p.length, p.tiling) = (length, SelectiveScanTiling(channelBlock: 2, checkpointInterval: 7))
            if length >= 1000 { (p.batch, p.channels, p.stateSize) = (1, 3, 3) }  // the reference is O(L^2) here
            variants.append(("D, z, delta_bias", p))
            var bare = p
            (bare.withSkip, bare.withGate, bare.withBias) = (false, false, false)
            variants.append(("no D, z, delta_bias", bare))
            var negative = p
            (negative.negativeEigenvalues, negative.withBias) = (true, false)
            variants.append(("negative eigenvalues, z, no delta_bias", negative))
            var linear = p
            (linear.deltaSoftplus, linear.withGate) = (false, false)
            variants.append(("no softplus, delta_bias, no z", linear))
            for (label, problem) in variants {
                let (error, at) = problem.compareForms(seed: UInt64(length))
                XCTAssertLessThan(error, 1e-10, "L=\(length), \(label): worst at \(at)")
            }
        }
    }

    /// The default tiling (one channel block, interval 32) and a block wider than the channels.
    func testFusedScanMatchesReferenceWithDefaultTiling() {
        var p = SelectiveScanProblem()
        (p.length, p.channels, p.tiling) = (70, 9, SelectiveScanTiling())
        XCTAssertLessThan(p.compareForms().error, 1e-10)
        p.negativeEigenvalues = true
        XCTAssertLessThan(p.compareForms().error, 1e-10)
    }

    /// The Float32 path (polynomial exp, softplus, sigmoid; 16-lane loops with tails) against the Float64 reference.
    func testFloat32ScanAgreesWithFloat64Reference() {
        for negative in [false, true] {
            var p = SelectiveScanProblem()
            (p.length, p.channels, p.stateSize, p.negativeEigenvalues) = (96, 37, 16, negative)
            p.tiling = SelectiveScanTiling(channelBlock: 24, checkpointInterval: 10)
            let x = p.inputs(seed: 5)
            var rng = RandomGenerator(seed: 6)
            let dy = Tensor<Double>.randn([p.batch, p.length, p.channels], using: &rng)
            let dh = Tensor<Double>.randn([p.batch, p.channels, p.stateSize], using: &rng)
            let reference = x.map { $0.detached().requiringGrad() }
            let r = p.run(reference, fused: false)
            ((r[0] * dy).sum() + (r[1] * dh).sum()).backward()
            let single = x.map { $0.converted(to: Float.self).requiringGrad() }
            let s = p.run(single, fused: true)
            ((s[0] * dy.converted(to: Float.self)).sum() + (s[1] * dh.converted(to: Float.self)).sum()).backward()
            XCTAssertLessThan(GradientCheck.relativeError(s[0].data.map(Double.init), r[0].data), 1e-5)
            XCTAssertLessThan(GradientCheck.relativeError(s[1].data.map(Double.init), r[1].data), 1e-5)
            for (a, b) in zip(single, reference) {
                XCTAssertLessThan(GradientCheck.relativeError(a.grad!.map(Double.init), b.grad!), 1e-4, "input \(a.shape)")
            }
        }
    }

    /// An empty sequence gives empty outputs and a zero state, with no crash.
    func testEmptySequence() {
        var p = SelectiveScanProblem()
        p.length = 0
        let x = p.inputs(seed: 1).map { $0.requiringGrad() }
        let out = p.run(x, fused: true)
        XCTAssertEqual(out[0].shape, [2, 0, 5])
        XCTAssertEqual(out[1].data, [Double](repeating: 0, count: 2 * 5 * 4))
    }

    // MARK: finite differences

    func testFusedScanFiniteDifferences() {
        for check in MambaChecks.opChecks where !check.name.contains("==") {
            let r = check.run(false)
            XCTAssertTrue(r.passed, r.row)
        }
    }

    func testFusedFormsMatchTheirReferences() {
        for check in MambaChecks.opChecks where check.name.contains("==") {
            let r = check.run(false)
            XCTAssertTrue(r.passed, r.row)
        }
    }

    /// The layer check in full: Float64 gradients of the block (input and every parameter) and step == parallel
    /// (L = 1, 7, 33 in Float64, 17 in Float32), with default options and with negative eigenvalues, a small odd
    /// state, d_conv 3 and checkpoint interval 3.
    func testBlockGradientsAndStepMode() throws {
        let results = try LayerCheck.run("mamba", quick: false)
        XCTAssertEqual(results.count, 10)
        for r in results { XCTAssertTrue(r.passed, r.row) }
    }

    // MARK: step mode

    func testStepReproducesParallelOverALongerSequence() throws {
        for options in [LayerOptions(["d_state": "8"]), LayerOptions(["negative_eigenvalues": "true", "d_conv": "1"])] {
            let layer: any SequenceLayer<Double> = try LayerRegistry.make("mamba", dModel: 12, options: options, seed: 3)
            var rng = RandomGenerator(seed: 4)
            let x = Tensor<Double>.randn([3, 80, 12], using: &rng)
            let (parallel, stepped) = Tape.withoutGradients { (layer(x), layer.stepThrough(x)) }
            XCTAssertLessThan(GradientCheck.relativeError(stepped.data, parallel.data), 1e-9, "\(options)")
        }
    }

    func testStepStateHasConstantSize() throws {
        var rng = RandomGenerator(seed: 1)
        let layer = MambaBlock<Float>(dModel: 8, rng: &rng)
        var state = layer.initialState(batchSize: 2)
        for _ in 0..<5 { _ = layer.step(Tensor<Float>.randn([2, 8], using: &rng), state: &state) }
        XCTAssertEqual(state.convolution.shape, [2, 3, 16])
        XCTAssertEqual(state.ssm.shape, [2, 16, 16])
        XCTAssertEqual(layer.stateSize(sequenceLength: 1000), 16 * 16)
    }

    // MARK: long sequences

    /// L = 16384 with tiny dt (delta ~ -9: dt ~ 1e-4, the state barely decays) and large dt (delta ~ +7: dA ~ 0):
    /// outputs and all gradients stay finite in Float32, and agree with the Float64 scan.
    func testLongSequencesStayFinite() {
        for offset in [-8.0, 8.0] {
            var p = SelectiveScanProblem()
            (p.batch, p.length, p.channels, p.stateSize, p.deltaOffset) = (1, 16384, 4, 4, offset)
            p.tiling = SelectiveScanTiling()
            let x64 = p.inputs(seed: 9).map { $0.requiringGrad() }
            let x32 = x64.map { $0.converted(to: Float.self).requiringGrad() }
            let out64 = p.run(x64, fused: true), out32 = p.run(x32, fused: true)
            (out64[0].sum() + out64[1].sum()).backward()
            (out32[0].sum() + out32[1].sum()).backward()
            for t in out32 { XCTAssertTrue(t.data.allSatisfy(\.isFinite), "offset \(offset): output") }
            for t in x32 { XCTAssertTrue(t.grad!.allSatisfy(\.isFinite), "offset \(offset): gradient of \(t.shape)") }
            XCTAssertLessThan(GradientCheck.relativeError(out32[0].data.map(Double.init), out64[0].data), 1e-4)
            for (a, b) in zip(x32, x64) {
                XCTAssertLessThan(GradientCheck.relativeError(a.grad!.map(Double.init), b.grad!), 2e-3, "offset \(offset)")
            }
        }
    }

    // MARK: seqlab op selective_scan

    func testSeqlabOpWritesOutputsAndGradients() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mamba-op-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var p = SelectiveScanProblem()
        (p.length, p.withBias, p.negativeEigenvalues) = (13, false, true)
        let x = p.inputs(seed: 2)
        var rng = RandomGenerator(seed: 3)
        let gy = Tensor<Double>.randn([2, 13, 5], using: &rng), gh = Tensor<Double>.randn([2, 5, 4], using: &rng)
        var file = SafeTensors(metadata: ["negative_eigenvalues": "true"])
        for (name, t) in zip(["u", "delta", "A", "Bs", "Cs", "Dskip", "z"], x) { file.set(name, t) }
        file.set("grad_y", gy)
        file.set("grad_hT", gh)
        let (input, output) = (directory.appendingPathComponent("in.safetensors"), directory.appendingPathComponent("out.safetensors"))
        try file.write(to: input)
        try KernelRegistry.run("selective_scan", input: input, output: output)
        let out = try SafeTensors.read(from: output)
        XCTAssertEqual(Set(out.names), ["y", "hT", "grad_u", "grad_delta", "grad_A", "grad_Bs", "grad_Cs", "grad_Dskip", "grad_z"])
        XCTAssertEqual(try out.tensor("hT", as: Double.self).shape, [2, 5, 4])

        let leaves = x.map { $0.detached().requiringGrad() }
        let r = p.run(leaves, fused: false)
        ((r[0] * gy).sum() + (r[1] * gh).sum()).backward()
        XCTAssertLessThan(GradientCheck.relativeError(try out.tensor("y", as: Double.self).data, r[0].data), 1e-12)
        XCTAssertLessThan(GradientCheck.relativeError(try out.tensor("hT", as: Double.self).data, r[1].data), 1e-12)
        for (name, leaf) in zip(["u", "delta", "A", "Bs", "Cs", "Dskip", "z"], leaves) {
            XCTAssertLessThan(GradientCheck.relativeError(try out.tensor("grad_\(name)", as: Double.self).data, leaf.grad!), 1e-12, name)
        }

        var bad = file
        bad.set("Bs", Tensor<Double>.zeros([2, 13, 3]))
        try bad.write(to: input)
        XCTAssertThrowsError(try KernelRegistry.run("selective_scan", input: input, output: output)) { error in
            XCTAssertEqual("\(error)", "op selective_scan: Bs has shape [2, 13, 3], expected [2, 13, 4]")
        }
        var badOption = SafeTensors(metadata: ["delta_softplus": "maybe"])
        for (name, t) in zip(["u", "delta", "A", "Bs", "Cs"], x) { badOption.set(name, t) }
        try badOption.write(to: input)
        XCTAssertThrowsError(try KernelRegistry.run("selective_scan", input: input, output: output)) { error in
            XCTAssertEqual("\(error)", "op selective_scan: option delta_softplus: 'maybe' is not true or false")
        }
    }

    // MARK: the block

    func testInitialisationFollowsMamba() throws {
        var rng = RandomGenerator(seed: 0)
        let layer = MambaBlock<Double>(dModel: 40, rng: &rng)
        XCTAssertEqual([layer.dInner, layer.dState, layer.dConv, layer.dtRank], [80, 16, 4, 3])
        XCTAssertEqual(layer.aLog.shape, [80, 16])
        XCTAssertEqual(layer.aLog.data[16 * 7 + 4], Foundation.log(5), accuracy: 1e-15)  // A = -(n + 1)
        XCTAssertTrue(layer.skip.data.allSatisfy { $0 == 1 })
        let dt = layer.dtProj.bias!.data.map { Foundation.log1p(Foundation.exp($0)) }  // softplus(bias) = the initial dt
        XCTAssertTrue(dt.allSatisfy { $0 >= 1e-3 * (1 - 1e-9) && $0 <= 0.1 * (1 + 1e-9) }, "\(dt.min()!) ... \(dt.max()!)")
        XCTAssertTrue(layer.dtProj.weight.data.allSatisfy { Swift.abs($0) <= 1 / Foundation.sqrt(3.0) })
        let names = layer.parameters.map(\.name)
        XCTAssertEqual(names, ["in_proj.weight", "conv1d.weight", "conv1d.bias", "x_proj.weight", "dt_proj.weight",
                               "dt_proj.bias", "A_log", "D", "out_proj.weight"])
        // mamba_ssm's _no_weight_decay marks: the recurrence's own parameters (the trainer's no_decay roles decide)
        XCTAssertEqual(layer.parameters.filter { $0.tags.role == .ssm }.map(\.name), ["A_log", "D"])
        XCTAssertEqual(layer.parameters.first { $0.name == "x_proj.weight" }!.tensor.shape, [3 + 32, 80])

        // mamba_ssm's init divides out_proj by sqrt(depth) when asked; the depth comes from the model, not an option
        for (rescale, depth, factor) in [(true, 4, 0.5), (false, 4, 1.0), (true, 1, 1.0)] {
            var again = RandomGenerator(seed: 0)
            let options = try! LayerOptions(["rescale_prenorm_residual": "\(rescale)"]).resolved(against: MambaFactory.options, owner: "layer mamba")
            let scaled = MambaBlock<Double>(dModel: 40, configuration: try! MambaConfiguration(options, context: LayerContext(depth: depth)), rng: &again)
            XCTAssertEqual(scaled.outProj.weight.data[17], layer.outProj.weight.data[17] * factor, accuracy: 1e-15)
        }
    }

    func testOptionsAreValidated() {
        let cases: [([String: String], String)] = [
            (["dt_rank": "x"], "layer mamba: option dt_rank: 'x' is not an integer or auto"),
            (["d_state": "0"], "layer mamba: option d_state: '0' must be at least 1"),
            (["dt_min": "0.5", "dt_max": "0.1"], "layer mamba: needs dt_min <= dt_max, got 0.5, 0.1"),
            (["negative_eigenvalues": "sometimes"], "layer mamba: option negative_eigenvalues: 'sometimes' is not true or false"),
            (["n_layers": "2"], "layer mamba: unknown option 'n_layers' (options: d_state, expand, d_conv, dt_rank, dt_min, dt_max, "
                + "dt_init_floor, negative_eigenvalues, rescale_prenorm_residual, checkpoint_interval)"),
        ]
        for (values, message) in cases {
            XCTAssertThrowsError(try LayerRegistry.make("mamba", dModel: 8, options: LayerOptions(values), as: Float.self)) { error in
                XCTAssertEqual("\(error)", message)
            }
        }
        XCTAssertNoThrow(try LayerRegistry.make("mamba", dModel: 8, options: LayerOptions(["dt_rank": "2", "expand": "1"]), as: Float.self))
    }

    /// The checkpoints hold the state every C steps only: O(B D N L / C) scalars.
    func testCheckpointGeometry() {
        let g = ScanGeometry(batch: 2, length: 1000, channels: 300, stateSize: 16, tiling: SelectiveScanTiling(channelBlock: 128, checkpointInterval: 32))
        XCTAssertEqual(g.chunks, 32)
        XCTAssertLessThanOrEqual(g.blockWidth, 128)
        XCTAssertEqual(g.blocks, (300 + g.blockWidth - 1) / g.blockWidth)
        XCTAssertEqual(g.channels(ofBlock: g.blocks - 1).upperBound, 300)
    }
}
