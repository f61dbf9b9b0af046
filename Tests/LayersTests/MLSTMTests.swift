import Foundation
import XCTest
@testable import Layers
@testable import Tensors

/// The mLSTM: the chunked form against xlstm's quadratic parallel form written out from its formula (the stabiliser
/// is the row maximum, so even the eps term agrees), the stabiliser against the row maximum, the carried state, the
/// op's contract.
final class MLSTMTests: XCTestCase {
    /// xlstm's `parallel_stabilized_simple` for one batch member and head, in plain loops: log D_tj = F_t - F_j + i_j
    /// (j <= t), m_t = max_j log D_tj, C_tj = (q_t . k_j / sqrt E) e^{log D_tj - m_t},
    /// h_t = sum_j C_tj v_j / (max(|sum_j C_tj|, e^{-m_t}) + eps). Returns (h [L, E], m [L]).
    func parallelForm(q: [Double], k: [Double], v: [Double], i: [Double], f: [Double], length l: Int, dim e: Int, eps: Double) -> ([Double], [Double]) {
        var cumulative = [Double](repeating: 0, count: l + 1)
        for t in 0..<l { cumulative[t + 1] = cumulative[t] + (-log1p(exp(-f[t]))) }   // logsigmoid, f moderate here
        var h = [Double](repeating: 0, count: l * e), m = [Double](repeating: 0, count: l)
        for t in 0..<l {
            let logD = (0...t).map { j in cumulative[t + 1] - cumulative[j + 1] + i[j] }
            m[t] = logD.max()!
            var sum = 0.0, out = [Double](repeating: 0, count: e)
            for j in 0...t {
                var dot = 0.0
                for c in 0..<e { dot += q[t * e + c] * k[j * e + c] }
                let w = dot / Double(e).squareRoot() * exp(logD[j] - m[t])
                sum += w
                for c in 0..<e { out[c] += w * v[j * e + c] }
            }
            let den = max(abs(sum), exp(-m[t])) + eps
            for c in 0..<e { h[t * e + c] = out[c] / den }
        }
        return (h, m)
    }

    func testChunkedEqualsXLSTMParallelFormIncludingTheEpsTerm() {
        let (b, h, e) = (2, 3, 5)
        for (length, chunk, gateScale, eps) in [(1, 64, 1.0, 1e-6), (37, 8, 1.0, 1e-6), (70, 64, 4.0, 1e-6), (29, 4, 1.0, 0.3), (50, 16, 6.0, 0.3)] {
            var rng = RandomGenerator(seed: UInt64(length))
            let q = Tensor<Double>.randn([b, length, h, e], using: &rng), k = Tensor<Double>.randn([b, length, h, e], using: &rng)
            let v = Tensor<Double>.randn([b, length, h, e], using: &rng)
            let i = Tensor<Double>.randn([b, length, h], std: gateScale, using: &rng)
            let f = Tensor<Double>.randn([b, length, h], std: gateScale, using: &rng) + 2
            let (out, state) = matrixLSTM(q: q, k: k, v: v, inputGates: i, forgetGates: f, eps: eps, chunkSize: chunk)
            var worst = 0.0, worstM = 0.0
            for bi in 0..<b {
                for hi in 0..<h {
                    func series(_ t: Tensor<Double>, _ width: Int) -> [Double] {
                        (0..<length).flatMap { s in (0..<width).map { c in t.data[((bi * length + s) * h + hi) * width + c] } }
                    }
                    let (ref, m) = parallelForm(q: series(q, e), k: series(k, e), v: series(v, e), i: series(i, 1), f: series(f, 1),
                                                length: length, dim: e, eps: eps)
                    let got = series(out, e)
                    let scale = ref.map(abs).max()!
                    worst = max(worst, zip(got, ref).map { abs($0 - $1) }.max()! / scale)
                    worstM = max(worstM, abs(state.stabilizer.data[bi * h + hi] - m[length - 1]) / max(1, abs(m[length - 1])))
                }
            }
            XCTAssertLessThan(worst, 1e-12, "h, L \(length), chunk \(chunk), gates x\(gateScale), eps \(eps)")
            XCTAssertLessThan(worstM, 1e-13, "final m is the last row's maximum, L \(length)")
        }
    }

