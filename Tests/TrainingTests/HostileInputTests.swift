import Foundation
import Layers
import Tasks
import Tensors
import Training
import XCTest

/// A generated corpus of hostile inputs against the binary: flags and config files (through `seqlab config show`,
/// which resolves exactly as `seqlab train` does), sweep specs (`--dry-run`), safetensors files for `seqlab op`,
/// and run directories for `seqlab table`. Every case must end within 20 s with status 0 or 1 (never a signal: no
/// exit >= 128), a refusal must be one line `error: ...` on stderr, and a failed command must leave no output file.
/// The corpus is deterministic (seeded), over 1,000 cases, and runs two at a time.
final class HostileInputTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("hostile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    /// One case: the arguments, the files to write first (name -> bytes), and the output file that must not appear
    /// when the command fails.
    struct Case {
        var arguments: [String]
        var files: [String: Data] = [:]
        var output: String? = nil
    }

    static let badNumbers = ["-1", "0", "16.5", "1e308", "-1e308", "nan", "inf", "abc", "", "9223372036854775807",
                             "99999999999999999999", "0x10", "1/2", "true", "-0", "1e-320", " 3", "3 "]
    static let flags = ["--batch-size", "--max-steps", "--lr", "--weight-decay", "--warmup-steps", "--min-lr-factor",
                        "--grad-clip", "--eval-every", "--log-every", "--eval-examples", "--target-accuracy", "--seed",
                        "--max-time", "--d-model", "--n-layers", "--dropout", "--feed-forward-expand", "--embedding-init-std",
                        "--norm", "--feed-forward", "--pooling", "--precision", "--optimizer", "--no-decay", "--prenorm",
                        "--layer.heads", "--layer.chunk_size", "--layer.d_state", "--layer.n_h", "--layer.expand_v",
                        "--task.seq_len", "--task.num_pairs", "--task.vocab_size", "--task.train_size", "--task.test_lengths",
                        "--bogus", "--layer.bogus", "--task.bogus", "--layer.", "--", "---lr"]
    static let layers = LayerRegistry.names.filter { $0 != "diagonal" } + ["nope"]
    static let jsonValues: [String] = ["null", "true", "-1", "0", "16.5", "1e308", "\"x\"", "[]", "{}", "[1, 2]", "\"\"",
                                       "9223372036854775807", "{\"a\": {\"b\": 1}}", "\"auto\"", "\"none\""]

    /// The corpus, in a fixed order from a fixed seed.
    static func corpus() -> [Case] {
        var rng = RandomGenerator(seed: 17)
        func pick<T>(_ xs: [T]) -> T { xs[rng.int(below: xs.count)] }
        var cases: [Case] = []
        // 1. flags: one or two bad values for random settings, random layers
        for _ in 0..<400 {
            var args = ["config", "show", "--task", pick(["mqar", "parity", "listops", "word_problem", "none"]), "--layer", pick(layers)]
            for _ in 0..<(1 + rng.int(below: 2)) {
                let flag = pick(flags)
                args += rng.int(below: 5) == 0 ? [flag] : [flag, pick(badNumbers)]
            }
            cases.append(Case(arguments: args))
        }
        // 2. config files: a valid config with one key replaced, added or nested wrongly
        let keys = ["task", "model", "model.layer", "model.d_model", "model.layer_options", "model.layer_options.heads",
                    "task_options", "task_options.seq_len", "lr", "batch_size", "seed", "no_decay", "grad_clip", "max_time",
                    "warmup_steps", "bogus", "model.bogus", "precision", "model.pooling"]
        for i in 0..<250 {
            let key = pick(keys), value = pick(jsonValues)
            var object: [String: String] = ["task": "\"mqar\"", "model": "{\"layer\": \"attention\"}"]
            let parts = key.split(separator: ".").map(String.init)
            if parts.count == 1 {
                object[parts[0]] = value
            } else if parts[0] == "model" {
                object["model"] = parts.count == 2 ? "{\"layer\": \"attention\", \"\(parts[1])\": \(value)}"
                    : "{\"layer\": \"attention\", \"\(parts[1])\": {\"\(parts[2])\": \(value)}}"
            } else {
                object[parts[0]] = "{\"\(parts[1])\": \(value)}"
            }
            let text = "{" + object.keys.sorted().map { "\"\($0)\": \(object[$0]!)" }.joined(separator: ", ") + "}"
            let name = "c\(i).json"
            cases.append(Case(arguments: ["config", "show", "--config", name], files: [name: Data(text.utf8)]))
        }
        for (i, text) in ["", "{", "[]", "null", "{\"task\": 1}", "\u{0}", String(repeating: "[", count: 10000)].enumerated() {
            cases.append(Case(arguments: ["config", "show", "--config", "raw\(i).json"], files: ["raw\(i).json": Data(text.utf8)]))
        }
        // 3. sweep specs (dry runs): huge grids, bad keys, bad shards, an existing file as --out
        for i in 0..<120 {
            let grid: String
            switch i % 6 {
            case 0: grid = "{\"seed\": [" + (0..<2000).map(String.init).joined(separator: ", ") + "], \"lr\": [" + (0..<2000).map { "\(Double($0 + 1) * 1e-5)" }.joined(separator: ", ") + "]}"
            case 1: grid = "{\"\(pick(keys))\": [\(pick(jsonValues)), \(pick(jsonValues))]}"
            case 2: grid = "{\"model.layer\": [\"\(pick(layers))\"]}"
            case 3: grid = "{\"seed\": []}"
            case 4: grid = "{\"seed\": 3}"
            default: grid = "{\"model.d_model\": [8, 16]}"
            }
            let spec = "{\"base\": {\"task\": \"mqar\", \"model\": {\"layer\": \"attention\"}}, \"parts\": [{\"grid\": \(grid)}]}"
            var args = ["sweep", "s\(i).json", "--out", i % 5 == 0 ? "s\(i).json" : "sw\(i)", "--dry-run"]
            if i % 7 == 0 { args += ["--shard", pick(["1//2", "2/2", "-1/2", "0/0", "a/b", "1/2/3", "0/3"])] }
            if i % 11 == 0 { args += ["--jobs", pick(["0", "-1", "999999"])] }
            cases.append(Case(arguments: args, files: ["s\(i).json": Data(spec.utf8)]))
        }
        // 4. safetensors files for every op: bad headers, shapes, dtypes, offsets, options
        let ops = ["fft_conv", "attention", "selective_scan", "gla", "s4d_kernel", "s4_dplr_kernel", "delta_rule", "delta_product"]
        for i in 0..<260 {
            let op = pick(ops)
            let bytes = hostileSafetensors(&rng, index: i)
            let name = "in\(i).safetensors"
            cases.append(Case(arguments: ["op", op, "--in", name, "--out", "out\(i).safetensors"], files: [name: bytes],
                              output: "out\(i).safetensors"))
        }
        // 5. seqlab layer (mangled state dicts), convert and table (half-written run directories), bench, plot
        for i in 0..<60 {
            let name = "layer\(i).safetensors"
            cases.append(Case(arguments: ["layer", pick(layers), "--in", name, "--out", "lout\(i).safetensors"],
                              files: [name: hostileSafetensors(&rng, index: i + 1000)], output: "lout\(i).safetensors"))
        }
        let runFiles: [(String, String)] = [("final.json", "{}"), ("final.json", "not json"), ("config.json", "{\"task\": \"mqar\"}"),
                                           ("final.json", "{\"best_val_accuracy\": \"x\"}"), ("metrics.jsonl", "{\"step\": -1}\n{")]
        for i in 0..<40 {
            let (file, text) = runFiles[i % runFiles.count]
            let dir = "runs\(i)/r"
            var files = ["\(dir)/\(file)": Data(text.utf8)]
            if i % 3 == 0 { files["\(dir)/config.json"] = Data("{\"task\": \"mqar\", \"model\": {\"layer\": \"attention\"}}".utf8) }
            let command = pick([["table", "runs\(i)", "--format", pick(["md", "tex", "csv", "xls"])],
                                ["plot", "runs\(i)", "--kind", pick(["curves", "width", "state", "bogus"]), "--out", "p\(i).svg"],
                                ["convert", dir, "--out", "c\(i).safetensors"]])
            cases.append(Case(arguments: command, files: files, output: command.contains("--out") ? command.last : nil))
        }
        for shape in ["0x5", "1x0", "x", "1x2x3", "-1x4", "99999999x99999999", "lra2"] {
            cases.append(Case(arguments: ["bench", "--shape", shape, "--layer", "diagonal"]))
        }
        for repeats in ["0", "-1", "1001", "abc"] { cases.append(Case(arguments: ["bench", "--repeats", repeats, "--layer", "diagonal"])) }
        return cases
    }

    /// A small safetensors file, mangled in one of several ways.
    static func hostileSafetensors(_ rng: inout RandomGenerator, index: Int) -> Data {
        func pick<T>(_ xs: [T]) -> T { xs[rng.int(below: xs.count)] }
        let names = ["u", "K", "q", "k", "v", "g", "beta", "A", "Bs", "Cs", "delta", "log_dt", "A_re", "A_im", "C_re", "C_im", "x"]
        let shapes: [[Int]] = [[], [0], [1, 0, 3], [2, 3], [1, 4, 2], [1, 4, 1, 2], [1, 1 << 40], [-1, 2], [3], [1, 4, 2, 1, 2]]
        var header: [String: Any] = [:]
        var data = Data()
        for _ in 0..<(1 + rng.int(below: 5)) {
            let shape = pick(shapes), dtype = pick(["F32", "F64", "I32", "F16", "X"])
            let count = shape.contains { $0 < 0 || $0 > 1 << 20 } ? 1 : shape.reduce(1, *)
            let size = count * (dtype == "F64" ? 8 : 4)
            let start = data.count
            data.append(Data((0..<size).map { _ in UInt8(truncatingIfNeeded: rng.int(below: 256)) }))
            var offsets = [start, data.count]
            if rng.int(below: 6) == 0 { offsets = pick([[0, 1 << 50], [data.count, start], [-4, 4], [start, data.count + 7]]) }
            header[pick(names)] = ["dtype": dtype, "shape": shape, "data_offsets": offsets]
        }
        header["__metadata__"] = [pick(["L", "chunk_size", "scale", "causal", "form", "delta_softplus", "bogus"]):
                                    pick(["0", "-3", "1e9", "abc", "5", "auto", "true", "99999999999999999999"])]
        var json = (try? JSONSerialization.data(withJSONObject: header)) ?? Data("{}".utf8)
        switch index % 13 {
        case 0: json = Data("not json".utf8)
        case 1: json = Data()
        default: break
        }
        var file = Data()
        var length = UInt64(json.count)
        if index % 17 == 0 { length = UInt64.max }
        if index % 19 == 0 { length = UInt64(json.count + 1000) }
        withUnsafeBytes(of: length.littleEndian) { file.append(contentsOf: $0) }
        file.append(json)
        file.append(data)
        if index % 23 == 0 { file = file.prefix(file.count / 2) }
        return file
    }

    /// Every layer, trained at an absurd learning rate, diverges into the trainer's one-line stop (no failed
    /// precondition inside a kernel).
    func testDivergenceIsAOneLineStopForEveryLayer() throws {
        guard FileManager.default.isExecutableFile(atPath: SeqlabCommand.url.path) else { throw XCTSkip("seqlab binary not built") }
        for layer in LayerRegistry.names where layer != "diagonal" {
            let r = try SeqlabCommand.run(["train", "--task", "mqar", "--layer", layer, "--lr", "1e308", "--max-steps", "6",
                                           "--eval-every", "3", "--task.train_size", "32", "--task.val_size", "4", "--task.test_size", "4",
                                           "--d-model", "16", "--out", "diverge-\(layer)"], in: directory, timeout: 60)
            XCTAssertEqual(r.status, 1, "\(layer): \(r.error.prefix(300))")
            XCTAssertTrue(r.error.hasPrefix("error: ") && r.error.contains("stopping (try a lower learning rate)"), "\(layer): \(r.error.prefix(300))")
            XCTAssertEqual(r.error.split(separator: "\n").count, 1, "\(layer): \(r.error.prefix(300))")
        }
    }

    /// Settings within their bounds whose product the machine cannot hold (attention, d_model 2048, n_layers 1024:
    /// 1.7e10 parameters, 275 GB of weights, gradients and AdamW moments) are a one-line refusal once the first block
    /// is built (`ModelMemory`), not an out-of-memory kill (exit 137) or an allocation failure's stack trace.
    func testAModelTheMachineCannotHoldIsAOneLineRefusal() throws {
        guard FileManager.default.isExecutableFile(atPath: SeqlabCommand.url.path) else { throw XCTSkip("seqlab binary not built") }
        try XCTSkipIf(MemoryLimit.process.bytes > 275e9, "this machine could hold the model")
        let r = try SeqlabCommand.run(["train", "--task", "mqar", "--layer", "attention", "--d-model", "2048", "--n-layers", "1024",
                                       "--max-steps", "1", "--out", "huge"], in: directory, timeout: 120)
        XCTAssertEqual(r.status, 1, String(r.error.prefix(300)))
        XCTAssertTrue(r.error.hasPrefix("error: model: attention, d_model 2048, n_layers 1024 has at least 1.72e+10 parameters"), String(r.error.prefix(300)))
        XCTAssertEqual(r.error.split(separator: "\n").count, 1, String(r.error.prefix(300)))
        // The embedding alone (MQAR's vocabulary at its bound, 2^24 x 8192): refused before it is drawn.
        let e = try SeqlabCommand.run(["train", "--task", "mqar", "--layer", "attention", "--d-model", "8192", "--n-layers", "1",
                                       "--task.vocab_size", "16777216", "--max-steps", "1", "--out", "huge-embedding"], in: directory, timeout: 60)
        XCTAssertEqual(e.status, 1, String(e.error.prefix(300)))
        XCTAssertTrue(e.error.hasPrefix("error: model: attention, d_model 8192, n_layers 1 has at least 2.75e+11 parameters"), String(e.error.prefix(300)))
        XCTAssertThrowsError(try ModelMemory.check(parameters: 1000, scalarBytes: 4, limit: MemoryLimit(bytes: 15_999, source: "test")) { "x" })
        XCTAssertNoThrow(try ModelMemory.check(parameters: 1000, scalarBytes: 4, limit: MemoryLimit(bytes: 16_000, source: "test")) { "x" })
    }

    /// A model that fits but whose one step cannot: MQAR's logits at a 2^20-token vocabulary and batch 256
    /// (256 x 64 x 2^20 scalars, twice: 137 GB) are refused in one line before the first step, not an allocation trace.
    func testAStepTheMachineCannotHoldIsAOneLineRefusal() throws {
        guard FileManager.default.isExecutableFile(atPath: SeqlabCommand.url.path) else { throw XCTSkip("seqlab binary not built") }
        try XCTSkipIf(MemoryLimit.process.bytes > 135e9, "this machine could hold the step")
        let r = try SeqlabCommand.run(["train", "--task", "mqar", "--layer", "attention", "--d-model", "32", "--task.vocab_size", "1048576",
                                       "--batch-size", "256", "--max-steps", "1", "--out", "huge-logits"], in: directory, timeout: 120)
        XCTAssertEqual(r.status, 1, String(r.error.prefix(300)))
        XCTAssertTrue(r.error.hasPrefix("error: training: mqar, batch 256 x length 64, 1048576 classes, attention d_model 32 x 2 layers needs at least 138.5 GB for one step"), String(r.error.prefix(300)))
        XCTAssertEqual(r.error.split(separator: "\n").count, 1, String(r.error.prefix(300)))
        // the floor: 4 copies of the parameters plus the activations, at the scalar's size
        XCTAssertThrowsError(try ModelMemory.checkStep(parameters: 1000, activations: 1000, scalarBytes: 4, limit: MemoryLimit(bytes: 19_999, source: "test")) { "x" })
        XCTAssertNoThrow(try ModelMemory.checkStep(parameters: 1000, activations: 1000, scalarBytes: 4, limit: MemoryLimit(bytes: 20_000, source: "test")) { "x" })
        let task = try TaskRegistry.make("mqar", options: Options(["train_size": "4", "val_size": "2", "test_size": "2"]))
        let model = try SequenceModel<Float>(config: ModelConfig(layer: "attention", dModel: 8, nLayers: 2), task: task, seed: 0)
        let batch = Batch((0..<3).map { task.train.example($0) }, padToken: task.padToken)
        XCTAssertEqual(model.activationFloor(batch), Double(3 * 3 * batch.length * 8 + 2 * 3 * batch.length * task.outputClasses))
    }

    /// A negative count reaches the option's own range check (not "missing value", as when the parser read "-1" as
    /// a flag).
    func testNegativeCountsAreRefusedByTheirRange() throws {
        guard FileManager.default.isExecutableFile(atPath: SeqlabCommand.url.path) else { throw XCTSkip("seqlab binary not built") }
        let spec = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Experiments/recall.json").path
        let cases: [([String], String)] = [
            (["sweep", spec, "--out", "o", "--jobs", "-1"], "--jobs must be at least 1"),
            (["bench", "--layer", "diagonal", "--repeats", "-1"], "repeats"),
        ]
        for (arguments, expected) in cases {
            let r = try SeqlabCommand.run(arguments, in: directory, timeout: 30)
            XCTAssertEqual(r.status, 1, arguments.joined(separator: " "))
            XCTAssertTrue(r.error.hasPrefix("error: ") && r.error.contains(expected) && !r.error.contains("Missing value"),
                          "\(arguments.joined(separator: " ")): \(r.error)")
        }
    }

    func testEveryHostileInputEndsWithAOneLineRefusalOrSuccess() throws {
        guard FileManager.default.isExecutableFile(atPath: SeqlabCommand.url.path) else { throw XCTSkip("seqlab binary not built") }
        let cases = Self.corpus()
        XCTAssertGreaterThanOrEqual(cases.count, 1000)
        for c in cases {
            for (name, bytes) in c.files {
                let url = directory.appendingPathComponent(name)
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                try bytes.write(to: url)
            }
        }
        let failures = Locked<[String]>([])
        let started = Date()
        DispatchQueue.concurrentPerform(iterations: 2) { lane in
            for (i, c) in cases.enumerated() where i % 2 == lane {
                let shown = c.arguments.joined(separator: " ")
                guard let r = try? SeqlabCommand.run(c.arguments, in: directory, timeout: 20) else {
                    failures.withLock { $0.append("\(shown): could not start") }
                    continue
                }
                var problem: String?
                if r.timedOut { problem = "hung past 20 s" }
                else if r.status != 0 && r.status != 1 { problem = "exit status \(r.status)" }
                else if r.status == 1 {
                    let lines = r.error.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.isEmpty }
                    if lines.count != 1 || !lines[0].hasPrefix("error: ") { problem = "stderr is not one 'error:' line: \(r.error.prefix(300))" }
                    if let output = c.output, FileManager.default.fileExists(atPath: directory.appendingPathComponent(output).path) {
                        problem = "failed but left \(output)"
                    }
                }
                if let problem { failures.withLock { $0.append("\(shown): \(problem)") } }
            }
        }
        let found = failures.withLock { $0 }
        XCTAssertTrue(found.isEmpty, "\(found.count) of \(cases.count) cases misbehaved:\n" + found.prefix(40).joined(separator: "\n"))
        print("hostile input: \(cases.count) cases in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
    }
}
