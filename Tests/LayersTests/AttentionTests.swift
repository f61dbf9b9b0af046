import Foundation
import XCTest
@testable import Layers
@testable import Tensors

/// Softmax attention: the flash kernel against naive attention, its Float32 exp path, RoPE, the layer and its KV cache.
final class AttentionTests: XCTestCase {
    func testBlockwiseMatchesNaiveAttention() {
        // (B, Lq, Lk, H, E, causal): one token, block edges (128 queries, 256 keys), KV-cache queries, bidirectional.
        let cases: [(Int, Int, Int, Int, Int, Bool)] = [
            (2, 1, 1, 2, 3, true), (1, 129, 129, 2, 4, true), (1, 300, 300, 1, 5, true), (2, 1, 260, 2, 3, true),
            (1, 40, 513, 1, 4, true), (1, 131, 131, 3, 2, false), (1, 5, 270, 2, 3, false),
        ]
        for (b, lq, lk, h, e, causal) in cases {
            let r = OpCheck.compareForms("attention \(b) \(lq) \(lk) \(h) \(e) causal \(causal)", shapes: [[b, lq, h, e], [b, lk, h, e], [b, lk, h, e]], floor: 1e-4) { x, fast in
                [fast ? scaledDotProductAttention(q: x[0], k: x[1], v: x[2], causal: causal)
                      : referenceAttention(q: x[0], k: x[1], v: x[2], causal: causal)]
            }
            XCTAssertTrue(r.passed, r.row)
        }
    }

    func testFloat32KernelMatchesFloat64Reference() {
        // E = 16, 32, 48 run the SmallGemm products (one 16-column panel, one 32, both), E = 8 the BLAS path.
        for (b, lq, lk, h, e) in [(2, 600, 600, 2, 16), (1, 70, 333, 2, 32), (1, 300, 300, 1, 48), (1, 260, 260, 2, 8)] {
            var rng = RandomGenerator(seed: UInt64(e))
            let shapes = [[b, lq, h, e], [b, lk, h, e], [b, lk, h, e]]
            let base = shapes.map { Tensor<Double>.randn($0, std: 1.5, using: &rng) }
            let cot = Tensor<Double>.randn(shapes[0], using: &rng)
            let x32 = base.map { $0.converted(to: Float.self).requiringGrad() }
            let y32 = scaledDotProductAttention(q: x32[0], k: x32[1], v: x32[2])
            y32.backward(seed: cot.converted(to: Float.self).data)
            let x64 = base.map { $0.detached().requiringGrad() }
            let y64 = referenceAttention(q: x64[0], k: x64[1], v: x64[2])
            y64.backward(seed: cot.data)
            XCTAssertLessThan(GradientCheck.relativeError(y32.data.map(Double.init), y64.data), 1e-5, "E=\(e) output")
            for i in 0..<3 {
                XCTAssertLessThan(GradientCheck.relativeError(x32[i].grad!.map(Double.init), x64[i].grad!), 1e-4, "E=\(e) input \(i)")
            }
        }
    }

