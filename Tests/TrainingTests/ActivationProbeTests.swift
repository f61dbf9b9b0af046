import Foundation
import Layers
import Tasks
import Tensors
@testable import Training
import XCTest

/// The memory floor's measured part (`ActivationProbe`): extrapolated from one and two sequences, it matches what the
/// forward pass of the whole batch keeps (sequences are independent), is at least the counted floor, and leaves no
/// trace on the model; a step it shows cannot fit is refused in one line.
final class ActivationProbeTests: XCTestCase {
    /// For layers of every kind (attention, a chunked linear attention, a selective scan, an FFT convolution, a delta
    /// rule), at an awkward length: kept(6) extrapolated from kept(1) and kept(2) is
    /// within 3% of kept(6) measured, and at least the counted floor (logits, softmax, residual stream).
    func testTheExtrapolationMatchesTheWholeBatchForEveryKindOfLayer() throws {
        guard MemoryProbe.heapInUseBytes() != nil else { throw XCTSkip("the allocator cannot be measured here") }
        let task = try TaskRegistry.make("mqar", options: Options(["seq_len": "66", "num_pairs": "4", "train_size": "8", "val_size": "2", "test_size": "2"]))
        let batch = Batch((0..<6).map { task.train.example($0) }, padToken: task.padToken)
        for layer in ["attention", "gla", "mamba", "s4", "deltanet"] {
            let model = try SequenceModel<Float>(config: ModelConfig(layer: layer, dModel: 32, nLayers: 2), task: task, seed: 1)
            let probed = try XCTUnwrap(ActivationProbe.keptBytes(model: model, batch: batch), layer)
            let whole = ActivationProbe.forwardKeeps(model: model, batch: batch)
            XCTAssertEqual(probed / whole, 1, accuracy: 0.03, "\(layer): probed \(probed), whole batch \(whole)")
            XCTAssertGreaterThanOrEqual(probed, model.activationFloor(batch) * Double(MemoryLayout<Float>.size), layer)
        }
    }

    /// The probe changes nothing: the next loss and its gradients are those of a model never probed, and buffers
    /// (BatchNorm's running statistics, S4's default norm here) are restored.
    func testTheProbeLeavesNoTrace() throws {
        guard MemoryProbe.heapInUseBytes() != nil else { throw XCTSkip("the allocator cannot be measured here") }
        let task = try TaskRegistry.make("mqar", options: Options(["train_size": "8", "val_size": "2", "test_size": "2"]))
        let batch = Batch((0..<4).map { task.train.example($0) }, padToken: task.padToken)
        var config = ModelConfig(layer: "s4", dModel: 16, nLayers: 2)
        config.norm = .batchNorm
        let (probed, untouched) = (try SequenceModel<Double>(config: config, task: task, seed: 3), try SequenceModel<Double>(config: config, task: task, seed: 3))
        XCTAssertFalse(probed.buffers.isEmpty, "BatchNorm keeps running statistics")
        XCTAssertNotNil(ActivationProbe.keptBytes(model: probed, batch: batch))
        XCTAssertEqual(probed.buffers.map(\.1.data), untouched.buffers.map(\.1.data))
        XCTAssertTrue(probed.parameters.allSatisfy { $0.tensor.grad == nil })
        var (rngA, rngB) = (RandomGenerator(seed: 9), RandomGenerator(seed: 9))
        let (a, b) = (probed.loss(batch, training: true, rng: &rngA).loss, untouched.loss(batch, training: true, rng: &rngB).loss)
        XCTAssertEqual(a.item, b.item)
        a.backward()
        b.backward()
        XCTAssertEqual(probed.parameters.map { $0.tensor.grad! }, untouched.parameters.map { $0.tensor.grad! })
        XCTAssertNil(ActivationProbe.keptBytes(model: probed, batch: batch.prefix(2)), "two sequences are not probed")
    }

    /// A step whose counted floor fits but whose layers' intermediates do not: MQAR with GLA at d_model 512 and T 2048
    /// (batch 32) under `ulimit -v 2 GB`, the counted floor 0.5 GB; refused in one line naming the measured part.
    func testAStepWhoseIntermediatesCannotFitIsAOneLineRefusal() throws {
        guard FileManager.default.isExecutableFile(atPath: SeqlabCommand.url.path) else { throw XCTSkip("seqlab binary not built") }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/prlimit") else { throw XCTSkip("no prlimit") }
        guard MemoryProbe.heapInUseBytes() != nil else { throw XCTSkip("the allocator cannot be measured here") }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("activation-probe-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let r = try SeqlabCommand.run(["train", "--task", "mqar", "--layer", "gla", "--d-model", "512", "--task.seq_len", "2048",
                                       "--max-steps", "1", "--out", "run"], in: root, timeout: 300, addressSpace: 2_000_000_000)
        XCTAssertEqual(r.status, 1, String(r.error.prefix(300)))
        XCTAssertTrue(r.error.hasPrefix("error: training: mqar, batch 32 x length 2048, 256 classes, gla d_model 512 x 2 layers needs at least"), String(r.error.prefix(300)))
        XCTAssertTrue(r.error.contains("for what its forward pass keeps for the backward pass, measured on its first one and two sequences), and this process may use 2.0 GB (ulimit -v)"), String(r.error.prefix(300)))
        XCTAssertEqual(r.error.split(separator: "\n").count, 1, String(r.error.prefix(300)))
    }
}
