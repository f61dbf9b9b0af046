import Foundation
import XCTest
@testable import Layers
@testable import Tensors
@testable import Training

/// The same training run in PyTorch and in SequenceLab, step for step (Float64): for every layer, a two-layer MQAR
/// model started from the PyTorch model's initial weights, fed the same batches (`seqlab batches`), optimised by
/// torch.optim.AdamW with SequenceLab's parameter groups, schedule and clipping (scripts/interop/train_parity.py
/// wrote the trajectories into Tests/Fixtures/training). SequenceLab's trainer must follow the same loss at every
/// step to a relative 1e-8.
final class TrainingParityTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/training")

    /// The training losses by step of the run in `directory` (metrics.jsonl, log_every 1).
    static func trainingLosses(_ directory: URL) throws -> [Int: Double] {
        let text = try String(contentsOf: directory.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        var losses: [Int: Double] = [:]
        for line in text.split(separator: "\n") {
            let record = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            if record["split"] as? String == "train", let step = record["step"] as? Int, let loss = record["loss"] as? Double {
                losses[step] = loss
            }
        }
        return losses
    }

    func testEveryLayerTrainsAsPyTorchDoesInFloat64() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.fixtures.path).filter { $0.hasSuffix(".safetensors") }.sorted()
        var layers = Set<String>()
        for name in names {
            let layer = String(name.dropLast(".safetensors".count))
            layers.insert(layer)
            let fixture = try SafeTensors.read(from: Self.fixtures.appendingPathComponent(name))
            let expected = try fixture.tensor("losses", as: Double.self).data
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("seqlab-parity-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: directory) }
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            var initial = SafeTensors()
            for key in fixture.names where key.hasPrefix("init.") { initial.arrays[String(key.dropFirst(5))] = fixture.arrays[key] }
            let initURL = directory.appendingPathComponent("init.safetensors")
            try initial.write(to: initURL)
            var config = try RunFileCoding.decoder.decode(TrainConfig.self, from: Data(try XCTUnwrap(fixture.metadata["seqlab_config"]).utf8))
            config.initFrom = initURL.path
            XCTAssertEqual(config.precision, .float64)
            // The runs of today's protocol (which parameters decay, the embedding's init), not of an older one that a
            // config without those keys reads as: regenerate the fixtures when the defaults change.
            XCTAssertEqual(config.noDecay, ParameterTags.defaultNoDecay, "\(layer): the fixture's groups are not the default's; rerun scripts/interop/train_parity.py")
            XCTAssertEqual(config.model.embeddingInitStd, ModelConfig(layer: layer).embeddingInitStd, "\(layer): the fixture's embedding init is not the default's")
            let started = Date()
            try Trainer(config: config, directory: directory.appendingPathComponent("run"), log: { _ in }).train()
            let seconds = Date().timeIntervalSince(started)
            let losses = try Self.trainingLosses(directory.appendingPathComponent("run"))
            XCTAssertEqual(losses.count, expected.count, layer)
            var worst = (step: 0, error: 0.0)
            for (i, reference) in expected.enumerated() {
                let error = abs((losses[i + 1] ?? .nan) - reference) / abs(reference)
                if !(error <= worst.error) { worst = (i + 1, error) }
            }
            print("training parity \(layer): 200 steps in \(String(format: "%.1f", seconds)) s, largest relative difference \(String(format: "%.1e", worst.error)) (step \(worst.step))")
            XCTAssertLessThanOrEqual(worst.error, 1e-8, "\(layer): loss at step \(worst.step) differs from PyTorch's by \(worst.error) (relative)")
        }
        XCTAssertEqual(layers, Set(LayerRegistry.names).subtracting(["diagonal"]), "every registered layer (but the worked example) has a parity run")
    }
}
