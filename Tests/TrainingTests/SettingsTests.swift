import Foundation
import Layers
import Tasks
import Tensors
@testable import Training
import XCTest

/// Every setting reaches the model or is refused, through the binary as a user runs it: colliding option names,
/// unknown keys, wrong types and ranges, zero values that round-trip, and the sources `seqlab config show` reports.
final class SettingsTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("settings-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    private let tiny = ["--max-steps", "2", "--eval-every", "2", "--task.train_size", "16", "--task.val_size", "4",
                        "--task.test_size", "4", "--d-model", "8", "--n-layers", "1"]

    private func write(_ text: String, _ name: String) throws -> String {
        try text.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8)
        return name
    }

    private func config(_ run: String) throws -> [String: Any] {
        let data = try Data(contentsOf: directory.appendingPathComponent(run).appendingPathComponent("config.json"))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    /// A one-line error on standard error and a non-zero exit.
    private func assertRefused(_ arguments: [String], _ message: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try SeqlabCommand.run(arguments, in: directory)
        XCTAssertNotEqual(r.status, 0, "\(arguments) must fail", file: file, line: line)
        XCTAssertEqual(r.error.trimmingCharacters(in: .whitespacesAndNewlines), "error: " + message, file: file, line: line)
    }

    /// S4's lr, dropout and bidirectional and GAM's dropout collide with trainer and model settings: --layer.NAME
    /// reaches the layer, the bare flag the trainer or model.
    func testCollidingLayerOptionsAreAddressable() throws {
        let r = try SeqlabCommand.run(["train", "--task", "mqar", "--layer", "s4", "--out", "s4", "--lr", "0.01", "--dropout", "0.1",
                                       "--layer.lr", "0.002", "--layer.dropout", "0.2", "--layer.bidirectional", "false",
                                       "--task.seq_len", "16", "--task.num_pairs", "2"] + tiny, in: directory)
        XCTAssertEqual(r.status, 0, r.error)
        let c = try config("s4")
        let model = c["model"] as! [String: Any]
        XCTAssertEqual(c["lr"] as? Double, 0.01)
        XCTAssertEqual(model["dropout"] as? Double, 0.1)
        XCTAssertEqual(model["layer_options"] as? [String: String], ["lr": "0.002", "dropout": "0.2", "bidirectional": "false"])
        XCTAssertEqual((c["task_options"] as? [String: String])?["seq_len"], "16")
        // a bare name that only the layer declares still works
        let g = try SeqlabCommand.run(["train", "--task", "mqar", "--layer", "gam", "--out", "gam", "--slots", "4",
                                       "--layer.dropout", "0.1"] + tiny, in: directory)
        XCTAssertEqual(g.status, 0, g.error)
        XCTAssertEqual((try config("gam")["model"] as! [String: Any])["layer_options"] as? [String: String], ["slots": "4", "dropout": "0.1"])
    }

    /// The model's depth reaches Mamba through its factory; there is no n_layers layer option to forget.
    func testModelDepthIsNotALayerOption() throws {
        try assertRefused(["train", "--task", "mqar", "--layer", "mamba", "--out", "m", "--layer.n_layers", "2"],
                          "flag --layer.n_layers: layer mamba has no option 'n_layers' (options: d_state, expand, d_conv, dt_rank, "
                          + "dt_min, dt_max, dt_init_floor, negative_eigenvalues, rescale_prenorm_residual, checkpoint_interval)")
        let config = ModelConfig(layer: "mamba", layerOptions: Options(["rescale_prenorm_residual": "true"]), dModel: 16, nLayers: 4)
        let task = try TaskRegistry.make("mqar", options: Options(["train_size": "4", "val_size": "2", "test_size": "2"]))
        let deep = try SequenceModel<Double>(config: config, task: task, seed: 0)
        var shallow = config
        shallow.layerOptions = Options()
        let plain = try SequenceModel<Double>(config: shallow, task: task, seed: 0)
        let name = "blocks.0.mixer.out_proj.weight"
        let a = deep.parameters.first { $0.name == name }!.tensor.data, b = plain.parameters.first { $0.name == name }!.tensor.data
        for (x, y) in zip(a, b) { XCTAssertEqual(x, y / 2, accuracy: 1e-15) }
    }

    /// Unknown keys anywhere in a config file, a sweep grid or the flags fail by name, with the closest valid one.
    func testUnknownKeysAreRefused() throws {
        _ = try write(#"{"task": "mqar", "bogus_key": 1, "model": {"layer": "attention"}}"#, "a.json")
        try assertRefused(["train", "--config", "a.json", "--out", "r"], "config file a.json: unknown key 'bogus_key'")
        _ = try write(#"{"task": "mqar", "model": {"layer": "attention", "d_modle": 8}}"#, "b.json")
        try assertRefused(["train", "--config", "b.json", "--out", "r"],
                          "config file b.json: unknown key 'model.d_modle' (did you mean 'model.d_model'?)")
        _ = try write(#"{"task": "mqar", "model": {"layer": "attention", "layer_options": {"haeds": 2}}}"#, "c.json")
        try assertRefused(["train", "--config", "c.json", "--out", "r"],
                          "config file c.json: layer attention: unknown option 'haeds' (did you mean 'heads'?) (options: heads, bias, rope, rope_base)")
        _ = try write(#"{"task": "mqar", "task_options": {"seq_lne": 8}, "model": {"layer": "attention"}}"#, "d.json")
        XCTAssertTrue(try SeqlabCommand.run(["train", "--config", "d.json", "--out", "r"], in: directory).error
            .contains("task mqar: unknown option 'seq_lne' (did you mean 'seq_len'?)"))
        try assertRefused(["train", "--task", "mqar", "--layer", "attention", "--out", "r", "--batchsize", "4"],
                          "unknown flag --batchsize (did you mean 'batch-size'?) (seqlab train --help lists the settings; seqlab list the layer and task options)")
        _ = try write(#"{"base": {"task": "mqar", "model": {"layer": "attention"}}, "parts": [{"grid": {"model.d_modle": [8, 16]}}]}"#, "s.json")
        try assertRefused(["sweep", "s.json", "--out", "sw", "--dry-run"],
                          "sweep run model.d_modle=8: unknown key 'model.d_modle' (did you mean 'model.d_model'?)")
        _ = try write(#"{"base": {"task": "mqar", "model": {"layer": "attention"}}, "parts": [{"grid": {"model.layer": ["gla", "atention"]}}]}"#, "t.json")
        let unknownLayer = try SeqlabCommand.run(["sweep", "t.json", "--out", "sw", "--dry-run"], in: directory)
        XCTAssertNotEqual(unknownLayer.status, 0)
        XCTAssertTrue(unknownLayer.error.contains("unknown layer 'atention' (did you mean 'attention'?)"), unknownLayer.error)
    }

    /// Wrong types and out-of-range values name the key and where it came from.
    func testWrongTypesAndRangesAreRefused() throws {
        _ = try write(#"{"task": "mqar", "model": {"layer": "attention", "d_model": 16.5}}"#, "a.json")
        try assertRefused(["train", "--config", "a.json", "--out", "r"], "config file a.json: model.d_model: '16.5' is not an integer")
        _ = try write(#"{"task": "mqar", "seed": -1, "model": {"layer": "attention"}}"#, "b.json")
        try assertRefused(["train", "--config", "b.json", "--out", "r"], "config file b.json: seed: '-1' must be at least 0")
        _ = try write(#"{"task": "mqar", "batch_size": "32", "model": {"layer": "attention"}}"#, "c.json")
        try assertRefused(["train", "--config", "c.json", "--out", "r"],
                          #"config file c.json: batch_size: "32" is not of its type (integer >= 1, <= 1048576)"#)
        try assertRefused(["train", "--task", "mqar", "--layer", "attention", "--out", "r", "--d-model", "16.5"],
                          "flag --d-model: d_model: '16.5' is not an integer")
        try assertRefused(["train", "--task", "mqar", "--layer", "attention", "--out", "r", "--norm", "layernorm"],
                          "flag --norm: norm: 'layernorm' is not one of layer_norm, rms_norm, batch_norm (did you mean 'layer_norm'?)")
        try assertRefused(["train", "--task", "mqar", "--layer", "deltanet", "--out", "r", "--n-h", "0"],
                          "flag --n-h: n_h: '0' must be at least 1")
        try assertRefused(["train", "--task", "mqar", "--layer", "attention", "--out", "r", "--max-steps", "5", "--warmup-steps", "100"],
                          "flags: warmup_steps 100 exceeds max_steps 5")
    }

    /// grad_clip 0 means no clipping, is written to config.json and reads back as it was: the run resumes and is
    /// recognised as finished; a resolved config.json trains the same run again.
    func testZeroAndNonDefaultValuesRoundTrip() throws {
        let first = try SeqlabCommand.run(["train", "--task", "mqar", "--layer", "attention", "--out", "clip0", "--grad-clip", "0",
                                           "--embedding-init-std", "0.5", "--no-decay", "none", "--layer.heads", "2"] + tiny, in: directory)
        XCTAssertEqual(first.status, 0, first.error)
        let c = try config("clip0")
        XCTAssertEqual(c["grad_clip"] as? Double, 0)
        XCTAssertEqual(c["no_decay"] as? [String], [])
        let again = try SeqlabCommand.run(["train", "--config", "clip0/config.json", "--out", "clip0"], in: directory)
        XCTAssertEqual(again.status, 0, again.error)
        XCTAssertTrue(again.output.contains("already finished"), again.output)
        // the same config in a new directory gives the same run, step for step
        let copy = try SeqlabCommand.run(["train", "--config", "clip0/config.json", "--out", "copy"], in: directory)
        XCTAssertEqual(copy.status, 0, copy.error)
        let metrics = { (run: String) in
            try String(contentsOf: self.directory.appendingPathComponent("\(run)/metrics.jsonl"), encoding: .utf8)
                .split(separator: "\n").map { line -> [String: Double] in
                    let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                    return ["loss": o["loss"] as! Double, "step": Double(o["step"] as! Int)]
                }
        }
        XCTAssertEqual(try metrics("clip0"), try metrics("copy"))
        // config show --json prints what the run wrote (the commit aside)
        let shown = try SeqlabCommand.run(["config", "show", "--config", "clip0/config.json", "--json"], in: directory)
        var written = c
        written["git_commit"] = nil
        let printed = try JSONSerialization.jsonObject(with: Data(shown.output.utf8)) as! [String: Any]
        XCTAssertEqual(NSDictionary(dictionary: printed), NSDictionary(dictionary: written))
    }

    /// `seqlab config show` names the source of every value.
    func testConfigShowNamesSources() throws {
        _ = try write(#"{"task": "mqar", "batch_size": 16, "model": {"layer": "gla"}}"#, "f.json")
        let r = try SeqlabCommand.run(["config", "show", "--config", "f.json", "--lr", "0.01", "--task.seq_len", "32"], in: directory)
        XCTAssertEqual(r.status, 0, r.error)
        let rows = Dictionary(uniqueKeysWithValues: r.output.split(separator: "\n").map { line -> (String, String) in
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            return (String(parts[0]), parts.dropFirst(2).joined(separator: " "))
        })
        XCTAssertEqual(rows["lr"], "flag")
        XCTAssertEqual(rows["batch_size"], "file f.json")
        XCTAssertEqual(rows["max_steps"], "recipe (mqar)")
        XCTAssertEqual(rows["model.layer_options.heads"], "recipe (mqar, for gla)")
        XCTAssertEqual(rows["weight_decay"], "default")
        XCTAssertEqual(rows["task_options.seq_len"], "flag")
        XCTAssertEqual(rows["task_options.vocab_size"], "default")
    }

    /// `"grad_clip": 0` in a config file means no clipping (it used to clip every gradient to zero): the same run as
    /// the flag, which trains.
    func testGradClipZeroInAFileTrains() throws {
        _ = try write(#"{"task": "mqar", "grad_clip": 0, "model": {"layer": "attention"}}"#, "clip.json")
        let fromFile = try SeqlabCommand.run(["train", "--config", "clip.json", "--out", "file"] + tiny, in: directory)
        XCTAssertEqual(fromFile.status, 0, fromFile.error)
        let fromFlag = try SeqlabCommand.run(["train", "--task", "mqar", "--layer", "attention", "--grad-clip", "0", "--out", "flag"] + tiny,
                                             in: directory)
        XCTAssertEqual(fromFlag.status, 0, fromFlag.error)
        let read = { (run: String) in try String(contentsOf: self.directory.appendingPathComponent("\(run)/final.json"), encoding: .utf8) }
        let finals = try [read("file"), read("flag")].map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        XCTAssertEqual(finals[0]["test_loss"] as? Double, finals[1]["test_loss"] as? Double)
        XCTAssertNotEqual(finals[0]["test_loss"] as? Double, log(256), "the model moved away from the uniform guess")
    }

    /// The table picks, among learning rates with the same mean validation accuracy, the smaller; its state size is at
    /// the task's declared training length (parity: max_length 40), and the markdown says so.
    func testTableTiesAndStateSizeLength() throws {
        for (id, lr) in [("a", "0.002"), ("b", "0.001"), ("c", "0.003")] {
            let r = try SeqlabCommand.run(["train", "--task", "parity", "--layer", "attention", "--out", "runs/\(id)", "--lr", lr,
                                           "--max-steps", "1", "--eval-every", "1", "--task.train_size", "4", "--task.val_size", "2",
                                           "--task.test_size", "2", "--d-model", "8", "--n-layers", "1", "--layer.heads", "2"], in: directory)
            XCTAssertEqual(r.status, 0, r.error)
            // the same validation accuracy for all three
            let url = directory.appendingPathComponent("runs/\(id)/final.json")
            var final = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
            final["best_val_accuracy"] = 0.5
            try JSONSerialization.data(withJSONObject: final).write(to: url)
        }
        let table = try SeqlabCommand.run(["table", "runs", "--format", "md"], in: directory)
        XCTAssertEqual(table.status, 0, table.error)
        let row = try XCTUnwrap(table.output.split(separator: "\n").first { $0.hasPrefix("| attention") })
        let cells = row.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        XCTAssertEqual(cells[1], "0.001", "the tie goes to the smaller learning rate: \(row)")
        XCTAssertEqual(cells[3], "\(2 * 8 * 40)", "attention's 2 D T at parity's max_length: \(row)")
        XCTAssertTrue(table.output.contains("(parity T = 40)"), table.output)
    }

    /// Every recipe resolves to a valid config for every layer (its layer options among the layer's declarations).
    func testEveryRecipeResolves() throws {
        for task in TaskRegistry.factories {
            for layer in LayerRegistry.factories where task.recipe.layerOptions[layer.name] != nil || task.recipe.layerOverrides[layer.name] != nil {
                XCTAssertNoThrow(try TrainConfig.suggested(task: task.name, layer: layer.name).validate(), "\(task.name) / \(layer.name)")
            }
        }
    }
}
