import CKernels
import ComplexModule
import Foundation
import XCTest
@testable import Layers
@testable import Tensors

/// S4 and S4D: the NPLR decomposition, both kernels against their slow forms, convolution == recurrence,
/// the length-doubling C-tilde correction, the layer checks and `seqlab op`.
final class S4Tests: XCTestCase {
    // MARK: - HiPPO and NPLR

    func testNPLRReconstructsHiPPOLegS() {
        for n in [4, 8, 64] {
            let (a, _) = HiPPO.legS(n)
            let nplr = NPLRDecomposition.legS(stateSize: n)
            let p = HiPPO.legSRankCorrection(n)
            // A = V Lambda V^* + conj(V Lambda V^*) - P P^T (both conjugate halves), and = V (Lambda - P~ P~^*) V^* in the full basis.
            let vlv = nplr.vectors * ComplexMatrix.diagonal(nplr.lambda) * nplr.vectors.adjoint
            var worst = 0.0, worstFull = 0.0
            let full = ComplexMatrix(rows: n, columns: n) { i, j in j < n / 2 ? nplr.vectors[i, j] : nplr.vectors[i, j - n / 2].conjugate }
            let pTilde = withConjugates(nplr.p)
            let inner = ComplexMatrix.diagonal(withConjugates(nplr.lambda)) - ComplexMatrix.outer(pTilde, pTilde)
            let reconstructed = full * inner * full.adjoint
            for i in 0..<n {
                for j in 0..<n {
                    let value = vlv[i, j] + vlv[i, j].conjugate - Complex64(p[i] * p[j])
                    worst = max(worst, (value - Complex64(a[i][j])).length)
                    worstFull = max(worstFull, (reconstructed[i, j] - Complex64(a[i][j])).length)
                }
            }
            XCTAssertLessThan(worst, 1e-10, "N = \(n): V Lambda V^* - P P^* vs A")
            XCTAssertLessThan(worstFull, 1e-10, "N = \(n): V (Lambda - P P^*) V^* vs A")
            XCTAssertTrue(nplr.lambda.allSatisfy { $0.real == -0.5 && $0.imaginary < 0 })
            // B <- V^* B: the full basis recovers B.
            let b = full.multiplied(by: withConjugates(nplr.b))
            for i in 0..<n { XCTAssertEqual(b[i].real, Double(2 * i + 1).squareRoot(), accuracy: 1e-10) }
        }
    }

    // MARK: - Kernels against their slow forms

    /// The Cauchy kernel equals C Abar^l Bbar from the dense discretised system, C recovered from C-tilde.
    func testCauchyKernelMatchesDenseMatrixPowers() {
        for (modes, length) in [(4, 16), (4, 7), (3, 1), (8, 40)] {
            let x = S4KernelInputs.dplr(channels: 3, modes: modes, seed: UInt64(length))
            let k = s4DPLRKernel(logDt: x[0], lambdaRe: x[1], lambdaIm: x[2], pRe: x[3], pIm: x[4], bRe: x[5], bIm: x[6],
                                 cRe: x[7], cIm: x[8], length: length)
            var dense: [Double] = []
            for h in 0..<3 {
                func complex(_ re: Tensor<Double>, _ im: Tensor<Double>) -> [Complex64] {
                    (0..<modes).map { Complex64(re.data[h * modes + $0], im.data[h * modes + $0]) }
                }
                let system = DenseDPLRSystem(lambda: complex(x[1], x[2]), p: complex(x[3], x[4]), b: complex(x[5], x[6]),
                                             dt: Foundation.exp(x[0].data[h])).bilinear()
                let c = system.c(fromCTilde: complex(x[7], x[8]), length: length)
                dense += system.kernel(c: c, length: length)
            }
            XCTAssertLessThan(GradientCheck.relativeError(k.data, dense), 1e-9, "N/2 = \(modes), L = \(length)")
        }
    }

