import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest
@testable import Experiments
@testable import Tensors
@testable import Training

final class SweepSpecTests: XCTestCase {
    func testGridTimesListWithReadableStableIds() throws {
        let json = """
            {"base": {"task": "mqar", "model": {"layer": "attention", "n_layers": 2}, "max_steps": 100},
             "grid": {"model.d_model": [32, 64], "lr": [0.001, 0.003]},
             "list": [{"model.layer": "attention"}, {"model.layer": "deltaproduct", "model.layer_options.n_h": 2}]}
            """
        let spec = try SweepSpec(try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any])
        let runs = try spec.runs()
        XCTAssertEqual(runs.count, 8)
        XCTAssertEqual(runs[0].id, "lr-0.001_d_model-32_layer-attention")
        XCTAssertTrue(runs.map(\.id).contains("lr-0.003_d_model-64_layer-deltaproduct_n_h-2"), "\(runs.map(\.id))")
        let dp = runs.first { $0.config.model.layer == "deltaproduct" }!
        XCTAssertEqual(dp.config.model.layerOptions.values["n_h"], "2")
        XCTAssertEqual(dp.config.model.nLayers, 2)
        XCTAssertEqual(dp.config.maxSteps, 100)
        XCTAssertEqual(try spec.runs().map(\.id), runs.map(\.id), "ids are stable")
    }

    func testPartsUnionAndTaskRecipeUnderTheBase() throws {
        let json = """
            {"base": {"task": "mqar", "model": {"layer": "attention"}, "max_steps": 100},
             "parts": [{"grid": {"model.layer": ["attention", "gla"]}},
                       {"list": [{"task": "parity", "model.layer": "mamba", "model.layer_options.negative_eigenvalues": true}]},
                       {"lists": [[{"task": "word_problem", "task_options.group": "S3"}, {"task": "parity"}],
                                  [{"model.layer": "deltaproduct", "model.layer_options.n_h": 1}, {"model.layer": "deltaproduct", "model.layer_options.n_h": 2}]]}]}
            """
        let runs = try SweepSpec(try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]).runs()
        XCTAssertEqual(runs.map(\.id), ["layer-attention", "layer-gla", "layer-mamba_negative_eigenvalues-true_task-parity",
                                        "layer-deltaproduct_task-word_problem_n_h-1_group-S3", "layer-deltaproduct_task-word_problem_n_h-2_group-S3",
                                        "layer-deltaproduct_task-parity_n_h-1", "layer-deltaproduct_task-parity_n_h-2"])
        let gla = runs[1].config
        XCTAssertEqual(gla.maxSteps, 100, "the base wins over the recipe")
        XCTAssertEqual(gla.model.feedForward, .none, "the MQAR recipe fills what the base leaves out")
        XCTAssertEqual(gla.model.layerOptions.values["heads"], "1")
        XCTAssertEqual(runs[2].config.task, "parity")
        XCTAssertEqual(runs[2].config.model.layerOptions.values["negative_eigenvalues"], "true")
    }

    func testMalformedSpecsGetOneLineErrors() {
        XCTAssertThrowsError(try SweepSpec(["grid": [:]])) { XCTAssertTrue("\($0)".contains("needs a 'base' object")) }
        XCTAssertThrowsError(try SweepSpec(["base": [:], "gird": [:]])) { XCTAssertTrue("\($0)".contains("unknown key 'gird'")) }
        XCTAssertThrowsError(try SweepSpec(["base": ["task": "t", "model": ["layer": "l"]], "grid": ["lr": []]]))
        XCTAssertThrowsError(try SweepSpec(["base": ["model": ["layer": "attention"]]]).runs()) { XCTAssertTrue("\($0)".contains("missing key 'task'")) }
        XCTAssertThrowsError(try SweepSpec(["base": ["task": "nope", "model": ["layer": "attention"]]]).runs()) { XCTAssertTrue("\($0)".contains("unknown task 'nope'")) }
        XCTAssertThrowsError(try SweepSpec(["base": ["task": "mqar", "model": ["layer": "attention"], "batch_size": 0]]).runs())
        XCTAssertThrowsError(try SweepSpec(["base": [:], "parts": [["grid": [:], "lsit": []]]])) { XCTAssertTrue("\($0)".contains("unknown key 'lsit'")) }
        XCTAssertThrowsError(try SweepSpec(["base": [:], "parts": [], "grid": [:]]))
        XCTAssertThrowsError(try SweepSpec.load(from: URL(fileURLWithPath: "/nonexistent/spec.json")))
    }

    func testShardsPartitionTheRuns() throws {
        let spec = try SweepSpec(["base": ["task": "mqar", "model": ["layer": "attention"]], "grid": ["seed": [0, 1, 2, 3, 4]]])
        let runs = try spec.runs()
        let exe = URL(fileURLWithPath: "/bin/true")
        let out = URL(fileURLWithPath: "/tmp/none")
        let shards = try (0..<2).map { try SweepRunner(runs: runs, output: out, jobs: 1, shard: ($0, 2), executable: exe).runs.map(\.id) }
        XCTAssertEqual(shards[0].count + shards[1].count, 5)
        XCTAssertEqual(Set(shards[0]).intersection(shards[1]), [])
        XCTAssertThrowsError(try SweepRunner(runs: runs, output: out, jobs: 1, shard: (2, 2), executable: exe))
    }

    func testARunDirectoryFromAnEarlierSpecIsRefused() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("seqlab-sweep-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        let runs = try SweepSpec(["base": ["task": "mqar", "model": ["layer": "attention"]], "grid": ["seed": [0, 1]]]).runs()
        let exe = URL(fileURLWithPath: "/bin/true")
        for (run, lr) in [(runs[0], runs[0].config.learningRate), (runs[1], 0.5)] {
            var config = run.config
            config.learningRate = lr
            config.gitCommit = "abc"  // bookkeeping: not a difference
            let dir = out.appendingPathComponent(run.id)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try RunFileCoding.encoder.encode(config).write(to: dir.appendingPathComponent("config.json"))
            try Data("{}".utf8).write(to: dir.appendingPathComponent("final.json"))  // a finished run (its metrics unread)
        }
        XCTAssertThrowsError(try SweepRunner(runs: runs, output: out, jobs: 1, executable: exe)) {
            XCTAssertTrue("\($0)".contains("1 run directory"), "\($0)")
            XCTAssertTrue("\($0)".contains("first: seed-1"), "\($0)")
        }
        XCTAssertNoThrow(try SweepRunner(runs: [runs[0]], output: out, jobs: 1, executable: exe))
        // a directory only started (config.json, no checkpoint or final.json) holds nothing to reuse
        try FileManager.default.removeItem(at: out.appendingPathComponent("\(runs[1].id)/final.json"))
        XCTAssertNoThrow(try SweepRunner(runs: runs, output: out, jobs: 1, executable: exe))
        // a finished run with a corrupt config.json: a one-line error naming the file
        try Data("{}".utf8).write(to: out.appendingPathComponent("\(runs[1].id)/final.json"))
        try Data("not json".utf8).write(to: out.appendingPathComponent("\(runs[1].id)/config.json"))
        XCTAssertThrowsError(try SweepRunner(runs: runs, output: out, jobs: 1, executable: exe)) {
            XCTAssertTrue("\($0)".contains("config.json is corrupt"), "\($0)")
        }
    }
}

