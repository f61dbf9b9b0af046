import Foundation
import XCTest
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
