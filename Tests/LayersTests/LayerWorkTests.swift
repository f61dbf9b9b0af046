import Foundation
import XCTest
@testable import Layers
@testable import Tensors

/// `SequenceLayer.work`: every registered layer counts its forward arithmetic, attention's count matches a hand
/// computation, and the counts scale with the batch.
final class LayerWorkTests: XCTestCase {
    /// Layers whose forward pass does work independent of the batch: S4 and S4D generate their convolution kernels
    /// (and the kernels' spectra) once per forward pass, for every sequence of the batch.
    static let batchIndependent: Set<String> = ["s4", "s4d"]

    private func work(_ name: String, dModel: Int = 128, batch: Int, length: Int) throws -> LayerWork {
        let layer: any SequenceLayer<Float> = try LayerRegistry.make(name, dModel: dModel, as: Float.self)
        return try XCTUnwrap(layer.work(batch: batch, length: length), "\(name) does not count its work")
    }

    func testEveryRegisteredLayerCountsItsWork() throws {
        XCTAssertFalse(LayerRegistry.names.isEmpty)
        for name in LayerRegistry.names {
            let w = try work(name, batch: 8, length: 1024)
            XCTAssertGreaterThan(w.forwardFlops, 0, name)
            XCTAssertGreaterThan(w.products, 0, name)
            XCTAssertEqual(w.forwardBackwardFlops, LayerWork.backwardFactor * w.forwardFlops, accuracy: 1e-6 * w.forwardFlops, name)
        }
    }

    func testAttentionMatchesAHandCount() throws {
        // B 1, L 4, D 8, 2 heads of E 4, no bias, RoPE on.
        let layer: any SequenceLayer<Float> = try LayerRegistry.make("attention", dModel: 8, options: LayerOptions(["heads": "2"]), as: Float.self)
        let w = try XCTUnwrap(layer.work(batch: 1, length: 4))
        let projections = 4.0 * (2 * 4 * 8 * 8)          // q, k, v, o: 4 x 2 L D D = 2048
        let rotary = 2.0 * 4 * 8 * 3                      // q and k, L D elements, 3 FLOPs each = 192
        let pairs = 2.0 * (4 * 5 / 2)                     // heads x causal pairs L (L + 1) / 2 = 20
        let scoresAndValues = pairs * (2 * 4 + 2 * 4)     // per pair: q.k (2 E) and its share of P V (2 E) = 320
        let softmax = pairs * 4                           // max, subtract, sum, scale = 80
        let exps = pairs                                  // one exp per pair = 20, at 20 FLOPs each
        XCTAssertEqual(w.products, projections + scoresAndValues)
        XCTAssertEqual(w.elementwise, rotary + softmax)
        XCTAssertEqual(w.transcendentals, exps)
        let total: Double = 3040                          // 2048 + 320 + 192 + 80 + 20 x 20
        XCTAssertEqual(w.forwardFlops, total)
        XCTAssertEqual(w.forwardBackwardFlops, 3 * total)
    }

    func testCausalTapsSkipThePadding() {
        XCTAssertEqual(LayerWork.causalTaps(length: 5, width: 3), 1 + 2 + 3 + 3 + 3)
        XCTAssertEqual(LayerWork.causalTaps(length: 2, width: 4), 1 + 2)
        XCTAssertEqual(LayerWork.causalTaps(length: 0, width: 4), 0)
        XCTAssertEqual(LayerWork.causalTaps(length: 7, width: 1), 7)
    }

    func testWorkScalesLinearlyInBatch() throws {
        func close(_ a: Double, _ b: Double) -> Bool { abs(a - b) <= 1e-9 * max(abs(a), abs(b)) }
        for name in LayerRegistry.names {
            let length = 256
            let (one, two, four) = try (work(name, batch: 1, length: length), work(name, batch: 2, length: length),
                                        work(name, batch: 4, length: length))
            // The per-sequence part is linear in the batch for every layer: w(4) - w(2) = 2 (w(2) - w(1)).
            XCTAssertTrue(close(four.forwardFlops - two.forwardFlops, 2 * (two.forwardFlops - one.forwardFlops)),
                          "\(name): \(one.forwardFlops), \(two.forwardFlops), \(four.forwardFlops)")
            if Self.batchIndependent.contains(name) {  // plus the kernel generation, once per forward pass
                XCTAssertLessThan(two.forwardFlops, 2 * one.forwardFlops, name)
            } else {
                XCTAssertTrue(close(two.forwardFlops, 2 * one.forwardFlops), "\(name): \(two.forwardFlops) vs 2 x \(one.forwardFlops)")
                XCTAssertTrue(close(two.products, 2 * one.products), name)
            }
        }
    }
}
