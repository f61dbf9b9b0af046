import Foundation
import XCTest
import Tasks
import Training
@testable import Experiments

/// The tables and plots in Results/ are what `seqlab table` and `seqlab plot` make of the runs committed next to
/// them: regenerated here from each folder's run directories (final.json, config.json, metrics.jsonl) and compared
/// byte for byte. A table edited by hand, or left behind by runs that were later redone, fails.
final class ResultsConsistencyTests: XCTestCase {
    /// The repository's Results/ folder (this file is Tests/ExperimentsTests/ResultsConsistencyTests.swift).
    private let results = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Results")

    private func folders() throws -> [URL] {
        let fm = FileManager.default
        guard fm.fileExists(atPath: results.path) else { throw XCTSkip("no Results/ next to the sources") }
        return try fm.contentsOfDirectory(at: results, includingPropertiesForKeys: nil)
            .filter { (try? $0.resourceValues(forKeys: [.isDirectoryKey]).isDirectory) == true }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    private func committed(_ file: URL) -> String? {
        FileManager.default.contents(atPath: file.path).map { String(decoding: $0, as: UTF8.self) }
    }

    func testEveryTableMatchesItsRuns() throws {
        var checked = 0
        for folder in try folders() {
            let runs = try RunResult.collect(in: folder)
            guard !runs.isEmpty else { continue }  // e.g. Results/speed: a benchmark log, not training runs
            let table = ResultTable(runs, notes: try RowNotes.read(in: folder))
            for (format, text) in [("md", table.markdown()), ("tex", table.latex()), ("csv", table.csv())] {
                let file = folder.appendingPathComponent("table.\(format)")
                guard let saved = committed(file) else { continue }
                XCTAssertEqual(saved, text, "\(file.path) differs from `seqlab table \(folder.lastPathComponent) --format \(format)`")
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 0, "no result tables found")
    }

    func testEveryPlotMatchesItsRuns() throws {
        var checked = 0
        for folder in try folders() {
            let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".svg") }.sorted()
            for name in files {
                // KIND.svg (or accuracy-vs-KIND.svg) is `seqlab plot --kind KIND`; other SVGs (notebooks') are not plots of runs.
                let stem = String(name.dropLast(4))
                guard let kind = PlotKind(rawValue: stem) ?? PlotKind(rawValue: stem.replacingOccurrences(of: "accuracy-vs-", with: ""))
                else { continue }
                let svg = try RunPlots.chart(kind, directory: folder).svg()
                XCTAssertEqual(committed(folder.appendingPathComponent(name)), svg,
                               "\(folder.lastPathComponent)/\(name) differs from `seqlab plot --kind \(kind.rawValue)`")
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 0, "no plots found")
    }
}

/// Every committed run's config.json still describes the model that ran: the model it builds today has the parameter
/// count final.json recorded. (A changed default would make an old config mean another model.)
final class ResultsConfigTests: XCTestCase {
    private let results = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Results")

    func testEveryRunsConfigBuildsTheModelThatRan() throws {
        let fm = FileManager.default
        guard fm.fileExists(atPath: results.path) else { throw XCTSkip("no Results/ next to the sources") }
        var checked = 0
        for folder in try fm.contentsOfDirectory(at: results, includingPropertiesForKeys: nil) {
            for run in (try? fm.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)) ?? [] {
                guard let finalData = fm.contents(atPath: run.appendingPathComponent("final.json").path),
                      let configData = fm.contents(atPath: run.appendingPathComponent("config.json").path) else { continue }
                let final = try JSONDecoder().decode(FinalMetrics.self, from: finalData)
                guard final.implementation ?? "seqlab" == "seqlab" else { continue }  // reference controls: PyTorch's model
                var config = try RunFileCoding.decoder.decode(TrainConfig.self, from: configData)
                // the split sizes do not change the model; small ones keep generated tasks quick to build
                let specs = try TaskRegistry.factory(named: config.task).options.map(\.name)
                for key in ["train_size", "val_size", "test_size"] where specs.contains(key) { config.taskOptions.values[key] = "2" }
                let name = "\(folder.lastPathComponent)/\(run.lastPathComponent)"
                do {
                    let task = try TaskRegistry.make(config.task, options: config.taskOptions, seed: config.seed)
                    let model = try SequenceModel<Float>(config: config.model, task: task, seed: config.seed)
                    XCTAssertEqual(model.parameters.reduce(0) { $0 + $1.tensor.count }, final.params,
                                   "\(name): its config.json builds another model today")
                } catch {
                    XCTFail("\(name): its config.json no longer builds a model: \(error)")
                }
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 0)
    }
}
