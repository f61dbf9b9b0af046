import Foundation
import Layers
import Tensors
import Training

/// The plots `seqlab plot DIR` draws from a directory of runs.
public enum PlotKind: String, CaseIterable, Sendable {
    /// Validation accuracy against step, one line per table row (mean over seeds), one panel per task.
    case curves
    /// Test accuracy against d_model, one line per layer (best learning rate, mean over seeds).
    case width
    /// Test accuracy against recurrent state size (log axis), one line per layer.
    case state
    /// Forward + backward time against sequence length (log-log), one line per layer, from DIR/speed.jsonl.
    case speed
}

public enum RunPlots {
    public static func chart(_ kind: PlotKind, directory: URL) throws -> Figure {
        switch kind {
        case .curves: return Figure(try curves(directory))
        case .width: return Figure([try accuracyAgainst("model.d_model", label: "d_model", log: false, directory)])
        case .state: return Figure([try accuracyAgainst("state_size", label: "state size (scalars per sequence)", log: true, directory)])
        case .speed: return Figure([try speed(directory)])
        }
    }

    /// Validation accuracy against step, one line per table row: the mean over its seeds (at the learning rate the
    /// table chose). A run that stopped early (at its target accuracy) counts with its last value at later steps.
    /// One panel per task (with its options), named by what varies inside the panel.
    static func curves(_ directory: URL) throws -> [LineChart] {
        let results = try RunResult.collect(in: directory)
        let table = ResultTable(results)
        guard !table.rows.isEmpty else { throw SequenceLabError("\(directory.path): no finished runs") }
        let byID = Dictionary(uniqueKeysWithValues: results.map { ($0.id, $0) })
        let tasks = Dictionary(grouping: table.rows, by: ResultTable.taskKey)
        // a panel's title: its task and the task options that differ between panels
        let optionKeys = Set(table.rows.flatMap { $0.settings.keys.filter { $0.hasPrefix("task_options.") } }).sorted()
        let shownOptions = optionKeys.filter { key in Set(tasks.values.map { $0[0].settings[key] ?? "" }).count > 1 }
        return tasks.keys.sorted().map { task in
            let row = tasks[task]![0]
            let title = ([row.settings["task"] ?? "?"] + shownOptions.compactMap { key in
                row.settings[key].map { ResultTable.setting(key, $0) }
            }).joined(separator: " ")
            return curvesPanel(tasks[task]!, table: table, byID: byID, task: tasks.count > 1 ? title : nil)
        }
    }

    private static func curvesPanel(_ rows: [ResultTable.Row], table: ResultTable, byID: [String: RunResult], task: String?) -> LineChart {
        let styles = SeriesStyles(rows: rows, columns: table.columns)
        let series = rows.map { row -> LineChart.Series in
            let curves: [[(step: Int, accuracy: Double)]] = row.runIDs.compactMap { byID[$0] }.map { run in
                let lines = (try? String(contentsOf: run.directory.appendingPathComponent("metrics.jsonl"), encoding: .utf8)) ?? ""
                return lines.split(separator: "\n")
                    .compactMap { try? JSONDecoder().decode(MetricsRecord.self, from: Data($0.utf8)) }
                    .filter { $0.split == "validation" }.map { ($0.step, $0.accuracy) }
            }
            let steps = Set(curves.flatMap { $0.map(\.step) }).sorted()
            let points = steps.map { step -> (x: Double, y: Double) in
                let values = curves.compactMap { curve in curve.last { $0.step <= step }?.accuracy }
                return (Double(step), values.reduce(0, +) / Double(max(values.count, 1)))
            }
            let style = styles.style(of: row)
            return LineChart.Series(name: styles.name(of: row), points: points, color: style.color, dash: style.dash)
        }
        let seeds = Set(rows.map(\.seeds))
        let title = "Validation accuracy" + (task.map { ": \($0)" } ?? "")
            + (seeds.count == 1 && seeds.first! > 1 ? " (mean of \(seeds.first!) seeds)" : "")
        return LineChart(title: title, xLabel: "step", yLabel: "accuracy", series: series)
    }

    /// Test accuracy of each table row against a setting, one series per layer (and its options).
    static func accuracyAgainst(_ key: String, label: String, log: Bool, _ directory: URL) throws -> LineChart {
        let table = ResultTable(try RunResult.collect(in: directory))
        guard !table.rows.isEmpty else { throw SequenceLabError("\(directory.path): no finished runs") }
        let groups = Dictionary(grouping: table.rows) { row in
            ([row.settings["model.layer"] ?? "?"] + row.settings.keys.filter { $0.hasPrefix("model.layer_options.") }.sorted()
                .map { "\($0.split(separator: ".").last!)=\(row.settings[$0]!)" }
                + (row.settings["implementation"].flatMap { $0 == "seqlab" ? nil : "(\($0))" }.map { [$0] } ?? [])).joined(separator: " ")
        }
        let series = groups.keys.sorted().map { name in
            LineChart.Series(name: name, points: groups[name]!.compactMap { row in
                let x = key == "state_size" ? Double(row.stateSize) : Double(row.settings[key] ?? "")
                return x.map { ($0, row.test.mean) }
            }, color: SeriesStyles.color(of: groups[name]![0].settings["model.layer"] ?? ""))
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
        let series = groups.keys.sorted().map { layer in
            LineChart.Series(name: layer, points: groups[layer]!.map { (Double($0.length), $0.fwd_bwd_ms) },
                             color: SeriesStyles.color(of: layer))
        }
        return LineChart(title: "Forward + backward time", xLabel: "sequence length", yLabel: "ms", logX: true, logY: true, series: series)
    }
}

/// Line styles and names for a panel's rows: one colour per layer (its place in the layer registry, so the same in
/// every plot), one dash pattern per variant of a layer (solid for the first), names from the settings that vary
/// within one layer's rows. A setting a recipe gives one layer only (its own learning rate, width or batch) is part
/// of what the layer's name means there, and stays in the table.
struct SeriesStyles {
    /// The table columns that vary within some layer's rows.
    let columns: [String]
    /// Per layer, its rows' variants (labels of those columns) in order: the dash pattern's index.
    let variants: [String: [String]]

    init(rows: [ResultTable.Row], columns candidates: [String]) {
        let byLayer = Dictionary(grouping: rows, by: Self.layer)
        let columns = candidates.filter { key in
            key != "model.layer" && byLayer.values.contains { rows in Set(rows.map { $0.settings[key] ?? "" }).count > 1 }
        }
        self.columns = columns
        variants = byLayer.mapValues { rows in Array(Set(rows.map { Self.variant(of: $0, columns: columns) })).sorted() }
    }

    private static func layer(of row: ResultTable.Row) -> String { row.settings["model.layer"] ?? "?" }

    private static func variant(of row: ResultTable.Row, columns: [String]) -> String {
        columns.compactMap { key in row.settings[key].map { ResultTable.setting(key, $0) } }.joined(separator: " ")
    }

    /// A layer's colour: its factory's `plotColor` (the same in every plot); nil for a layer outside the registry
    /// (the chart then colours by position).
    static func color(of layer: String) -> String? { (try? LayerRegistry.factory(named: layer))?.plotColor }

    func style(of row: ResultTable.Row) -> (color: String?, dash: Int) {
        let layer = Self.layer(of: row)
        return (Self.color(of: layer), variants[layer]?.firstIndex(of: Self.variant(of: row, columns: columns)) ?? 0)
    }

    func name(of row: ResultTable.Row) -> String {
        let variant = Self.variant(of: row, columns: columns)
        return Self.layer(of: row) + (variant.isEmpty ? "" : " " + variant)
    }
}