    /// The Float32 Cauchy kernel (CKernels: sums forward, adjoint backward) under every instruction set this CPU
    /// supports agrees with the Float64 kernel: output and the gradient of every input, at node counts with tails.
    func testFloat32CauchyKernelUnderEveryInstructionSet() {
        let original = String(cString: sl_isa_name())
        defer { XCTAssertEqual(sl_isa_select(original), 0) }
        for (modes, length) in [(5, 37), (16, 256)] {
            let x64 = S4KernelInputs.dplr(channels: 3, modes: modes, seed: UInt64(modes)).map { $0.detached().requiringGrad() }
            var rng = RandomGenerator(seed: 3)
            let cot = Tensor<Double>.randn([3, length], using: &rng)
            let k64 = s4DPLRKernel(logDt: x64[0], lambdaRe: x64[1], lambdaIm: x64[2], pRe: x64[3], pIm: x64[4], bRe: x64[5],
                                   bIm: x64[6], cRe: x64[7], cIm: x64[8], length: length)
            k64.backward(seed: cot.data)
            for isa in ["baseline", "avx2", "avx512"] where sl_isa_supported(isa) != 0 {
                XCTAssertEqual(sl_isa_select(isa), 0)
                let x32 = x64.map { $0.detached().converted(to: Float.self).requiringGrad() }
                let k32 = s4DPLRKernel(logDt: x32[0], lambdaRe: x32[1], lambdaIm: x32[2], pRe: x32[3], pIm: x32[4], bRe: x32[5],
                                       bIm: x32[6], cRe: x32[7], cIm: x32[8], length: length)
                k32.backward(seed: cot.converted(to: Float.self).data)
                XCTAssertLessThan(GradientCheck.relativeError(k32.data.map(Double.init), k64.data), 1e-4, "\(isa) K, N/2 = \(modes)")
                for i in 0..<9 {
                    XCTAssertLessThan(GradientCheck.relativeError(x32[i].grad!.map(Double.init), x64[i].grad!), 1e-3,
                                      "\(isa) input \(i), N/2 = \(modes)")
                }
            }
        }
    }

    /// The Vandermonde kernel equals the explicit ZOH sum 2 Re sum_n C_n (e^{dt A_n} - 1)/A_n e^{dt A_n l}.
    func testVandermondeKernelMatchesExplicitZOHSum() {
        for length in [1, 7, 64, 1000] {
            let x = S4KernelInputs.diagonal(channels: 2, modes: 5, seed: UInt64(length))
            let k = s4dKernel(logDt: x[0], aRe: x[1], aIm: x[2], cRe: x[3], cIm: x[4], length: length)
            var explicit = [Double](repeating: 0, count: 2 * length)
            for h in 0..<2 {
                let dt = Foundation.exp(x[0].data[h])
                for n in 0..<5 {
                    let j = h * 5 + n
                    let a = Complex64(x[1].data[j], x[2].data[j]), c = Complex64(x[3].data[j], x[4].data[j])
                    let coef = c * (Complex64.exp(Complex64(dt) * a) - .one) / a
                    for l in 0..<length {
                        explicit[h * length + l] += 2 * (coef * Complex64.exp(Complex64(dt * Double(l)) * a)).real
                    }
                }
            }
            XCTAssertLessThan(GradientCheck.relativeError(k.data, explicit), 1e-11, "L = \(length)")
        }
    }

    /// Every op check of the family: finite differences of both kernels, GLU, the bidirectional convolution, and
    /// fast == reference (outputs and gradients).
    func testOpChecksPass() {
        for check in S4Checks.opChecks {
            let r = check.run(true)
            XCTAssertTrue(r.passed, r.row)
        }
    }

    // MARK: - Layers

    /// The parallel (convolution) form equals the recurrence, for S4 and S4D, at lengths 1, 7, 64, 1000.
    func testConvolutionEqualsRecurrence() throws {
        let layers: [(String, LayerOptions)] = [
            ("s4", LayerOptions(["d_state": "8", "l_max": "16"])),  // L = 64, 1000 double the kernel length on the way
            ("s4d", LayerOptions(["d_state": "8"])),
            ("s4d", LayerOptions(["d_state": "6", "init": "inv", "disc": "bilinear"])),
        ]
        var rng = RandomGenerator(seed: 3)
        for (name, options) in layers {
            let layer: any SequenceLayer<Double> = try LayerRegistry.make(name, dModel: 3, options: options, seed: 1)
            for length in [1, 7, 64, 1000] {
                let x = Tensor<Double>.randn([1, length, 3], using: &rng)
                let (parallel, stepped) = Tape.withoutGradients { (layer(x), layer.stepThrough(x)) }
                XCTAssertLessThan(GradientCheck.relativeError(stepped.data, parallel.data), 1e-9, "\(name) \(options.values), L = \(length)")
            }
        }
    }

