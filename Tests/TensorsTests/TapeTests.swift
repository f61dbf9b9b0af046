import XCTest
@testable import Tensors

/// The tape's semantics: gradients accumulate over uses, no-grad records nothing, buffers are released after
/// backward, a fused node's closure is used, and the checker catches a wrong backward.
final class TapeTests: XCTestCase {
    func testGradientsAccumulateOverUsesAndBackwardCalls() {
        let x = Tensor<Double>(shape: [3], data: [1, 2, 3], requiresGrad: true)
        (x * x + x).sum().backward()  // d/dx = 2x + 1
        XCTAssertEqual(x.grad, [3, 5, 7])
        (x * 2.0).sum().backward()   // accumulates: + 2
        XCTAssertEqual(x.grad, [5, 7, 9])
        x.zeroGrad()
        XCTAssertNil(x.grad)
    }

    func testIntermediatesHeldOnlyByTheGraphStillPassGradients() {
        let x = Tensor<Double>(shape: [2], data: [0.5, -1], requiresGrad: true)
        x.exp().square().tanh().sum().backward()
        let expected = [0.5, -1.0].map { v -> Double in
            let e2 = Foundation.exp(2 * v), t = Foundation.tanh(e2)
            return (1 - t * t) * 2 * e2
        }
        XCTAssertEqual(x.grad![0], expected[0], accuracy: 1e-12)
        XCTAssertEqual(x.grad![1], expected[1], accuracy: 1e-12)
    }

    func testNoGradRecordsNothing() {
        let x = Tensor<Double>(shape: [2], data: [1, 2], requiresGrad: true)
        let y = Tape.withoutGradients { (x * x).sum() }
        XCTAssertFalse(y.requiresGrad)
        XCTAssertNil(y.node)
        XCTAssertTrue(Tape.isRecording)
    }

    func testGraphIsReleasedAfterBackward() {
        weak var intermediate: Tensor<Double>?
        let x = Tensor<Double>(shape: [4], data: [1, 2, 3, 4], requiresGrad: true)
        var loss: Tensor<Double>? = {
            let h = x.exp()
            intermediate = h
            return (h * h).sum()
        }()
        XCTAssertNotNil(intermediate, "the graph holds the intermediate before backward")
        loss!.backward()
        XCTAssertNil(loss!.node)
        XCTAssertFalse(loss!.requiresGrad, "a differentiated result becomes a constant")
        XCTAssertNil(intermediate, "backward released the intermediate")
        loss = nil
        XCTAssertNotNil(x.grad, "leaves keep their gradients")
    }

    /// `discardGraph` frees what the tape kept (the heap falls back to where it was), node by node, touching no
    /// gradient; `MemoryProbe.heapInUseBytes` sees an allocation and its release to the byte's neighbourhood.
    func testDiscardGraphFreesTheKeptBuffersAndTouchesNoGradient() throws {
        guard let start = MemoryProbe.heapInUseBytes() else { throw XCTSkip("the allocator cannot be measured here") }
        var block: [Double]? = [Double](repeating: 1, count: 1 << 21)  // 16 MiB
        let held = MemoryProbe.heapInUseBytes()! - start
        XCTAssertEqual(Double(held), Double(8 << 21), accuracy: 65536)
        XCTAssertEqual(block?.count, 1 << 21)
        block = nil
        XCTAssertEqual(Double(MemoryProbe.heapInUseBytes()! - start), 0, accuracy: 65536)

        let x = Tensor<Double>(shape: [1 << 18], data: [Double](repeating: 0.5, count: 1 << 18), requiresGrad: true)
        weak var intermediate: Tensor<Double>?
        let before = MemoryProbe.heapInUseBytes()!
        var h: Tensor<Double>? = x
        for _ in 0..<200 { h = h!.tanh() }  // a chain of 200 nodes, each keeping its output's 2 MiB
        intermediate = h
        let loss = h!.sum()
        h = nil
        XCTAssertGreaterThan(MemoryProbe.heapInUseBytes()! - before, 200 * (8 << 18))
        loss.discardGraph()
        XCTAssertNil(intermediate, "the graph's intermediates are gone")
        XCTAssertNil(loss.node)
        XCTAssertFalse(loss.requiresGrad)
        XCTAssertNil(x.grad, "no gradient reached the leaf")
        XCTAssertEqual(Double(MemoryProbe.heapInUseBytes()! - before), 0, accuracy: 65536)
    }

    func testUnusedForwardPassIsFreedWithoutBackward() {
        weak var intermediate: Tensor<Double>?
        let x = Tensor<Double>(shape: [4], data: [1, 2, 3, 4], requiresGrad: true)
        do {
            let h = x.sigmoid()
            intermediate = h
            _ = (h * 3.0).sum()
        }
        XCTAssertNil(intermediate, "no reference cycle keeps an abandoned graph alive")
    }

    func testFusedNodeRegistersItsOwnBackward() {
        // y = cumulative sum along the last axis, registered as one node with a hand-written backward.
        let x = Tensor<Double>(shape: [1, 4], data: [1, 2, 3, 4], requiresGrad: true)
        var acc = 0.0
        let y = Tensor<Double>(shape: [1, 4], data: x.data.map { acc += $0; return acc })
        Tape.record("cumsum", inputs: [x], output: y) { dy in
            var dx = dy
            for i in stride(from: dx.count - 2, through: 0, by: -1) { dx[i] += dx[i + 1] }
            return [dx]
        }
        XCTAssertTrue(y.requiresGrad)
        (y * Tensor(shape: [4], data: [1, 0, 0, 1])).sum().backward()
        XCTAssertEqual(x.grad, [2, 1, 1, 1])
    }

