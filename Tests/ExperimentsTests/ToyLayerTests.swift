import Foundation
@testable import Experiments
import Layers
import Tasks
import Tensors
import Training
import XCTest

/// Adding a layer is one folder (ToyLayer/ToyLayer.swift) plus one registry line: once registered, the toy layer
/// is listed, checked, run by `seqlab op`, trained, tabled and plotted in its own colour with no other change.
final class ToyLayerTests: XCTestCase {
    override class func setUp() {
        super.setUp()
        try! LayerRegistry.register(ToyFactory.self)
    }

    /// The other tests of this process see the built-in layers only.
    override class func tearDown() {
        LayerRegistry.unregister(ToyFactory.name)
        super.tearDown()
    }

    func testARegisteredLayerWorksEverywhereByName() throws {
        XCTAssertThrowsError(try LayerRegistry.register(ToyFactory.self))  // a name is registered once
        // built, with its options checked against its declarations
        let layer: any SequenceLayer<Double> = try LayerRegistry.make("toy", dModel: 4, options: LayerOptions(["decay": "0.25"]))
        XCTAssertEqual(layer.parameterCount, 16)
        XCTAssertThrowsError(try LayerRegistry.make("toy", dModel: 4, options: LayerOptions(["decay": "2"]), as: Float.self))
        // checked: gradients, step == parallel, and its op check in the catalog
        let results = try LayerCheck.run("toy", quick: true)
        XCTAssertFalse(results.isEmpty)
        XCTAssertTrue(results.allSatisfy(\.passed), results.filter { !$0.passed }.map(\.row).joined(separator: "\n"))
        let opCheck = try XCTUnwrap(CheckCatalog.opChecks.first { $0.name == "toy_scan" })
        XCTAssertTrue(opCheck.run(true).passed)
        // its kernel behind `seqlab op`
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("toy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var input = SafeTensors(metadata: ["decay": "0.5"])
        input.set("x", Tensor<Double>(shape: [1, 3, 1], data: [1, 1, 1]))
        let inURL = directory.appendingPathComponent("in.safetensors"), outURL = directory.appendingPathComponent("out.safetensors")
        try input.write(to: inURL)
        try KernelRegistry.run("toy_scan", input: inURL, output: outURL)
        XCTAssertEqual(try SafeTensors.read(from: outURL).tensor("y", as: Double.self).data, [1, 1.5, 1.75])
        // trained by name, and its runs tabled and plotted in its colour
        var config = TrainConfig(task: "mqar", taskOptions: Options(["train_size": "32", "val_size": "8", "test_size": "8", "seq_len": "16", "num_pairs": "2"]),
                                 model: ModelConfig(layer: "toy", layerOptions: Options(["decay": "0.8"]), dModel: 8, nLayers: 1))
        config.maxSteps = 4
        config.evalEvery = 2
        try config.validate()
        let run = directory.appendingPathComponent("runs/toy")
        try Trainer(config: config, directory: run) { _ in }.train()
        let table = try ResultTable(directory: directory.appendingPathComponent("runs"))
        XCTAssertEqual(table.rows.map { $0.settings["model.layer"] }, ["toy"])
        XCTAssertEqual(table.rows[0].stateSize, 8)
        let svg = try RunPlots.chart(.curves, directory: directory.appendingPathComponent("runs")).svg()
        XCTAssertTrue(svg.contains(ToyFactory.plotColor), "the plot draws the toy layer in its own colour")
    }

    /// No two registered layers share a plot colour.
    func testPlotColorsAreDistinct() {
        let colors = LayerRegistry.factories.map { $0.plotColor.uppercased() }
        XCTAssertEqual(colors.count, Set(colors).count, "\(zip(LayerRegistry.names, colors).map { "\($0)=\($1)" })")
    }
}