    /// S4 section 3.3: C-tilde belongs to a length. Doubling L with C-tilde <- C-tilde (I + Abar^L) keeps the SSM (the
    /// first L taps are unchanged and the 2L taps are C Abar^l Bbar); reusing the old C-tilde at 2L does not.
    func testDoubledLengthCorrectsCTilde() {
        var rng = RandomGenerator(seed: 9)
        let ssm = DPLRSSM<Double>(channels: 2, stateSize: 8, tiedSSMs: 2, dtMin: 0.01, dtMax: 0.1, directions: 1,
                                  kernelLength: 16, learningRate: 1e-3, rng: &rng)
        let short = ssm.kernel(length: 16, direction: 0).data
        let c = (0..<2).map { ssm.discreteSystem(channel: $0).c(fromCTilde: ssm.cTilde(channel: $0, direction: 0), length: 16) }
        let uncorrected = Tape.withoutGradients { () -> [Double] in  // the old C-tilde, evaluated at 2L
            let (p, b, c) = (complexParts(ssm.p, shape: [2, 4]), complexParts(ssm.b, shape: [2, 4]), complexParts(ssm.c, shape: [2, 4]))
            return s4DPLRKernel(logDt: ssm.invDt.reshaped([2]), lambdaRe: ssm.aReal.exp() * -1.0, lambdaIm: ssm.aImag * -1.0,
                                pRe: p.re, pIm: p.im, bRe: b.re, bIm: b.im, cRe: c.re, cIm: c.im, length: 32).data
        }
        let long = ssm.kernel(length: 32, direction: 0).data  // doubles
        XCTAssertEqual(ssm.kernelLength, 32)
        var dense: [Double] = []
        for h in 0..<2 { dense += ssm.discreteSystem(channel: h).kernel(c: c[h], length: 32) }
        XCTAssertLessThan(GradientCheck.relativeError(long, dense), 1e-9, "corrected 2L kernel vs C Abar^l Bbar")
        let firstHalf = (0..<2).flatMap { h in long[(h * 32)..<(h * 32 + 16)] }
        XCTAssertLessThan(GradientCheck.relativeError(firstHalf, short), 1e-9, "the first L taps are unchanged")
        XCTAssertGreaterThan(GradientCheck.relativeError(uncorrected, dense), 1e-2, "without the correction the kernel is another one")
        // A shorter input reads the first taps of the kernel at the current length.
        let prefix = ssm.kernel(length: 5, direction: 0).data
        XCTAssertLessThan(GradientCheck.relativeError(prefix, (0..<2).flatMap { h in long[(h * 32)..<(h * 32 + 5)] }), 1e-12)
    }

    /// The kernel length C-tilde belongs to is the buffer `layer.kernel.l_kernel` (s4.py's): copying parameters and
    /// buffers by name into a fresh layer after a doubling reproduces the layer (what loading a checkpoint does); a
    /// raw C loaded with l_kernel = 0 (a reference module before its first forward) is set up for l_max on load.
    func testKernelLengthTravelsWithTheBuffers() throws {
        let options = LayerOptions(["d_state": "8", "l_max": "8"])
        let trained: any SequenceLayer<Double> = try LayerRegistry.make("s4", dModel: 3, options: options, seed: 1)
        var rng = RandomGenerator(seed: 2)
        let x = Tensor<Double>.randn([1, 20, 3], using: &rng)
        let before = Tape.withoutGradients { trained(x) }.data  // doubles 8 -> 16 -> 32
        let restored: any SequenceLayer<Double> = try LayerRegistry.make("s4", dModel: 3, options: options, seed: 7)
        func state(_ layer: any SequenceLayer<Double>) -> [String: Tensor<Double>] {
            Dictionary(uniqueKeysWithValues: layer.parameters.map { ($0.name, $0.tensor) } + layer.buffers.map { ($0.name, $0.tensor) })
        }
        let source = state(trained)
        XCTAssertEqual(trained.buffers.map(\.name), ["layer.kernel.l_kernel"])
        XCTAssertNil(trained.parameters.parameter(named: "layer.kernel.l_kernel"))
        XCTAssertEqual(source["layer.kernel.l_kernel"]?.shape, [])
        XCTAssertEqual(source["layer.kernel.l_kernel"]?.data, [32])
        for (name, tensor) in state(restored) { tensor.data = source[name]!.data }
        restored.stateDidLoad()
        XCTAssertLessThan(GradientCheck.relativeError(Tape.withoutGradients { restored(x) }.data, before), 1e-12)

        // Raw C (l_kernel = 0): C-tilde = C (I - Abar^8) at load, l_kernel 8.
        let fresh: any SequenceLayer<Double> = try LayerRegistry.make("s4", dModel: 3, options: options, seed: 1)
        let ssm = try XCTUnwrap((fresh as? S4Block<Double>)?.ssm as? DPLRSSM<Double>)
        let expected = ssm.c.data
        let raw = (0..<3).flatMap { h in
            ssm.discreteSystem(channel: h).c(fromCTilde: ssm.cTilde(channel: h, direction: 0), length: 8).prefix(4)
                .flatMap { [$0.real, $0.imaginary] }
        }
        ssm.c.data = raw
        ssm.lKernel.data = [0]
        fresh.stateDidLoad()
        XCTAssertEqual(ssm.kernelLength, 8)
        XCTAssertLessThan(GradientCheck.relativeError(ssm.c.data, expected), 1e-12)
    }