final class ResultTableTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("seqlab-table-\(UUID().uuidString)")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    /// Writes the two files `seqlab table` reads, as a finished run leaves them.
    private func run(_ id: String, layer: String, d: Int, lr: Double, seed: Int, val: Double, test: Double,
                     implementation: String? = nil) throws {
        var c = TrainConfig(task: "mqar", model: ModelConfig(layer: layer, dModel: d))
        c.learningRate = lr
        c.seed = UInt64(seed)
        let dir = directory.appendingPathComponent(id)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try RunFileCoding.encoder.encode(c).write(to: dir.appendingPathComponent("config.json"))
        let final = FinalMetrics(bestValAccuracy: val, bestValStep: 10, testAccuracy: test, testLoss: 0.1, steps: 10, params: 1000 * d,
                                 stateSize: d * 4, wallS: 1, stoppedBy: "max_steps", tests: ["test_accuracy": test, "test_len128_accuracy": test / 2],
                                 implementation: implementation)
        try JSONEncoder().encode(final).write(to: dir.appendingPathComponent("final.json"))
    }

    func testBestLearningRateOnValidationMeanStdOverSeedsAndBold() throws {
        try run("a1", layer: "gla", d: 32, lr: 0.001, seed: 0, val: 0.5, test: 0.6)
        try run("a2", layer: "gla", d: 32, lr: 0.001, seed: 1, val: 0.7, test: 0.8)
        try run("a3", layer: "gla", d: 32, lr: 0.01, seed: 0, val: 0.9, test: 0.3)  // best lr by validation
        try run("b1", layer: "attention", d: 32, lr: 0.001, seed: 0, val: 0.99, test: 0.97)
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("unfinished"), withIntermediateDirectories: true)
        let table = ResultTable(try RunResult.collect(in: directory))
        XCTAssertEqual(table.rows.count, 2)
        let gla = table.rows.first { $0.settings["model.layer"] == "gla" }!
        XCTAssertEqual(gla.bestLearningRate, "0.01")
        XCTAssertEqual(gla.learningRates, 2)
        XCTAssertEqual(gla.test.mean, 0.3, accuracy: 1e-12)
        XCTAssertTrue(table.rows.first { $0.settings["model.layer"] == "attention" }!.isBest)
        let md = table.markdown()
        XCTAssertTrue(md.contains("**0.9700 ± 0.0000**"), md)
        XCTAssertTrue(md.contains("test_len128_accuracy"))
        XCTAssertTrue(table.latex().contains("\\toprule") && table.latex().contains("\\textbf{0.9700 $\\pm$ 0.0000}"))
        XCTAssertEqual(table.csv().split(separator: "\n").count, 3)

        // Mean +- std over seeds at one learning rate.
        try FileManager.default.removeItem(at: directory.appendingPathComponent("a3"))
        let again = ResultTable(try RunResult.collect(in: directory)).rows.first { $0.settings["model.layer"] == "gla" }!
        XCTAssertEqual(again.test.mean, 0.7, accuracy: 1e-12)
        XCTAssertEqual(again.test.std, (0.02 as Double).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(again.seeds, 2)
    }

    /// A sweep that chose its rate on seed 0 and then ran seeds 1-2 there: the rate is compared on seed 0 alone
    /// (the other rate's one seed against the chosen rate's three-seed mean would favour the unreplicated rate).
    func testLearningRateIsChosenOnTheSeedsEveryRateHasRun() throws {
        try run("c0", layer: "s4", d: 64, lr: 0.01, seed: 0, val: 0.30, test: 0.30)
        try run("c1", layer: "s4", d: 64, lr: 0.01, seed: 1, val: 0.10, test: 0.10)
        try run("c2", layer: "s4", d: 64, lr: 0.01, seed: 2, val: 0.11, test: 0.11)
        try run("d0", layer: "s4", d: 64, lr: 0.0022, seed: 0, val: 0.25, test: 0.25)  // above 0.17, the 3-seed mean
        let row = ResultTable(try RunResult.collect(in: directory)).rows[0]
        XCTAssertEqual(row.bestLearningRate, "0.01")
        XCTAssertEqual(row.seeds, 3)
        XCTAssertEqual(row.test.mean, 0.17, accuracy: 1e-12)
    }

    func testReferenceControlsAreRowsOfTheirOwn() throws {
        try run("s0", layer: "mamba", d: 64, lr: 0.01, seed: 0, val: 0.2, test: 0.2)
        try run("s1", layer: "mamba", d: 64, lr: 0.01, seed: 1, val: 0.4, test: 0.4)
        try run("s0_impl-pytorch", layer: "mamba", d: 64, lr: 0.01, seed: 0, val: 0.8, test: 0.8, implementation: "pytorch")
        let table = ResultTable(try RunResult.collect(in: directory))
        XCTAssertEqual(table.columns, ["model.layer", "implementation"])
        XCTAssertEqual(table.rows.map { $0.settings["implementation"] }, ["pytorch", "seqlab"])
        XCTAssertEqual(table.rows.map(\.seeds), [1, 2])
        XCTAssertTrue(table.markdown().contains("| mamba | seqlab | 0.01 |"), table.markdown())
        // Without controls the column stays out of the table.
        try FileManager.default.removeItem(at: directory.appendingPathComponent("s0_impl-pytorch"))
        XCTAssertEqual(ResultTable(try RunResult.collect(in: directory)).columns, ["model.layer"])
    }

    func testRowNotesFromTheSpecReachTheTable() throws {
        try run("g", layer: "gla", d: 32, lr: 0.001, seed: 0, val: 0.9, test: 0.9)
        try run("s", layer: "s4d", d: 32, lr: 0.001, seed: 0, val: 0.1, test: 0.1)
        let json = """
            {"base": {"task": "mqar", "model": {"layer": "s4d"}}, "grid": {"seed": [0]},
             "notes": {"model.layer=s4d": "a convolution | cannot recall", "model.layer=s4d d_model=64": "not this row"}}
            """
        let spec = try SweepSpec(try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any])
        try RowNotes.write(spec.notes, in: directory)
        let table = try ResultTable(directory: directory)
        XCTAssertEqual(table.rows.map(\.note), [nil, "a convolution | cannot recall"])
        XCTAssertTrue(table.markdown().hasPrefix("| layer | lr | params | state size | val acc | test acc | test_len128_accuracy | seeds | note |"), table.markdown())
        XCTAssertTrue(table.markdown().contains("| 1 | a convolution \\| cannot recall |"), table.markdown())
        XCTAssertTrue(table.csv().contains(",a convolution | cannot recall\n"), table.csv())
        XCTAssertTrue(table.latex().contains("{lrrrrrrrl}"), table.latex())
        // no notes: no column, and the file goes
        try RowNotes.write([:], in: directory)
        XCTAssertFalse(try ResultTable(directory: directory).markdown().contains("note"))
        // a malformed selector is refused, in a spec and in a file
        let bad = #"{"base": {"task": "mqar", "model": {"layer": "s4d"}}, "notes": {"s4d": "x"}}"#
        XCTAssertThrowsError(try SweepSpec(try JSONSerialization.jsonObject(with: Data(bad.utf8)) as! [String: Any]))
        try Data(#"{"layer": "x"}"#.utf8).write(to: directory.appendingPathComponent("notes.json"))
        XCTAssertThrowsError(try ResultTable(directory: directory))
    }

    func testListValuedSettingsReadAsJoinedNames() throws {
        XCTAssertEqual(SweepSpec.text(["embedding", "bias"]), "embedding+bias")
        XCTAssertEqual(SweepSpec.text([String]()), "none")
        let json = """
            {"base": {"task": "mqar", "model": {"layer": "mamba", "d_model": 16}, "max_steps": 10},
             "grid": {"no_decay": [["norm", "ssm"], []]}}
            """
        let runs = try SweepSpec(try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]).runs()
        XCTAssertEqual(runs.map(\.id), ["no_decay-norm+ssm", "no_decay-none"])
        XCTAssertEqual(runs.map(\.config.noDecay), [[.norm, .ssm], []])
    }

    func testPlotsRenderValidSVG() throws {
        try run("a1", layer: "gla", d: 32, lr: 0.001, seed: 0, val: 0.5, test: 0.6)
        try run("a2", layer: "gla", d: 64, lr: 0.001, seed: 0, val: 0.7, test: 0.8)
        try run("b1", layer: "attention", d: 32, lr: 0.001, seed: 0, val: 0.99, test: 0.97)
        for kind in [PlotKind.width, .state] {
            let svg = try RunPlots.chart(kind, directory: directory).svg()
            XCTAssertTrue(svg.hasPrefix("<svg") && svg.hasSuffix("</svg>\n"))
            XCTAssertTrue(XMLParser(data: Data(svg.utf8)).parse(), "well-formed XML")
            XCTAssertTrue(svg.contains(">gla<") && svg.contains(">attention<"))
        }
        XCTAssertThrowsError(try RunPlots.chart(.speed, directory: directory))
        try Data(#"{"layer": "gla", "length": 1024, "fwd_bwd_ms": 10}"#.utf8 + [10] + #"{"layer": "gla", "length": 4096, "fwd_bwd_ms": 45}"#.utf8)
            .write(to: directory.appendingPathComponent("speed.jsonl"))
        let speed = try RunPlots.chart(.speed, directory: directory)
        XCTAssertTrue(speed.panels[0].logX && speed.panels[0].logY)
        XCTAssertEqual(speed.panels[0].series[0].points.count, 2)
    }

    func testLogAxisTicksArePowers() {
        XCTAssertEqual(Axis(values: [10, 10000], log: true, from: 0, to: 100).ticks, [10, 100, 1000, 10000])
        // Under 1.5 decades (sequence lengths 1K..16K): powers of two.
        XCTAssertEqual(Axis(values: [1024, 16384], log: true, from: 0, to: 100).ticks, [1024, 2048, 4096, 8192, 16384])
    }
}
