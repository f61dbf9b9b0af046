import Foundation
import XCTest
@testable import Layers
@testable import Tasks
@testable import Tensors
@testable import Training

/// A small task of the tests' own: classify whether a token sequence contains more 1s than 2s (needs the whole
/// sequence; a two-layer model with the diagonal recurrence learns it).
struct MajorityTask: SequenceTask {
    var name: String { "majority" }
    var inputVocabulary: Int { 4 }
    var outputClasses: Int { 2 }
    var head: TaskHead { .classification }
    var requiresCausalModel: Bool { false }
    var padToken: Int { 0 }
    let seed: UInt64
    func split(_ name: String, _ count: Int) -> Dataset {
        Dataset(name: name, count: count) { i in
            var rng = exampleGenerator(seed: seed, split: name, index: i)
            let length = 5 + rng.int(below: 8)
            let tokens = (0..<length).map { _ in 1 + rng.int(below: 3) }
            let ones = tokens.filter { $0 == 1 }.count, twos = tokens.filter { $0 == 2 }.count
            return Example(tokens: tokens, label: ones > twos ? 1 : 0)
        }
    }
    var train: Dataset { split("train", 512) }
    var validation: Dataset { split("validation", 128) }
    var tests: [Dataset] { [split("test", 128)] }
}