    /// Names and shapes are s4.py's S4Block and s4d.py's S4D state_dict keys and layouts; with lr = 0 the SSM tensors
    /// are buffers (s4: also C; s4d: C stays trained), as in the references.
    func testParameterNamesAndShapesAreTheReferences() throws {
        func layout(_ name: String, _ options: [String: String]) throws -> (params: [String: [Int]], buffers: [String: [Int]]) {
            let layer: any SequenceLayer<Float> = try LayerRegistry.make(name, dModel: 4, options: LayerOptions(options))
            layer.parameters.checkUniqueNames()
            return (Dictionary(uniqueKeysWithValues: layer.parameters.map { ($0.name, $0.tensor.shape) }),
                    Dictionary(uniqueKeysWithValues: layer.buffers.map { ($0.name, $0.tensor.shape) }))
        }
        let s4 = try layout("s4", ["d_state": "8", "n_ssm": "2", "bidirectional": "true"])
        XCTAssertEqual(s4.params, ["layer.kernel.inv_dt": [4, 1], "layer.kernel.A_real": [2, 4], "layer.kernel.A_imag": [2, 4],
                                   "layer.kernel.P": [1, 2, 4, 2], "layer.kernel.B": [1, 2, 4, 2], "layer.kernel.C": [2, 4, 4, 2],
                                   "layer.D": [1, 4], "output_linear.0.weight": [8, 4], "output_linear.0.bias": [8]])
        XCTAssertEqual(s4.buffers, ["layer.kernel.l_kernel": []])
        let s4Frozen = try layout("s4", ["d_state": "8", "lr": "0"])
        XCTAssertEqual(Set(s4Frozen.params.keys), ["layer.D", "output_linear.0.weight", "output_linear.0.bias"])
        XCTAssertEqual(Set(s4Frozen.buffers.keys), Set(["inv_dt", "A_real", "A_imag", "P", "B", "C", "l_kernel"].map { "layer.kernel." + $0 }))
        let s4d = try layout("s4d", ["d_state": "8"])
        XCTAssertEqual(s4d.params, ["kernel.log_dt": [4], "kernel.log_A_real": [4, 4], "kernel.A_imag": [4, 4], "kernel.C": [4, 4, 2],
                                    "D": [4], "output_linear.0.weight": [8, 4, 1], "output_linear.0.bias": [8]])
        XCTAssertEqual(s4d.buffers, [:])
        let s4dFrozen = try layout("s4d", ["d_state": "8", "lr": "0"])
        XCTAssertEqual(Set(s4dFrozen.params.keys), ["kernel.C", "D", "output_linear.0.weight", "output_linear.0.bias"])
        XCTAssertEqual(Set(s4dFrozen.buffers.keys), ["kernel.log_dt", "kernel.log_A_real", "kernel.A_imag"])
    }

    /// s4.py's init: A_imag = -Im Lambda > 0, Im B clipped to [-2, 2] (B_clip); s4d.py's S4D-Lin: A_imag = +pi n.
    func testInitialisationFollowsTheReferences() throws {
        var rng = RandomGenerator(seed: 1)
        let ssm = DPLRSSM<Double>(channels: 2, stateSize: 64, tiedSSMs: 1, dtMin: 0.001, dtMax: 0.1, directions: 1,
                                  kernelLength: 16, learningRate: 1e-3, rng: &rng)
        XCTAssertTrue(ssm.aImag.data.allSatisfy { $0 > 0 })
        XCTAssertEqual(ssm.aImag.data[0], 1303.27, accuracy: 0.01)
        let bIm = complexValues(ssm.b, from: 0, count: 32).map(\.imaginary)
        XCTAssertEqual(bIm.filter { abs($0) == 2 }.count, 11)
        XCTAssertTrue(bIm.allSatisfy { abs($0) <= 2 })
        XCTAssertEqual(S4DInitialization.lin.diagonal(stateSize: 8).map(\.imaginary), (0..<4).map { Double.pi * Double($0) })
    }

