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
                row.settings[key].map { "\(key.split(separator: ".").last!)=\($0)" }
            }).joined(separator: " ")
            return curvesPanel(tasks[task]!, table: table, byID: byID, task: tasks.count > 1 ? title : nil)
        }
    }

    private static func curvesPanel(_ rows: [ResultTable.Row], table: ResultTable, byID: [String: RunResult], task: String?) -> LineChart {
        let styles = SeriesStyles(table, naming: rows)
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
                .map { "\($0.split(separator: ".").last!)=\(row.settings[$0]!)" }).joined(separator: " ")
        }
        let styles = SeriesStyles(table)
        let series = groups.keys.sorted().map { name in
            LineChart.Series(name: name, points: groups[name]!.compactMap { row in
                let x = key == "state_size" ? Double(row.stateSize) : Double(row.settings[key] ?? "")
                return x.map { ($0, row.test.mean) }
            }, color: styles.style(of: groups[name]![0]).color)
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
                             color: SeriesStyles.colorIndex(of: layer))
        }
        return LineChart(title: "Forward + backward time", xLabel: "sequence length", yLabel: "ms", logX: true, logY: true, series: series)
    }
}

/// Line styles and names for a table's rows: one colour per layer (the same in every plot), one dash
/// pattern per combination of the other settings that vary within the layer (width, options: solid for the first),
/// names from those settings.
struct SeriesStyles {
    let layers: [String]
    /// Per layer, its rows' other varying settings in order: the dash pattern's index.
    let others: [String: [String]]
    let columns: [String]

    /// Colours over all of the table's rows; names and dashes from the columns that vary inside one layer's rows of
    /// `naming` (all rows): a setting a recipe gives one layer only (its own learning rate, width or batch) is part
    /// of what the layer's name means, and stays in the table.
    init(_ table: ResultTable, naming: [ResultTable.Row]? = nil) {
        let named = naming ?? table.rows
        let byLayer = Dictionary(grouping: named) { $0.settings["model.layer"] ?? "?" }
        columns = table.columns.filter { key in
            key != "model.layer" && byLayer.values.contains { rows in Set(rows.map { $0.settings[key] ?? "" }).count > 1 }
        }
        let present = Set(table.rows.map { $0.settings["model.layer"] ?? "?" })
        layers = LayerRegistry.names + present.subtracting(LayerRegistry.names).sorted()
        others = Dictionary(grouping: named) { $0.settings["model.layer"] ?? "?" }.mapValues { [columns] rows in
            Array(Set(rows.map { Self.rest(of: $0, columns: columns) })).sorted()
        }
    }

    private static func rest(of row: ResultTable.Row, columns: [String]) -> String {
        columns.filter { $0 != "model.layer" }.compactMap { key in
            row.settings[key].map { "\(key.split(separator: ".").last.map(String.init) ?? key)=\($0)" }
        }.joined(separator: " ")
    }

    /// A layer's palette index: its place in the registry, so it keeps its colour across every plot (diagonal and
    /// GAM share one; they are rarely plotted together).
    static func colorIndex(of layer: String) -> Int? { LayerRegistry.names.firstIndex(of: layer) }

    func style(of row: ResultTable.Row) -> (color: Int, dash: Int) {
        let layer = row.settings["model.layer"] ?? "?"
        let rest = Self.rest(of: row, columns: columns)
        return (Self.colorIndex(of: layer) ?? layers.firstIndex(of: layer) ?? 0, others[layer]?.firstIndex(of: rest) ?? 0)
    }

    func name(of row: ResultTable.Row) -> String {
        let rest = Self.rest(of: row, columns: columns)
        return ([row.settings["model.layer"] ?? "?"] + (rest.isEmpty ? [] : [rest])).joined(separator: " ")
    }
}
