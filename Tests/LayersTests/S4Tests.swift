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
            s4DPLRKernel(logDt: ssm.logDt, lambdaRe: ssm.logLambdaReal.exp() * -1.0, lambdaIm: ssm.lambdaImag, pRe: ssm.pRe,
                         pIm: ssm.pIm, bRe: ssm.bRe, bIm: ssm.bIm, cRe: ssm.cRe, cIm: ssm.cIm, length: 32).data
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

    /// The kernel length C-tilde belongs to is a listed (frozen) parameter: copying the parameters by name into a
    /// fresh layer after a doubling reproduces the layer (what loading a checkpoint does).
    func testKernelLengthTravelsWithTheParameters() throws {
        let options = LayerOptions(["d_state": "8", "l_max": "8"])
        let trained: any SequenceLayer<Double> = try LayerRegistry.make("s4", dModel: 3, options: options, seed: 1)
        var rng = RandomGenerator(seed: 2)
        let x = Tensor<Double>.randn([1, 20, 3], using: &rng)
        let before = Tape.withoutGradients { trained(x) }.data  // doubles 8 -> 16 -> 32
        let restored: any SequenceLayer<Double> = try LayerRegistry.make("s4", dModel: 3, options: options, seed: 7)
        let source = Dictionary(uniqueKeysWithValues: trained.parameters.map { ($0.name, $0.tensor) })
        for p in restored.parameters { p.tensor.data = source[p.name]!.data }
        XCTAssertEqual(source["kernel_length"]?.data, [32])
        XCTAssertEqual(restored.parameters.first { $0.name == "kernel_length" }?.tags.learningRate, 0)
        XCTAssertLessThan(GradientCheck.relativeError(Tape.withoutGradients { restored(x) }.data, before), 1e-12)
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
            XCTAssertEqual(byName[name]?.tags, ParameterTags(weightDecay: false, learningRate: 0.002), name)
        }
        XCTAssertEqual(byName["A_imag"]?.tensor.shape, [2, 32])
        XCTAssertEqual(byName["C_re"]?.tags, ParameterTags())
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
            XCTAssertThrowsError(try KernelRegistry.run(op, input: input, output: output)) { XCTAssertTrue("\($0)".contains("missing option L")) }
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
