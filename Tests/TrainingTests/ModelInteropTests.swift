import Foundation
import XCTest
@testable import Layers
@testable import Tasks
@testable import Tensors
@testable import Training

/// Whole models move between SequenceLab and PyTorch (docs/interop.md): for every layer, a two-layer MQAR model
/// (Tests/Fixtures/models, written by scripts/interop/make_model_fixtures.py)
/// - trained a few steps by `seqlab train`, exported by `seqlab convert`, loaded by the PyTorch model of
///   scripts/interop/torch_model.py (reference mixers, load_state_dict strict): PyTorch's logits are SequenceLab's;
/// - initialised by the PyTorch model (the reference modules' own init), its state_dict loaded here: SequenceLab's
///   logits are PyTorch's.
/// Float64 to 1e-10 relative RMS, Float32 to 1e-5.
final class ModelInteropTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/models")

    /// The logits SequenceLab's model computes from the state dict `state` on `tokens` [B, L].
    func logits<T: TensorScalar>(_ state: SafeTensors, tokens: [Int], batch: Int, as _: T.Type, source: String) throws -> [T] {
        let json = try XCTUnwrap(state.metadata["seqlab_config"], "\(source): no seqlab_config")
        let config = try RunFileCoding.decoder.decode(TrainConfig.self, from: Data(json.utf8))
        let task = try TaskRegistry.make(config.task, options: config.taskOptions, seed: config.seed)
        let model = try SequenceModel<T>(config: config.model, task: task, seed: config.seed)
        try StateDict.load(state, into: model, source: source)
        let length = tokens.count / batch
        let examples = (0..<batch).map { Example(tokens: Array(tokens[($0 * length)..<(($0 + 1) * length)])) }
        var rng = RandomGenerator(seed: 0)
        return Tape.withoutGradients { model.logits(Batch(examples, padToken: task.padToken), training: false, rng: &rng).data }
    }

    func testEveryLayersModelGivesPyTorchsLogitsBothWays() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.fixtures.path).filter { $0.hasSuffix(".io.safetensors") }.sorted()
        var layers = Set<String>()
        for name in names {
            let base = String(name.dropLast(".io.safetensors".count))
            layers.insert(String(base.split(separator: "-").dropLast().joined(separator: "-")))
            let io = try SafeTensors.read(from: Self.fixtures.appendingPathComponent(name))
            let state = try SafeTensors.read(from: Self.fixtures.appendingPathComponent(base + ".safetensors"))
            let tokens = try io.integers("tokens"), batch = try XCTUnwrap(io.arrays["tokens"]?.shape.first)
            let expected = try io.tensor("logits", as: Double.self).data
            do {
                let f64 = try logits(state, tokens: tokens, batch: batch, as: Double.self, source: base)
                XCTAssertEqual(f64.count, expected.count, base)
                XCTAssertLessThanOrEqual(GradientCheck.relativeRMS(f64, expected), 1e-10, "\(base) (Float64)")
                let f32 = try logits(state, tokens: tokens, batch: batch, as: Float.self, source: base)
                XCTAssertLessThanOrEqual(GradientCheck.relativeRMS(f32, expected), 1e-5, "\(base) (Float32)")
            } catch {
                XCTFail("\(base): \(error)")
            }
        }
        XCTAssertEqual(layers, Set(LayerRegistry.names).subtracting(["diagonal"]), "every registered layer (but the worked example) has model fixtures")
    }

    func testConvertRefusesWhatIsNotAFormatTwoRun() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("seqlab-convert-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        XCTAssertThrowsError(try StateDict.export(run: directory)) { XCTAssertTrue("\($0)".contains("no checkpoint.safetensors"), "\($0)") }
        var old = SafeTensors(metadata: ["format": "seqlab-checkpoint-1", "trainer_state": "{}"])
        old.set("param.embedding.weight", Tensor<Float>.zeros([3, 2]))
        try old.write(to: directory.appendingPathComponent("checkpoint.safetensors"))
        XCTAssertThrowsError(try StateDict.export(run: directory)) { XCTAssertTrue("\($0)".contains("seqlab-checkpoint-1"), "\($0)") }
    }

    func testAStateDictWithAMissingExtraOrMisshapedTensorIsRefusedByName() throws {
        var state = try SafeTensors.read(from: Self.fixtures.appendingPathComponent("mamba-torch.safetensors"))
        let json = try XCTUnwrap(state.metadata["seqlab_config"])
        let config = try RunFileCoding.decoder.decode(TrainConfig.self, from: Data(json.utf8))
        let model = try SequenceModel<Float>(config: config.model, task: TaskRegistry.make(config.task, options: config.taskOptions, seed: 0), seed: 0)
        let before = model.parameters.map(\.tensor.data)
        func refused(_ file: SafeTensors, _ word: String) {
            XCTAssertThrowsError(try StateDict.load(file, into: model, source: "f")) { XCTAssertTrue("\($0)".contains(word), "\($0)") }
            XCTAssertEqual(model.parameters.map(\.tensor.data), before, "the model changed")
        }
        var missing = state; missing.arrays["blocks.1.mixer.A_log"] = nil
        refused(missing, "'blocks.1.mixer.A_log'")
        var extra = state; extra.set("blocks.2.mixer.A_log", Tensor<Float>.zeros([1]))
        refused(extra, "'blocks.2.mixer.A_log'")
        let w = try state.tensor("blocks.0.mixer.x_proj.weight", as: Float.self)
        state.set("blocks.0.mixer.x_proj.weight", w.transposed())
        refused(state, "'blocks.0.mixer.x_proj.weight'")
    }
}
