import CKernels
import Foundation
import XCTest
@testable import Tensors

/// The CKernels vector kernels under every instruction set this CPU supports (baseline SSE2, AVX2 + FMA, AVX-512),
/// each against a plain Float64 form: odd sizes, every tile and vector tail, -inf and NaN exponents.
final class InstructionSetTests: XCTestCase {
    /// Runs `body` once per supported instruction set (restoring the selection afterwards).
    private func forEachInstructionSet(_ body: (String) throws -> Void) rethrows {
        let original = String(cString: sl_isa_name())
        defer { XCTAssertEqual(sl_isa_select(original), 0) }
        let sets = ["baseline", "avx2", "avx512"].filter { (name: String) in sl_isa_supported(name) != 0 }
        XCTAssertTrue(sets.contains("baseline"))
        for name in sets {
            XCTAssertEqual(sl_isa_select(name), 0, name)
            XCTAssertEqual(String(cString: sl_isa_name()), name)
            try body(name)
        }
    }

    func testUnknownOrUnsupportedSetsAreRefused() {
        XCTAssertEqual(sl_isa_select("avx1024"), -1)
        XCTAssertEqual(sl_isa_supported("avx1024"), 0)
        XCTAssertEqual(sl_isa_supported("baseline"), 1)
    }

    func testSmallProductAtEveryTileAndTail() {
        var rng = RandomGenerator(seed: 21)
        // m covers the row tiles (4, 6, 8) and their remainders; n the wide panel, narrow panels and scalar columns.
        let cases = [(1, 1, 1), (7, 9, 3), (13, 17, 5), (9, 33, 4), (25, 48, 17), (6, 16, 1), (8, 32, 64), (31, 71, 2)]
        forEachInstructionSet { isa in
            for (m, n, k) in cases {
                for (transposed, accumulate) in [(false, false), (true, true)] {
                    let lda = transposed ? m + 3 : k + 2, ldb = n + 5, ldc = n + 1
                    let a = Tensor<Float>.randn([transposed ? k : m, lda], using: &rng).data
                    let b = Tensor<Float>.randn([k, ldb], using: &rng).data
                    var c = Tensor<Float>.randn([m, ldc], using: &rng).data
                    var expected = c.map(Double.init)
                    for i in 0..<m { for j in 0..<n {
                        var s: Double = 0
                        for kk in 0..<k { s += Double(transposed ? a[kk * lda + i] : a[i * lda + kk]) * Double(b[kk * ldb + j]) }
                        expected[i * ldc + j] = (accumulate ? expected[i * ldc + j] : 0) + 0.75 * s
                    } }
                    a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                        sl_small_gemm_f32(m, n, k, 0.75, ap.baseAddress!, transposed ? 1 : lda, transposed ? lda : 1,
                                          bp.baseAddress!, ldb, accumulate ? 1 : 0, cp.baseAddress!, ldc)
                    } } }
                    XCTAssertLessThan(GradientCheck.relativeError(c.map(Double.init), expected), 1e-5, "\(isa) \(m) \(n) \(k) \(transposed)")
                }
            }
        }
    }

    func testExponentialRowsAgainstTheLibraryExp() {
        var xs = [Float](), x: Float = -95
        while x <= 0 { xs.append(x); x += 0.0731 }
        xs += [0, -.infinity, -1e-30, -87.3, -88, .nan]  // 1305 values: vectors and a tail at every width
        forEachInstructionSet { isa in
            var values = xs
            let total = values.withUnsafeMutableBufferPointer { sl_exp_shifted_sum_f32($0.baseAddress!, $0.count, 0) }
            var expected: Double = 0
            for (got, x) in zip(values, xs) {
                let r = x.isNaN ? 0 : Foundation.exp(Double(x))
                expected += r
                XCTAssertLessThanOrEqual(Swift.abs(Double(got) - r), 2e-7 * r + 1e-37, "\(isa) exp(\(x))")
            }
            XCTAssertEqual(Double(total), expected, accuracy: 1e-5 * expected, isa)
            for n in [0, 1, 5, 16, 17, 33] {
                let row = (0..<n).map { Float(($0 * 37) % 23) - 11 }
                let m = row.withUnsafeBufferPointer { sl_maximum_f32($0.baseAddress!, n) }
                XCTAssertEqual(m, row.max() ?? -.infinity, "\(isa) max of \(n)")
            }
            // exp(a - b) and the softmax backward row at a length with a tail.
            let n = 37
            let a = (0..<n).map { -Float($0) * 0.7 }, b = (0..<n).map { Float($0 % 3) }
            var out = [Float](repeating: 0, count: n)
            sl_exp_difference_f32(a, b, &out, n)
            for j in 0..<n { XCTAssertEqual(Double(out[j]), Foundation.exp(Double(a[j] - b[j])), accuracy: 2e-7, "\(isa) \(j)") }
            var p = a, dp = b
            sl_softmax_backward_row_f32(&p, &dp, n, 0.5, 0.25)
            for j in 0..<n {
                let pj = Foundation.exp(Double(a[j]) - 0.5)
                XCTAssertEqual(Double(p[j]), pj, accuracy: 2e-7)
                XCTAssertEqual(Double(dp[j]), pj * (Double(b[j]) - 0.25), accuracy: 1e-6)
            }
            XCTAssertEqual(sl_exp_nonpositive_f32(-.infinity), 0)
            XCTAssertEqual(sl_exp_nonpositive_f32(0), 1)
        }
    }

    func testSelectiveScanStepsAgainstTheirFormulas() {
        var rng = RandomGenerator(seed: 5)
        let (nState, width) = (3, 37)  // a vector tail at every width
        func rand(_ n: Int, _ scale: Float = 1) -> [Float] { Tensor<Float>.randn([n], using: &rng).data.map { $0 * scale } }
        let prev = rand(nState * width), aT = rand(nState * width).map { -Swift.abs($0) - 0.1 }
        let dt = rand(width).map { Swift.abs($0) * 0.5 }, dtu = rand(width), bRow = rand(nState), cRow = rand(nState)
        let y0 = rand(width)
        forEachInstructionSet { isa in
            for (scale, shift): (Float, Float) in [(1, 0), (2, 1)] {
                var next = [Float](repeating: 0, count: nState * width), transitions = next, y = y0
                sl_scan_forward_rows_f32(nState, width, prev, &next, &transitions, aT, dt, dtu, bRow, cRow, &y, scale, shift)
                var yExpected = y0.map(Double.init)
                for n in 0..<nState { for w in 0..<width {
                    let dA = Double(scale) * Foundation.exp(Double(dt[w]) * Double(aT[n * width + w])) - Double(shift)
                    let x = dA * Double(prev[n * width + w]) + Double(dtu[w]) * Double(bRow[n])
                    XCTAssertEqual(Double(transitions[n * width + w]), dA, accuracy: 1e-6, "\(isa) dA")
                    XCTAssertEqual(Double(next[n * width + w]), x, accuracy: 1e-5, "\(isa) x")
                    yExpected[w] += x * Double(cRow[n])
                } }
                XCTAssertLessThan(GradientCheck.relativeError(y.map(Double.init), yExpected), 1e-5, isa)
            }
            let dyg = rand(width), xCur = rand(width), dA = rand(width), a = aT
            var carry = rand(width), dDt = rand(width), dAT = rand(width), gB = rand(width)
            let (carry0, dDt0, dAT0, gB0) = (carry, dDt, dAT, gB)
            var sums: [Float] = [0, 0]
            sl_scan_reverse_index_f32(width, dyg, prev, xCur, dA, a, dt, dtu, &carry, &dDt, &dAT, &gB, 0.3, -0.7, 0.5, &sums)
            var (sumC, sumB) = (0.0, 0.0)
            for w in 0..<width {
                let G = Double(dyg[w]) * -0.7 + Double(carry0[w])
                let q = G * Double(prev[w]) * (Double(dA[w]) + 0.5)
                XCTAssertEqual(Double(dDt[w]), Double(dDt0[w]) + q * Double(a[w]), accuracy: 1e-5, isa)
                XCTAssertEqual(Double(dAT[w]), Double(dAT0[w]) + q * Double(dt[w]), accuracy: 1e-5, isa)
                XCTAssertEqual(Double(gB[w]), Double(gB0[w]) + G * 0.3, accuracy: 1e-5, isa)
                XCTAssertEqual(Double(carry[w]), Double(dA[w]) * G, accuracy: 1e-5, isa)
                sumC += Double(dyg[w]) * Double(xCur[w])
                sumB += G * Double(dtu[w])
            }
            XCTAssertEqual(Double(sums[0]), sumC, accuracy: 1e-4, isa)
            XCTAssertEqual(Double(sums[1]), sumB, accuracy: 1e-4, isa)
        }
    }

    func testAttentionAgreesAcrossInstructionSets() {
        // The whole flash kernel (products, exps, softmax backward) under each set against a Float64 reference.
        var rng = RandomGenerator(seed: 9)
        let shapes = [[1, 300, 2, 32], [1, 300, 2, 32], [1, 300, 2, 32]]
        let base = shapes.map { Tensor<Double>.randn($0, using: &rng) }
        let cot = Tensor<Double>.randn(shapes[0], using: &rng)
        let x64 = base.map { $0.detached().requiringGrad() }
        let y64 = referenceAttention(q: x64[0], k: x64[1], v: x64[2])
        y64.backward(seed: cot.data)
        forEachInstructionSet { isa in
            let x32 = base.map { $0.converted(to: Float.self).requiringGrad() }
            let y32 = scaledDotProductAttention(q: x32[0], k: x32[1], v: x32[2])
            y32.backward(seed: cot.converted(to: Float.self).data)
            XCTAssertLessThan(GradientCheck.relativeError(y32.data.map(Double.init), y64.data), 1e-5, isa)
            for i in 0..<3 {
                XCTAssertLessThan(GradientCheck.relativeError(x32[i].grad!.map(Double.init), x64[i].grad!), 1e-4, "\(isa) input \(i)")
            }
        }
    }

    func testBLASCoreIsReported() {
        let note = String(cString: sl_blas_core_note())
        XCTAssertTrue(note.hasPrefix("OpenBLAS core: ") || note.hasPrefix("BLAS: "), note)
    }
}
