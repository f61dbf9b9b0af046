import Foundation
import XCTest
@testable import Layers
@testable import Tensors

/// Every layer against its reference implementation, weight for weight (docs/interop.md): the fixtures of
/// Tests/Fixtures/layers were written by the real reference modules (scripts/fixtures/make_layer_fixtures.py) in
/// Float64; `seqlab layer`'s runner must reproduce y, grad_x and every parameter gradient to a relative RMS of 1e-10
/// in Float64 and 5e-4 in Float32 (fla's metric, with an absolute floor for tensors that are exactly zero in the
/// reference, such as gate gradients at one token).
final class ReferenceParityTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/layers")

    /// The fixture cases: (case name, in-file, out-file).
    static func cases() throws -> [(String, URL, URL)] {
        let names = try FileManager.default.contentsOfDirectory(atPath: fixtures.path)
            .filter { $0.hasSuffix(".in.safetensors") }.sorted()
        return names.map { name in
            let base = String(name.dropLast(".in.safetensors".count))
            return (base, fixtures.appendingPathComponent(name), fixtures.appendingPathComponent(base + ".out.safetensors"))
        }
    }

    /// The in-file with every F64 tensor stored as F32 (integer buffers unchanged).
    static func singlePrecision(_ file: SafeTensors) throws -> SafeTensors {
        var out = SafeTensors(metadata: file.metadata)
        for name in file.names {
            if file.arrays[name]!.dtype == .f64 { out.set(name, try file.tensor(name, as: Float.self)) } else { out.arrays[name] = file.arrays[name] }
        }
        return out
    }

    /// The worst tensor of one case in one precision: (name, relative RMS).
    func worst<T: TensorScalar>(_ input: SafeTensors, _ expected: SafeTensors, layer: String, as _: T.Type, floor: Double) throws -> (String, Double) {
        let got = try LayerRunner.evaluate(LayerRegistry.factory(named: layer), input, as: T.self)
        var worst = ("", 0.0)
        for name in expected.names {
            guard got.arrays[name] != nil else { return (name + " (missing)", .infinity) }
            let reference = try expected.tensor(name, as: Double.self)
            let mine = try got.tensor(name, as: Double.self)
            guard mine.shape == reference.shape else { return ("\(name) shape \(mine.shape) vs \(reference.shape)", .infinity) }
            let e = GradientCheck.relativeRMS(mine.data, reference.data, floor: floor)
            if e > worst.1 || worst.0.isEmpty { worst = (name, e) }
        }
        if let extra = got.names.first(where: { expected.arrays[$0] == nil }) { return (extra + " (not in the reference)", .infinity) }
        return worst
    }

    func testEveryLayerMatchesItsReferenceInFloat64AndFloat32() throws {
        let cases = try Self.cases()
        XCTAssertGreaterThanOrEqual(cases.count, 9, "fixtures missing under \(Self.fixtures.path)")
        var layers = Set<String>()
        for (name, inURL, outURL) in cases {
            let input = try SafeTensors.read(from: inURL), expected = try SafeTensors.read(from: outURL)
            let layer = try XCTUnwrap(expected.metadata["layer"], "\(name): no layer in the out-file's metadata")
            layers.insert(layer)
            do {
                let f64 = try worst(input, expected, layer: layer, as: Double.self, floor: 1e-13)
                XCTAssertLessThanOrEqual(f64.1, 1e-10, "\(name) (Float64): \(f64.0) relative RMS \(f64.1)")
                let f32 = try worst(try Self.singlePrecision(input), expected, layer: layer, as: Float.self, floor: 1e-6)
                XCTAssertLessThanOrEqual(f32.1, 5e-4, "\(name) (Float32): \(f32.0) relative RMS \(f32.1)")
            } catch {
                XCTFail("\(name): \(error)")
            }
        }
        XCTAssertEqual(layers, Set(LayerRegistry.names).subtracting(["diagonal"]), "every registered layer (but the worked example) has fixtures")
    }
}