    /// The references' dropouts: s4d.py one DropoutNd mask per (b, h) after GELU (tied over L); s4.py nn.Dropout
    /// before and after GELU (elementwise). With H = 1, W = [1, 0] and no bias the block returns GELU(v) / 2 (times the
    /// masks), so training / eval is the mask itself: constant over t for s4d, varying over t for s4.
    func testDropoutFollowsTheReferences() throws {
        var rng = RandomGenerator(seed: 5)
        let x = Tensor<Double>.randn([4, 16, 1], using: &rng)
        for name in ["s4", "s4d"] {
            let layer = try XCTUnwrap(try LayerRegistry.make(name, dModel: 1, options: LayerOptions(["d_state": "4", "dropout": "0.5"]),
                                                             seed: 1, as: Double.self) as? S4Block<Double>)
            layer.outputWeight.data = [1, 0]
            layer.outputBias.data = [0, 0]
            layer.isTraining = false
            let eval = Tape.withoutGradients { layer(x) }.data
            layer.isTraining = true
            let train = Tape.withoutGradients { layer(x) }.data
            var tiedRows = 0
            for b in 0..<4 {
                let ratios = (0..<16).map { train[b * 16 + $0] / eval[b * 16 + $0] }
                if ratios.allSatisfy({ abs($0 - ratios[0]) < 1e-12 }) { tiedRows += 1 }
                if name == "s4d" { XCTAssertTrue(abs(ratios[0]) < 1e-12 || abs(ratios[0] - 2) < 1e-12, "\(ratios[0])") }
            }
            XCTAssertEqual(tiedRows, name == "s4d" ? 4 : 0, name)
        }
    }

    func testLayerChecksPass() throws {
        for name in ["s4", "s4d"] {
            let results = try LayerCheck.run(name, quick: true)
            XCTAssertGreaterThanOrEqual(results.count, 4)
            for r in results { XCTAssertTrue(r.passed, r.row) }
        }
    }

    func testBidirectionalHasNoStepAndTagsSSMParameters() throws {
        let bi: any SequenceLayer<Float> = try LayerRegistry.make("s4", dModel: 4, options: LayerOptions(["bidirectional": "true", "d_state": "4", "l_max": "8"]))
        XCTAssertFalse(bi.supportsStep)
        XCTAssertEqual(bi(Tensor<Float>.zeros([2, 5, 4])).shape, [2, 5, 4])
        let s4d: any SequenceLayer<Float> = try LayerRegistry.make("s4d", dModel: 4, options: LayerOptions(["n_ssm": "2", "lr": "0.002"]))
        XCTAssertTrue(s4d.supportsStep)
        XCTAssertEqual(s4d.stateSize(sequenceLength: 100), 4 * 64)
        let byName = Dictionary(uniqueKeysWithValues: s4d.parameters.map { ($0.name, $0) })
        for name in ["log_dt", "log_A_real", "A_imag"] {
            XCTAssertEqual(byName["kernel." + name]?.tags, ParameterTags(role: .ssm, learningRate: 0.002), name)
        }
        XCTAssertEqual(byName["kernel.A_imag"]?.tensor.shape, [2, 32])
        XCTAssertEqual(byName["kernel.C"]?.tags, ParameterTags())
        let s4: any SequenceLayer<Float> = try LayerRegistry.make("s4", dModel: 4, options: LayerOptions(["d_state": "4", "lr": "0.002"]))
        let s4Tags = Dictionary(uniqueKeysWithValues: s4.parameters.map { ($0.name, $0.tags) })
        XCTAssertEqual(s4Tags["layer.kernel.B"], ParameterTags(role: .ssm, learningRate: 0.002))
        XCTAssertEqual(s4Tags["layer.kernel.C"], ParameterTags(role: .weight, learningRate: 0.002))  // s4.py: lr, decayed
        XCTAssertEqual(s4Tags["layer.D"], ParameterTags())
        s4d.parameters.checkUniqueNames()
        XCTAssertThrowsError(try LayerRegistry.make("s4", dModel: 6, options: LayerOptions(["n_ssm": "4"]), as: Float.self)) { error in
            XCTAssertTrue("\(error)".contains("n_ssm 4 must divide d_model 6"))
        }
        XCTAssertThrowsError(try LayerRegistry.make("s4d", dModel: 4, options: LayerOptions(["init": "legs"]), as: Float.self))
    }