final class TrainerTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("seqlab-train-\(UUID().uuidString)")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    private func config(steps: Int = 60) -> TrainConfig {
        var c = TrainConfig(task: "majority", model: ModelConfig(layer: "diagonal", dModel: 16, nLayers: 1))
        c.maxSteps = steps
        c.batchSize = 16
        c.evalEvery = 20
        c.logEvery = 10
        c.learningRate = 3e-3
        return c
    }

    func testRunLeavesItsFilesAndLearns() throws {
        let final = try Trainer(config: config(steps: 150), directory: directory, task: MajorityTask(seed: 0), log: { _ in }).train()
        for file in ["config.json", "metrics.jsonl", "final.json", "checkpoint.safetensors", "trainer-state.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: directory.appendingPathComponent(file).path), file)
        }
        XCTAssertEqual(final.steps, 150)
        XCTAssertGreaterThan(final.bestValAccuracy, 0.75, "the model learns majority")
        XCTAssertEqual(final.params, (try SequenceModel<Float>(config: config().model, task: MajorityTask(seed: 0), seed: 0)).parameters.reduce(0) { $0 + $1.tensor.count })
        let lines = try String(contentsOf: directory.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n")
        let records = try lines.map { try JSONDecoder().decode(MetricsRecord.self, from: Data($0.utf8)) }
        XCTAssertEqual(records.filter { $0.split == "train" }.map(\.step), Array(stride(from: 10, through: 150, by: 10)))
        XCTAssertEqual(records.filter { $0.split == "validation" }.map(\.step), [20, 40, 60, 80, 100, 120, 140, 150])
        let finalJSON = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("final.json"))) as! [String: Any]
        for key in ["best_val_accuracy", "test_accuracy", "test_loss", "steps", "params", "state_size", "wall_s"] {
            XCTAssertNotNil(finalJSON[key], key)
        }
        let configJSON = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("config.json"))) as! [String: Any]
        XCTAssertEqual(configJSON["seed"] as? Int, 0)
        XCTAssertNotNil(configJSON["batch_size"])
    }

    func testResumedRunEndsLikeAnUninterruptedOne() throws {
        let whole = try Trainer(config: config(), directory: directory.appendingPathComponent("whole"), task: MajorityTask(seed: 0), log: { _ in }).train()
        // Stop after 40 steps (a checkpoint at 40), then continue the same run to 60.
        let resumedDir = directory.appendingPathComponent("resumed")
        var first = config()
        first.maxTime = nil
        var partial = first
        partial.maxSteps = 60
        try Trainer(config: partial, directory: resumedDir, task: MajorityTask(seed: 0), log: { _ in }).trainSteps(upTo: 40)
        let resumed = try Trainer(config: first, directory: resumedDir, task: MajorityTask(seed: 0), log: { _ in }).train()
        XCTAssertEqual(resumed.bestValAccuracy, whole.bestValAccuracy)
        XCTAssertEqual(resumed.testAccuracy, whole.testAccuracy)
        XCTAssertEqual(resumed.testLoss, whole.testLoss)
        XCTAssertEqual(resumed.steps, whole.steps)
        let params = { (dir: URL) in try SafeTensors.read(from: dir.appendingPathComponent("checkpoint.safetensors")).arrays.filter { $0.key.hasPrefix("param.") } }
        XCTAssertEqual(try params(resumedDir), try params(directory.appendingPathComponent("whole")), "bit-identical weights")
    }

    /// A flipped byte in the checkpoint, or a checkpoint deleted after the run wrote one, is a clear error on resume,
    /// never a silent change of the result or a silent restart.
    func testCorruptOrMissingCheckpointIsRefused() throws {
        var c = config()
        c.maxTime = nil
        c.maxSteps = 60
        try Trainer(config: c, directory: directory, task: MajorityTask(seed: 0), log: { _ in }).trainSteps(upTo: 40)
        let checkpoint = directory.appendingPathComponent("checkpoint.safetensors")
        let original = try Data(contentsOf: checkpoint)
        var flipped = original
        for i in (flipped.count - 64)..<(flipped.count - 48) { flipped[i] ^= 0x5A }  // 16 bytes of the last tensor
        try flipped.write(to: checkpoint)
        XCTAssertThrowsError(try Trainer(config: c, directory: directory, task: MajorityTask(seed: 0), log: { _ in }).train()) { error in
            XCTAssertTrue("\(error)".contains("is corrupt (its checksum does not match its contents)"), "\(error)")
        }
        try original.write(to: checkpoint)
        XCTAssertNoThrow(try Trainer(config: c, directory: directory, task: MajorityTask(seed: 0), log: { _ in }).train())
    }

    func testResumeRefusesADifferentConfiguration() throws {
        try Trainer(config: config(steps: 20), directory: directory, task: MajorityTask(seed: 0), log: { _ in }).trainSteps(upTo: 20)
        var other = config(steps: 20)
        other.learningRate = 0.1
        XCTAssertThrowsError(try Trainer(config: other, directory: directory, task: MajorityTask(seed: 0), log: { _ in }).train()) { error in
            XCTAssertTrue("\(error)".contains("different configuration"), "\(error)")
        }
    }

    func testNonFiniteLossStopsAndKeepsTheLastCheckpoint() throws {
        var c = config(steps: 100)
        c.learningRate = 1e30
        c.gradientClip = 0
        c.weightDecay = 0
        XCTAssertThrowsError(try Trainer(config: c, directory: directory, task: MajorityTask(seed: 0), log: { _ in }).train()) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("loss is"), message)
            // what the directory keeps, said truthfully: the checkpoint's own step, or that there is none yet
            let checkpoint = directory.appendingPathComponent("checkpoint.safetensors")
            if FileManager.default.fileExists(atPath: checkpoint.path) {
                let state = try! JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("trainer-state.json"))) as! [String: Any]
                XCTAssertTrue(message.contains("the last checkpoint (step \(state["step"] as! Int))"), message)
            } else {
                XCTAssertTrue(message.contains("no checkpoint was written yet"), message)
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.appendingPathComponent("final.json").path))
    }

    func testEarlyStoppingAtTargetAccuracy() throws {
        var c = config(steps: 400)
        c.targetAccuracy = 0.7
        let final = try Trainer(config: c, directory: directory, task: MajorityTask(seed: 0), log: { _ in }).train()
        XCTAssertEqual(final.stoppedBy, "target_accuracy")
        XCTAssertLessThan(final.steps, 400)
        XCTAssertGreaterThanOrEqual(final.bestValAccuracy, 0.7)
    }

    func testConfigFileRoundTripsWithDefaults() throws {
        let json = #"{"task": "majority", "model": {"layer": "diagonal", "d_model": 8, "layer_options": {"n_h": 2}}, "lr": 0.01}"#
        let c = try RunFileCoding.decoder.decode(TrainConfig.self, from: Data(json.utf8))
        XCTAssertEqual(c.model.dModel, 8)
        XCTAssertEqual(c.model.layerOptions.values["n_h"], "2")
        XCTAssertEqual(c.learningRate, 0.01)
        XCTAssertEqual(c.batchSize, TrainConfig(task: "x", model: ModelConfig(layer: "y")).batchSize)
        let again = try RunFileCoding.decoder.decode(TrainConfig.self, from: RunFileCoding.encoder.encode(c))
        XCTAssertEqual(again, c)
        XCTAssertThrowsError(try RunFileCoding.decoder.decode(TrainConfig.self, from: Data(#"{"model": {"layer": "x"}}"#.utf8)))
    }

    func testTaskRecipeSitsBetweenDefaultsAndConfigKeys() throws {
        // MQAR's recipe: Zoology's width-64, no-MLP model; one head and the short convolution for gla only.
        let gla = try TrainConfig.suggested(task: "mqar", layer: "gla")
        XCTAssertEqual(gla.model.feedForward, .none)
        XCTAssertEqual(gla.learningRate, 3e-3)
        XCTAssertEqual(gla.targetAccuracy, 0.99)
        XCTAssertEqual(gla.model.layerOptions.values, ["heads": "1", "use_short_conv": "true"])
        XCTAssertEqual(try TrainConfig.suggested(task: "mqar", layer: "attention").model.layerOptions.values, [:])
        // Keys of a config object win over the recipe; absent keys keep it; layer options merge key by key.
        let object: [String: Any] = ["task": "mqar", "lr": 0.01, "model": ["layer": "gla", "layer_options": ["heads": "2"]]]
        let c = try TrainConfig.resolve(object, source: "test")
        XCTAssertEqual(c.learningRate, 0.01)
        XCTAssertEqual(c.maxSteps, gla.maxSteps)
        XCTAssertEqual(c.model.layerOptions.values, ["heads": "2", "use_short_conv": "true"])
        // A fully resolved config reproduces itself.
        let encoded = try JSONSerialization.jsonObject(with: RunFileCoding.encoder.encode(c)) as! [String: Any]
        XCTAssertEqual(try TrainConfig.resolve(encoded, source: "test"), c)
        // Per-layer overrides of a recipe: parity trains DeltaProduct at width 64 with batch 32, Mamba at 16 with 256.
        let dp = try TrainConfig.suggested(task: "parity", layer: "deltaproduct"), mamba = try TrainConfig.suggested(task: "parity", layer: "mamba")
        XCTAssertEqual([dp.model.dModel, dp.batchSize, mamba.model.dModel, mamba.batchSize], [64, 32, 16, 256])
        XCTAssertEqual([dp.model.nLayers, mamba.model.nLayers], [1, 1], "settings not overridden stay the recipe's")
        // A task without a recipe keeps the built-in defaults; an unknown task is a one-line error.
        XCTAssertEqual(try TrainConfig.suggested(task: "cifar10", layer: "s4d").learningRate, TrainConfig(task: "x", model: ModelConfig(layer: "y")).learningRate)
        XCTAssertThrowsError(try TrainConfig.resolve(["task": "nope", "model": ["layer": "gla"]], source: "test"))
        XCTAssertThrowsError(try TrainConfig.resolve(["task": "mqar"], source: "test"))
    }

    func testBatchesArePaddedAndMasked() throws {
        let batch = Batch([Example(tokens: [1, 2, 3], label: 1), Example(tokens: [3], label: 0)], padToken: 0)
        XCTAssertEqual(batch.tokens, [1, 2, 3, 3, 0, 0])
        XCTAssertEqual(batch.lengths, [3, 1])
        let model = try SequenceModel<Double>(config: ModelConfig(layer: "diagonal", dModel: 4, nLayers: 1), task: MajorityTask(seed: 0), seed: 0)
        // Mean pooling ignores padding: the second sequence's logits do not depend on what is padded after it.
        var rng = RandomGenerator(seed: 0)
        let a = model.logits(batch, training: false, rng: &rng)
        let alone = model.logits(Batch([Example(tokens: [3], label: 0)], padToken: 0), training: false, rng: &rng)
        XCTAssertEqual(a.data[2], alone.data[0], accuracy: 1e-12)
        XCTAssertEqual(a.data[3], alone.data[1], accuracy: 1e-12)
    }

    func testWeightDecayGroupsFollowTheRolesAndTheNoDecaySetting() throws {
        var c = TrainConfig(task: "mqar", model: ModelConfig(layer: "mamba", dModel: 16, nLayers: 1))
        let model = try SequenceModel<Float>(config: c.model, task: TaskRegistry.make("mqar", options: Options(["train_size": "8"])), seed: 0)
        func decayed(_ config: TrainConfig) -> Set<String> {
            Set(config.optimizerGroups(model.parameters).filter(\.tags.weightDecay).map(\.name))
        }
        // default (the S4 codebase's grouping): only weight matrices and filters decay
        XCTAssertEqual(c.noDecay, [.embedding, .bias, .norm, .ssm])
        XCTAssertEqual(decayed(c), Set(model.parameters.filter { $0.tags.role == .weight }.map(\.name)))
        XCTAssertTrue(decayed(c).contains("blocks.0.mixer.conv1d.weight"))
        // the earlier default: norms and the recurrence's own parameters do not decay; weights, biases and the embedding do
        c.noDecay = [.norm, .ssm]
        XCTAssertTrue(decayed(c).isSuperset(of: ["embedding.weight", "blocks.0.mixer.in_proj.weight", "blocks.0.mixer.dt_proj.bias", "head.output.bias"]))
        XCTAssertTrue(decayed(c).isDisjoint(with: ["blocks.0.mixer.A_log", "blocks.0.mixer.D", "blocks.0.norm1.weight", "norm.bias"]))
        // a run's config.json from before the key existed reads back as the grouping it used
        let old = #"{"task": "mqar", "model": {"layer": "mamba", "d_model": 16}}"#
        XCTAssertEqual(try RunFileCoding.decoder.decode(TrainConfig.self, from: Data(old.utf8)).noDecay, [.norm, .ssm])
        // round trip through config.json, and a wrong role is a one-line error naming it
        let data = try RunFileCoding.encoder.encode(c)
        XCTAssertEqual(try RunFileCoding.decoder.decode(TrainConfig.self, from: data).noDecay, c.noDecay)
        let bad = #"{"task": "mqar", "model": {"layer": "mamba", "d_model": 16}, "no_decay": ["norms"]}"#
        XCTAssertThrowsError(try RunFileCoding.decoder.decode(TrainConfig.self, from: Data(bad.utf8))) { XCTAssertTrue(oneLine($0).contains("no_decay"), oneLine($0)) }
    }

    func testTrainingRecordHoldsTheEvaluatedExamples() throws {
        // What a reference control replays: the batches, and with `evaluation` the examples the trainer evaluates on.
        var c = TrainConfig(task: "mqar", taskOptions: Options(["train_size": "16", "val_size": "5", "test_size": "7"]),
                            model: ModelConfig(layer: "attention", dModel: 8, nLayers: 1))
        c.batchSize = 4
        c.evalExamples = 6
        let record = try TrainingRecord.make(config: c, steps: 3, evaluation: true)
        let task = try TaskRegistry.make("mqar", options: c.taskOptions, seed: c.seed)
        XCTAssertEqual(record.metadata["eval_splits"], "[\"validation\",\"test\"]")
        XCTAssertEqual(record.metadata["train_size"], "16")
        XCTAssertEqual(record.metadata["state_size"], String(2 * 8 * task.train.example(0).tokens.count))  // attention: 2 D T
        // validation: all 5 (fewer than eval_examples); test: its first 6 of 7
        let valTokens = try record.integers("eval.validation.tokens"), testTargets = try record.integers("eval.test.targets")
        let length = task.validation.example(0).tokens.count
        XCTAssertEqual(valTokens.count, 5 * length)
        XCTAssertEqual(Array(valTokens[length..<(2 * length)]), task.validation.example(1).tokens)
        XCTAssertEqual(testTargets.count, 6 * length)
        XCTAssertEqual(Array(testTargets[(5 * length)...]), task.tests[0].example(5).targets)
        XCTAssertEqual(try record.integers("eval.test.labels").count, 6)
        // without the flag, only the training record
        XCTAssertNil(try TrainingRecord.make(config: c, steps: 3).metadata["eval_splits"])
    }

    func testEmbeddingInitStdReachesTheModelAndRoundTrips() throws {
        let task = try TaskRegistry.make("mqar", options: Options(["train_size": "8"]))
        var config = ModelConfig(layer: "attention", dModel: 32, nLayers: 1)
        func std(_ m: SequenceModel<Double>) -> Double {
            let w = m.embedding.data, mean = w.reduce(0, +) / Double(w.count)
            return (w.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(w.count)).squareRoot()
        }
        XCTAssertEqual(std(try SequenceModel<Double>(config: config, task: task, seed: 0)), 0.02, accuracy: 0.001)
        config.embeddingInitStd = 1
        XCTAssertEqual(std(try SequenceModel<Double>(config: config, task: task, seed: 0)), 1, accuracy: 0.05)
        let json = #"{"task": "mqar", "model": {"layer": "attention", "embedding_init_std": 0.5}}"#
        XCTAssertEqual(try RunFileCoding.decoder.decode(TrainConfig.self, from: Data(json.utf8)).model.embeddingInitStd, 0.5)
        // a run's config.json from before the key existed: the N(0, 1) those runs drew; a resolved config has the default
        let old = #"{"task": "mqar", "model": {"layer": "attention"}}"#
        XCTAssertEqual(try RunFileCoding.decoder.decode(TrainConfig.self, from: Data(old.utf8)).model.embeddingInitStd, 1)
        XCTAssertEqual(try TrainConfig.resolve(["task": "mqar", "model": ["layer": "attention"]], source: "test").model.embeddingInitStd, 0.02)
        config.embeddingInitStd = 0
        XCTAssertThrowsError(try SequenceModel<Double>(config: config, task: task, seed: 0)) {
            XCTAssertTrue(oneLine($0).contains("embedding_init_std"), oneLine($0))
        }
    }

    /// Every (run seed, block) pair draws its own mixer: seed 0's blocks draw from 1000 + 2 i as they always have
    /// (the runs in Results/ rebuild), and no block of another seed repeats them (before 2026-12-07, seed 2's first
    /// block drew what seed 0's second block drew).
    func testEveryRunSeedAndBlockDrawsItsOwnMixer() throws {
        let task = try TaskRegistry.make("mqar", options: Options(["train_size": "4", "val_size": "2", "test_size": "2"]))
        let config = ModelConfig(layer: "gla", dModel: 8, nLayers: 3)
        var draws: [String: [Double]] = [:]
        for seed: UInt64 in 0..<4 {
            let model = try SequenceModel<Double>(config: config, task: task, seed: seed)
            for i in 0..<3 {
                let name = "blocks.\(i).mixer.q_proj.weight"
                draws["seed \(seed) block \(i)"] = try XCTUnwrap(model.parameters.first { $0.name == name }).tensor.data
                if seed == 0 {
                    let alone: any SequenceLayer<Double> = try LayerRegistry.make(
                        "gla", dModel: 8, options: config.layerOptions, context: LayerContext(depth: 3), seed: 1000 + 2 * UInt64(i))
                    XCTAssertEqual(alone.parameters.first { $0.name == "q_proj.weight" }?.tensor.data, draws["seed 0 block \(i)"])
                }
            }
        }
        let keys = draws.keys.sorted()
        for (a, x) in keys.enumerated() { for y in keys[(a + 1)...] { XCTAssertNotEqual(draws[x], draws[y], "\(x) and \(y)") } }
        XCTAssertEqual(keys.count, 12)
    }
}