    func testCarriedStateContinuesTheSequence() {
        let (b, l, h, e) = (1, 23, 2, 4)
        var rng = RandomGenerator(seed: 9)
        let x = (0..<3).map { _ in Tensor<Double>.randn([b, l, h, e], using: &rng) }
        let gates = (0..<2).map { _ in Tensor<Double>.randn([b, l, h], std: 3, using: &rng) }
        let (whole, wholeState) = matrixLSTM(q: x[0], k: x[1], v: x[2], inputGates: gates[0], forgetGates: gates[1], chunkSize: 4)
        let cut = 10
        func part(_ t: Tensor<Double>, _ r: Range<Int>) -> Tensor<Double> { t.slice(axis: 1, r) }
        let (first, mid) = matrixLSTM(q: part(x[0], 0..<cut), k: part(x[1], 0..<cut), v: part(x[2], 0..<cut),
                                      inputGates: part(gates[0], 0..<cut), forgetGates: part(gates[1], 0..<cut), chunkSize: 4)
        let (second, end) = matrixLSTM(q: part(x[0], cut..<l), k: part(x[1], cut..<l), v: part(x[2], cut..<l),
                                       inputGates: part(gates[0], cut..<l), forgetGates: part(gates[1], cut..<l), initialState: mid,
                                       chunkSize: 4)
        let joined = Tensor.concatenate([first, second], axis: 1)
        XCTAssertLessThan(GradientCheck.relativeError(joined.data, whole.data), 1e-13)
        XCTAssertLessThan(GradientCheck.relativeError(end.memory.data, wholeState.memory.data), 1e-13)
        XCTAssertEqual(end.stabilizer.data, wholeState.stabilizer.data)
    }

    func testEmptyStateStabiliserIsTheFirstInputGateAndGatesNeverExceedZero() {
        var rng = RandomGenerator(seed: 4)
        let lf = Tensor<Double>.randn([2, 9, 3], using: &rng).logSigmoid(), i = Tensor<Double>.randn([2, 9, 3], std: 5, using: &rng)
        let (m, a) = mlstmStabilizer(logForget: lf, inputGate: i, initial: nil)
        for r in 0..<(2 * 3) {
            let (bi, hi) = (r / 3, r % 3)
            XCTAssertEqual(m.data[(bi * 9) * 3 + hi], i.data[(bi * 9) * 3 + hi])
            XCTAssertEqual(a.data[(bi * 9) * 3 + hi], 0)
        }
        XCTAssertTrue(a.data.allSatisfy { $0 <= 0 })
    }

    func testOpRefusesPartialStateAndNonFiniteGates() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mlstm-op-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func run(_ tensors: [String: Tensor<Double>]) throws {
            var file = SafeTensors(metadata: [:])
            for (name, t) in tensors { file.set(name, t) }
            let input = dir.appendingPathComponent("in.safetensors")
            try file.write(to: input)
            try KernelRegistry.run("mlstm", input: input, output: dir.appendingPathComponent("out.safetensors"))
        }
        var rng = RandomGenerator(seed: 1)
        var x: [String: Tensor<Double>] = [:]
        for name in ["q", "k", "v"] { x[name] = Tensor.randn([1, 5, 2, 3], using: &rng) }
        for name in ["i", "f"] { x[name] = Tensor.randn([1, 5, 2], using: &rng) }
        try run(x)
        var partial = x
        partial["m0"] = Tensor.zeros([1, 2])
        XCTAssertThrowsError(try run(partial)) { XCTAssertTrue("\($0)".contains("C0, n0 and m0 together"), "\($0)") }
        var bad = x
        bad["i"]!.data[3] = .infinity
        XCTAssertThrowsError(try run(bad)) { XCTAssertTrue("\($0)".contains("must be finite"), "\($0)") }
    }

    /// Width multipliers are bounded where they are declared (1e300 once trapped in the width's Int conversion).
    func testWidthMultipliersAreBounded() {
        for (layer, key) in [("mlstm", "proj_factor"), ("retnet", "expand_k"), ("gla", "expand_v"), ("mamba2", "expand"), ("mamba", "expand")] {
            XCTAssertThrowsError(try LayerRegistry.resolvedOptions(layer, LayerOptions([key: "1e300"])), "\(layer) \(key)")
            XCTAssertNoThrow(try LayerRegistry.resolvedOptions(layer, LayerOptions([key: "2"])), "\(layer) \(key)")
        }
    }
}