    func testGradientCheckerPassesACorrectBackwardAndFailsAWrongOne() {
        func square(_ x: Tensor<Double>, derivativeFactor: Double) -> Tensor<Double> {
            let y = Tensor<Double>(shape: x.shape, data: x.data.map { $0 * $0 })
            let xs = x.data
            Tape.record("square?", inputs: [x], output: y) { dy in [zip(dy, xs).map { $0 * derivativeFactor * $1 }] }
            return y
        }
        var rng = RandomGenerator(seed: 1)
        let x = Tensor<Double>.randn([6], using: &rng)
        let right = GradientCheck.check("square", leaves: [("x", x)]) { [square(x, derivativeFactor: 2)] }
        XCTAssertTrue(right.passed, right.row)
        let wrong = GradientCheck.check("square (wrong backward)", leaves: [("x", x)]) { [square(x, derivativeFactor: 2.001)] }
        XCTAssertFalse(wrong.passed, "a backward off by 0.05% must fail: \(wrong.row)")
        XCTAssertGreaterThan(wrong.error, 1e-4)
    }

    func testCheckerFailsWhenAGradientIsMissing() {
        let x = Tensor<Double>(shape: [3], data: [1, 2, 3])
        // A node that forgets its input's gradient entirely.
        let result = GradientCheck.check("forgetful", leaves: [("x", x)]) {
            let y = Tensor<Double>(shape: [3], data: x.data.map { $0 * 3 })
            Tape.record("forgetful", inputs: [x], output: y) { _ in [nil] }
            return [y]
        }
        XCTAssertFalse(result.passed)
    }

    func testEveryCatalogOpPassesItsGradientCheck() {
        let checks = OpCheck.catalog + OpCheck.formChecks
        XCTAssertGreaterThanOrEqual(Set(OpCheck.catalog.map(\.name)).count, 30)
        for check in checks {
            let r = check.run(true)
            XCTAssertTrue(r.passed, r.row)
        }
    }

    /// matmul's outputs and gradients are allocated without a zero fill (BLAS writes them with beta 0), so every
    /// product must write all of C: with an empty inner extent too, on both paths (BLAS directly, `batchedGemm`),
    /// into a C filled with NaN; and a shared right operand's gradient (one GEMM over the batch) is complete.
    func testMatmulWritesEveryOutputWithoutAZeroFill() {
        var c = [Float](repeating: .nan, count: 15)
        let operand = [Float](repeating: 1, count: 1)  // never read: the inner extent is 0
        operand.withUnsafeBufferPointer { p in c.withUnsafeMutableBufferPointer { pc in
            Float.gemm(transA: false, transB: false, m: 3, n: 5, k: 0, alpha: 1, a: p.baseAddress!, lda: 1,
                       b: p.baseAddress!, ldb: 5, beta: 0, c: pc.baseAddress!, ldc: 5)
        } }
        XCTAssertEqual(c, [Float](repeating: 0, count: 15), "BLAS with k = 0, beta 0")
        for strideC in [15, 0] {
            var c = [Float](repeating: .nan, count: 30)
            let one = [Float](repeating: 1, count: 1)
            one.withUnsafeBufferPointer { p in c.withUnsafeMutableBufferPointer { pc in
                batchedGemm(batch: 2, transA: false, transB: false, m: 3, n: 5, k: 0, a: p.baseAddress!, lda: 1, strideA: 0,
                            b: p.baseAddress!, ldb: 5, strideB: 0, c: pc.baseAddress!, ldc: 5, strideC: strideC)
            } }
            XCTAssertTrue(c.prefix(strideC == 0 ? 15 : 30).allSatisfy { $0 == 0 }, "batchedGemm k = 0, strideC \(strideC)")
        }
        for (a, b) in [([3, 0], [0, 5]), ([2, 3, 0], [0, 5]), ([2, 3, 0], [2, 0, 5])] {
            let y = Tensor<Float>.zeros(a).matmul(Tensor<Float>.zeros(b))
            XCTAssertEqual(y.shape, Array(a.dropLast()) + [5])
            XCTAssertTrue(y.data.allSatisfy { $0 == 0 }, "\(a) x \(b)")
        }
        let x = Tensor<Double>(shape: [2, 3, 4], data: (0..<24).map { Double($0) }, requiresGrad: true)
        let w = Tensor<Double>(shape: [4, 5], data: (0..<20).map { Double($0) / 7 }, requiresGrad: true)
        x.matmul(w).sum().backward()
        for r in 0..<4 {  // dW[r, j] = sum over the 6 rows of x[:, r]
            let expected = (0..<6).map { Double($0 * 4 + r) }.reduce(0, +)
            for j in 0..<5 { XCTAssertEqual(w.grad?[r * 5 + j] ?? .nan, expected, accuracy: 1e-12) }
        }
        XCTAssertEqual(x.grad?[0] ?? .nan, (0..<5).map { Double($0) / 7 }.reduce(0, +), accuracy: 1e-12)
    }

    func testShapeMismatchMessagesNameBothShapes() {
        XCTAssertEqual(try broadcastShapeChecked([2, 1, 3], [4, 1], op: "add"), [2, 4, 3])
        XCTAssertThrowsError(try broadcastShapeChecked([2, 3], [4, 3], op: "add")) { error in
            XCTAssertEqual("\(error)", "add: shapes [2, 3] and [4, 3] are not broadcast-compatible")
        }
    }
}

import Foundation