    func testSmallGemmMatchesAPlainProduct() {
        var rng = RandomGenerator(seed: 8)
        for (m, n, k, transposed, accumulate) in [(19, 32, 7, false, false), (8, 48, 33, true, true), (5, 21, 4, false, true), (16, 64, 1, true, false)] {
            let lda = transposed ? m + 3 : k + 2
            let a = Tensor<Float>.randn([transposed ? k : m, lda], using: &rng).data
            let b = Tensor<Float>.randn([k, n + 5], using: &rng).data
            var c = Tensor<Float>.randn([m, n + 1], using: &rng).data
            var expected = c
            for i in 0..<m { for j in 0..<n {
                var s: Double = 0
                for kk in 0..<k { s += Double(transposed ? a[kk * lda + i] : a[i * lda + kk]) * Double(b[kk * (n + 5) + j]) }
                expected[i * (n + 1) + j] = Float((accumulate ? Double(expected[i * (n + 1) + j]) : 0) + 0.5 * s)
            } }
            a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                SmallGemm.product(m: m, n: n, k: k, alpha: 0.5, a: ap.baseAddress!, rowStride: transposed ? 1 : lda, colStride: transposed ? lda : 1,
                                  b: bp.baseAddress!, ldb: n + 5, accumulate: accumulate, c: cp.baseAddress!, ldc: n + 1)
            } } }
            XCTAssertLessThan(GradientCheck.relativeError(c.map(Double.init), expected.map(Double.init)), 1e-5, "\(m) \(n) \(k)")
        }
    }

    func testVectorExpMatchesTheLibraryExp() {
        var xs = [Float](), x: Float = -90
        while x <= 0 { xs.append(x); x += 0.0137 }
        xs += [0, -.infinity, -1e-30, -87.3]
        var values = xs
        let total = values.withUnsafeMutableBufferPointer { VectorMath.exponentiate($0.baseAddress!, count: $0.count, minus: 0) }
        var expected: Float = 0
        for (a, x) in zip(values, xs) {
            let r = Foundation.exp(x)
            expected += r
            XCTAssertLessThanOrEqual(Swift.abs(a - r), 2e-7 * r + 1e-37, "exp(\(x))")
        }
        XCTAssertEqual(total, expected, accuracy: 1e-5 * expected)
        XCTAssertEqual(VectorMath.exp(-Float.infinity), 0)
        XCTAssertEqual(VectorMath.exp(Float(0)), 1)
        let row: [Float] = [-3, 2, 7.5, -1, 0.25, 6, 7.25, 1, 2, 3, 4, 5, 6, 7, -9, 7.4, 7.49]  // 17: one vector and a tail
        XCTAssertEqual(row.withUnsafeBufferPointer { VectorMath.maximum($0.baseAddress!, count: $0.count) }, 7.5)
    }

    func testFiniteDifferencesOfTheKernelAndRotaryEmbedding() {
        let names: Set = ["attention_causal", "attention_bidirectional"]
        for check in OpCheck.catalog.filter({ names.contains($0.name) }) + AttentionChecks.all {
            let r = check.run(false)
            XCTAssertTrue(r.passed, r.row)
        }
    }

    func testRotaryScoresDependOnlyOnRelativePosition() {
        var rng = RandomGenerator(seed: 4)
        let q = Tensor<Double>.randn([1, 1, 1, 8], using: &rng), k = Tensor<Double>.randn([1, 1, 1, 8], using: &rng)
        func score(_ p: Int, _ p2: Int) -> Double {
            let a = q.rotaryEmbedding(positionOffset: p).data, b = k.rotaryEmbedding(positionOffset: p2).data
            return zip(a, b).map(*).reduce(0, +)
        }
        XCTAssertEqual(score(5, 2), score(103, 100), accuracy: 1e-12)
        XCTAssertEqual(score(0, 0), zip(q.data, k.data).map(*).reduce(0, +), accuracy: 1e-12)
        XCTAssertNotEqual(score(5, 2), score(5, 3), accuracy: 1e-6)
    }

    func testLayerPassesTheLayerCheck() throws {
        let results = try LayerCheck.run("attention", quick: false)
        XCTAssertGreaterThanOrEqual(results.count, 10)
        for r in results { XCTAssertTrue(r.passed, r.row) }
    }

    func testKeyValueCacheAcrossKeyBlocks() throws {
        // 300 steps: the cache crosses the kernel's key block (256) while the parallel form runs blocked queries.
        let layer: any SequenceLayer<Double> = try LayerRegistry.make("attention", dModel: 8, options: LayerOptions(["heads": "2"]), as: Double.self)
        var rng = RandomGenerator(seed: 6)
        let x = Tensor<Double>.randn([1, 300, 8], using: &rng)
        let (parallel, stepped) = Tape.withoutGradients { (layer(x), layer.stepThrough(x)) }
        XCTAssertLessThan(GradientCheck.relativeError(stepped.data, parallel.data), 1e-12)
        XCTAssertEqual(layer.stateSize(sequenceLength: 300), 2 * 8 * 300)
        XCTAssertEqual(layer.parameters.map(\.name), ["q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight"])
        XCTAssertThrowsError(try LayerRegistry.make("attention", dModel: 10, options: LayerOptions(["heads": "4"]), as: Float.self))
    }
}