    // MARK: - seqlab op

    func testSeqlabOpEvaluatesBothKernelsWithGradients() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("seqlab-s4-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let (input, output) = (directory.appendingPathComponent("in.safetensors"), directory.appendingPathComponent("out.safetensors"))
        var rng = RandomGenerator(seed: 4)
        let cases: [(String, [String], [Tensor<Double>])] = [
            ("s4_dplr_kernel", ["log_dt"] + S4DPLRKernelOp.complexInputs, S4KernelInputs.dplr(channels: 2, modes: 3, seed: 1)),
            ("s4d_kernel", ["log_dt", "A_re", "A_im", "C_re", "C_im"], S4KernelInputs.diagonal(channels: 2, modes: 3, seed: 2)),
        ]
        for (op, names, values) in cases {
            var file = SafeTensors(metadata: ["L": "12"])
            for (n, t) in zip(names, values) { file.set(n, t) }
            let cotangent = Tensor<Double>.randn([2, 12], using: &rng)
            file.set("grad_K", cotangent)
            try file.write(to: input)
            try KernelRegistry.run(op, input: input, output: output)
            let out = try SafeTensors.read(from: output)
            XCTAssertEqual(Set(out.names), Set(["K"] + names.map { "grad_\($0)" }))
            let leaves = values.map { $0.detached().requiringGrad() }
            let k = op == "s4d_kernel"
                ? S4Checks.diagonalKernel(leaves, length: 12, discretization: .zoh, fast: true)
                : S4Checks.dplrKernel(leaves, length: 12, fast: true)
            k.backward(seed: cotangent.data)
            XCTAssertLessThan(GradientCheck.relativeError(try out.tensor("K", as: Double.self).data, k.data), 1e-14)
            for (n, leaf) in zip(names, leaves) {
                XCTAssertLessThan(GradientCheck.relativeError(try out.tensor("grad_\(n)", as: Double.self).data, leaf.grad!), 1e-14, n)
            }
            // Bad input: no L, a wrong shape.
            var bad = SafeTensors()
            for (n, t) in zip(names, values) { bad.set(n, t) }
            try bad.write(to: input)
            XCTAssertThrowsError(try KernelRegistry.run(op, input: input, output: output)) { XCTAssertEqual("\($0)", "op \(op): option L must be given (kernel length)") }
            bad = SafeTensors(metadata: ["L": "5"])
            for (n, t) in zip(names, values) { bad.set(n, n == "C_im" ? Tensor<Double>.zeros([2, 4]) : t) }
            try bad.write(to: input)
            XCTAssertThrowsError(try KernelRegistry.run(op, input: input, output: output)) { XCTAssertTrue("\($0)".contains("C_im has shape [2, 4], expected [2, 3]")) }
        }
    }
}

/// The Float32 fast paths of the block's activations against Float64 libm.
final class S4ActivationAccuracyTests: XCTestCase {
    func testVectorisedExpAndGELUAreAccurateInFloat32() {
        var worstExp = 0.0, worstGELU = 0.0, worstSlope = 0.0
        for i in 0...200_000 {
            let x = Double(Float(-10 + 20 * Double(i) / 200_000))  // exactly representable in Float
            let e = Double(vectorExp(Float(x)))
            worstExp = max(worstExp, abs(e - Foundation.exp(x)) / Foundation.exp(x))
            let (y, d) = vectorGELU(Float(x))
            let cdf = (1 + Foundation.erf(x / 2.0.squareRoot())) / 2
            worstGELU = max(worstGELU, abs(Double(y) - x * cdf) / max(1, abs(x)))
            worstSlope = max(worstSlope, abs(Double(d) - (cdf + x * Foundation.exp(-x * x / 2) / (2 * Double.pi).squareRoot())))
        }
        XCTAssertLessThan(worstExp, 3e-7)
        XCTAssertLessThan(worstGELU, 3e-7)
        XCTAssertLessThan(worstSlope, 1e-6)
        XCTAssertEqual(vectorExp(-200), 0, accuracy: 1e-37)
        XCTAssertTrue(vectorExp(200).isFinite)
    }
}
