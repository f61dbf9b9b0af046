import Foundation
import Tensors
import Training

/// The plots `seqlab plot DIR` draws from a directory of runs.
public enum PlotKind: String, CaseIterable, Sendable {
    /// Validation accuracy against step, one line per run.
    case curves
    /// Test accuracy against d_model, one line per layer (best learning rate, mean over seeds).
    case width
    /// Test accuracy against recurrent state size (log axis), one line per layer.
    case state
    /// Forward + backward time against sequence length (log-log), one line per layer, from DIR/speed.jsonl.
    case speed
}

public enum RunPlots {
    public static func chart(_ kind: PlotKind, directory: URL) throws -> LineChart {
        switch kind {
        case .curves: return try curves(directory)
        case .width: return try accuracyAgainst("model.d_model", label: "d_model", log: false, directory)
        case .state: return try accuracyAgainst("state_size", label: "state size (scalars per sequence)", log: true, directory)
        case .speed: return try speed(directory)
        }
    }

    static func curves(_ directory: URL) throws -> LineChart {
        let results = try RunResult.collect(in: directory)
        guard !results.isEmpty else { throw SequenceLabError("\(directory.path): no finished runs") }
        let series = results.map { r -> LineChart.Series in
            let lines = (try? String(contentsOf: r.directory.appendingPathComponent("metrics.jsonl"), encoding: .utf8)) ?? ""
            let records = lines.split(separator: "\n").compactMap { try? JSONDecoder().decode(MetricsRecord.self, from: Data($0.utf8)) }
            return LineChart.Series(name: r.id, points: records.filter { $0.split == "validation" }.map { (Double($0.step), $0.accuracy) })
        }
        return LineChart(title: "Validation accuracy", xLabel: "step", yLabel: "accuracy", series: series)
    }

    /// Test accuracy of each table row against a setting, one series per layer (and its options).
    static func accuracyAgainst(_ key: String, label: String, log: Bool, _ directory: URL) throws -> LineChart {
        let table = ResultTable(try RunResult.collect(in: directory))
        guard !table.rows.isEmpty else { throw SequenceLabError("\(directory.path): no finished runs") }
        let groups = Dictionary(grouping: table.rows) { row in
            ([row.settings["model.layer"] ?? "?"] + row.settings.keys.filter { $0.hasPrefix("model.layer_options.") }.sorted()
                .map { "\($0.split(separator: ".").last!)=\(row.settings[$0]!)" }).joined(separator: " ")
        }
        let series = groups.keys.sorted().map { name in
            LineChart.Series(name: name, points: groups[name]!.compactMap { row in
                let x = key == "state_size" ? Double(row.stateSize) : Double(row.settings[key] ?? "")
                return x.map { ($0, row.test.mean) }
            })
        }
        return LineChart(title: "Test accuracy", xLabel: label, yLabel: "test accuracy", logX: log, series: series)
    }

    /// One benchmark measurement of DIR/speed.jsonl.
    struct SpeedRecord: Decodable { let layer: String; let length: Int; let fwd_bwd_ms: Double }

    static func speed(_ directory: URL) throws -> LineChart {
        let file = directory.appendingPathComponent("speed.jsonl")
        guard let text = try? String(contentsOf: file, encoding: .utf8) else {
            throw SequenceLabError("\(file.path) does not exist (seqlab bench --json rows with a length field)")
        }
        let records = try text.split(separator: "\n").map { line -> SpeedRecord in
            do { return try JSONDecoder().decode(SpeedRecord.self, from: Data(line.utf8)) } catch {
                throw SequenceLabError("\(file.path): malformed line '\(line.prefix(60))'")
            }
        }
        let groups = Dictionary(grouping: records, by: \.layer)
        let series = groups.keys.sorted().map { LineChart.Series(name: $0, points: groups[$0]!.map { (Double($0.length), $0.fwd_bwd_ms) }) }
        return LineChart(title: "Forward + backward time", xLabel: "sequence length", yLabel: "ms", logX: true, logY: true, series: series)
    }
}
