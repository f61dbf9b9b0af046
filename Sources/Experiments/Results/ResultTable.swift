import Foundation
import Tasks
import Tensors
import Training

/// One finished run: its flattened configuration and final metrics.
public struct RunResult {
    public let id: String
    public let directory: URL
    /// The config as dotted keys ("model.layer", "lr", "task_options.seq_len") and their values as text, and
    /// `implementation` (final.json's: "seqlab" for SequenceLab's own runs, "pytorch" for a reference control).
    public let settings: [String: String]
    public let final: FinalMetrics
    /// The recurrent state size at the task's declared training length (`TrainConfig.reportedStateSize`), computed
    /// from config.json; final.json's figure where the config cannot be built (a layer or task no longer registered).
    public let stateSize: Int
    /// That training length (nil where the task is not registered).
    public let stateLength: Int?

    /// Every finished run under `directory` (one sub-directory per run holding config.json and final.json).
    public static func collect(in directory: URL) throws -> [RunResult] {
        guard let entries = try? FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil) else {
            throw SequenceLabError("\(directory.path) does not exist or is not a directory")
        }
        return try entries.sorted { $0.lastPathComponent < $1.lastPathComponent }.compactMap { dir in
            let finalURL = dir.appendingPathComponent("final.json"), configURL = dir.appendingPathComponent("config.json")
            // A directory without final.json is an unfinished run (or not a run); one with it must be whole.
            guard FileManager.default.fileExists(atPath: finalURL.path) else { return nil }
            guard let finalData = FileManager.default.contents(atPath: finalURL.path) else {
                throw SequenceLabError("\(dir.path): final.json is not a readable file")
            }
            guard let configData = FileManager.default.contents(atPath: configURL.path) else {
                throw SequenceLabError("\(dir.path): a finished run (final.json) without a readable config.json")
            }
            guard let final = try? JSONDecoder().decode(FinalMetrics.self, from: finalData),
                  let object = try? JSONSerialization.jsonObject(with: configData) as? [String: Any] else {
                throw SequenceLabError("\(dir.path): final.json or config.json is corrupt")
            }
            var settings = flatten(object)
            settings["implementation"] = final.implementation ?? "seqlab"
            let config = try? RunFileCoding.decoder.decode(TrainConfig.self, from: configData)
            let stateSize = (try? config?.reportedStateSize()) ?? final.stateSize
            let stateLength = config.flatMap { try? TaskRegistry.trainingLength($0.task, $0.taskOptions) }
            return RunResult(id: dir.lastPathComponent, directory: dir, settings: settings, final: final, stateSize: stateSize,
                             stateLength: stateLength)
        }
    }

    static func flatten(_ object: [String: Any], prefix: String = "") -> [String: String] {
        var out: [String: String] = [:]
        for (k, v) in object {
            let key = prefix.isEmpty ? k : "\(prefix).\(k)"
            if let child = v as? [String: Any] { out.merge(flatten(child, prefix: key)) { a, _ in a } } else { out[key] = SweepSpec.text(v) }
        }
        return out
    }
}

/// A results table: one row per configuration (all settings but seed and learning rate), the learning rate chosen
/// on validation accuracy (as Zoology does; averaged over the seeds that every candidate rate has run), mean +- std
/// over all seeds at that learning rate, parameter count and state size; the best test accuracy of each task in bold.
public struct ResultTable {
    public struct Row {
        public var settings: [String: String]
        public var bestLearningRate: String
        public var learningRates: Int
        public var seeds: Int
        public var params: Int
        public var stateSize: Int
        /// The training length `stateSize` is at (the task's declared longest training sequence).
        public var stateLength: Int?
        public var validation: (mean: Double, std: Double)
        public var test: (mean: Double, std: Double)
        public var extraTests: [String: Double]
        /// The ids (directory names) of the runs behind the row: its seeds at the chosen learning rate.
        public var runIDs: [String]
        public var isBest = false
        /// Why the row reads as it does, from DIR/notes.json (the sweep spec's `notes`); nil for none.
        public var note: String? = nil
    }

    /// The settings that differ between rows (the table's leading columns).
    public let columns: [String]
    public let extraTestColumns: [String]
    public let rows: [Row]

    static let ignoredKeys: Set = ["seed", "lr", "git_commit"]

    /// The table of a directory of runs, with the row notes of its notes.json.
    public init(directory: URL) throws {
        self.init(try RunResult.collect(in: directory), notes: try RowNotes.read(in: directory))
    }

    public init(_ results: [RunResult], notes: [String: String] = [:]) {
        let keys = Set(results.flatMap(\.settings.keys)).subtracting(Self.ignoredKeys)
        let varying = keys.filter { k in Set(results.map { $0.settings[k] ?? "" }).count > 1 }
        let preferred = ["task", "model.layer"]
        let columns = preferred.filter { varying.contains($0) || $0 == "model.layer" } + varying.subtracting(preferred).sorted()
        self.columns = columns
        let groups = Dictionary(grouping: results) { r in keys.sorted().map { r.settings[$0] ?? "" }.joined(separator: "\u{1}") }
        extraTestColumns = Array(Set(results.flatMap { $0.final.tests.keys.filter { $0.hasSuffix("_accuracy") && $0 != "test_accuracy" } })).sorted()
        var rows: [Row] = groups.values.map { group in
            let byLR = Dictionary(grouping: group) { $0.settings["lr"] ?? "" }
            // The higher mean validation accuracy over the seeds every rate has run (a sweep that chose its rate on
            // seed 0 and ran more seeds there compares seed 0 with seed 0); a tie goes to the smaller learning rate.
            let seedSets = byLR.values.map { Set($0.map { $0.settings["seed"] ?? "" }) }
            let common = seedSets.dropFirst().reduce(seedSets.first ?? []) { $0.intersection($1) }
            func selectionScore(_ runs: [RunResult]) -> Double {
                mean((common.isEmpty ? runs : runs.filter { common.contains($0.settings["seed"] ?? "") }).map(\.final.bestValAccuracy))
            }
            let (lr, runs) = byLR.max { a, b in
                let (ma, mb) = (selectionScore(a.value), selectionScore(b.value))
                return ma != mb ? ma < mb : (Double(a.key) ?? 0) > (Double(b.key) ?? 0)
            }!
            var extra: [String: Double] = [:]
            for c in Set(runs.flatMap(\.final.tests.keys)) { extra[c] = mean(runs.compactMap { $0.final.tests[c] }) }
            return Row(settings: group[0].settings, bestLearningRate: lr, learningRates: byLR.count, seeds: runs.count,
                       params: runs[0].final.params, stateSize: runs[0].stateSize, stateLength: runs[0].stateLength,
                       validation: meanStd(runs.map(\.final.bestValAccuracy)), test: meanStd(runs.map(\.final.testAccuracy)),
                       extraTests: extra, runIDs: runs.map(\.id).sorted())
        }
        rows.sort { a, b in
            let ka = columns.map { a.settings[$0] ?? "" }, kb = columns.map { b.settings[$0] ?? "" }
            return ka.lexicographicallyPrecedes(kb) { x, y in Double(x).flatMap { dx in Double(y).map { dx < $0 } } ?? (x < y) }
        }
        // The best entry of each task (a task with its options: parity and each word-problem group apart).
        let taskKey = Self.taskKey
        for task in Set(rows.map(taskKey)) {
            let best = rows.filter { taskKey($0) == task }.map(\.test.mean).max()
            for i in rows.indices where taskKey(rows[i]) == task && rows[i].test.mean == best { rows[i].isBest = true }
        }
        for i in rows.indices {
            let matching = notes.keys.sorted().filter { RowNotes.matches($0, rows[i].settings) }.map { notes[$0]! }
            if !matching.isEmpty { rows[i].note = matching.joined(separator: "; ") }
        }
        self.rows = rows
    }

    /// Whether any row carries a note (the tables then end with a note column).
    var hasNotes: Bool { rows.contains { $0.note != nil } }

    /// A row's task with its options ("task=word_problem group=S3"): what "the same task" means for bold entries
    /// and plot panels.
    public static func taskKey(_ row: Row) -> String {
        let keys = row.settings.keys.filter { $0 == "task" || $0.hasPrefix("task_options.") }.sorted()
        return keys.map { setting($0, row.settings[$0]!) }.joined(separator: " ")
    }

    /// A setting as a short label: the last part of its dotted key, "=", its value ("d_model=64").
    static func setting(_ key: String, _ value: String) -> String { "\(header(key))=\(value)" }

    private static func header(_ key: String) -> String { key.split(separator: ".").last.map(String.init) ?? key }

    /// Markdown (GitHub tables).
    public func markdown() -> String {
        let head = columns.map(Self.header) + ["lr", "params", "state size", "val acc", "test acc"] + extraTestColumns + ["seeds"]
            + (hasNotes ? ["note"] : [])
        var lines = ["| " + head.joined(separator: " | ") + " |", "|" + head.map { _ in "---" }.joined(separator: "|") + "|"]
        for r in rows {
            let test = String(format: "%.4f ± %.4f", r.test.mean, r.test.std)
            var cells = columns.map { r.settings[$0] ?? "" }
            cells += [r.bestLearningRate, "\(r.params)", "\(r.stateSize)", String(format: "%.4f", r.validation.mean),
                      r.isBest ? "**\(test)**" : test]
            cells += extraTestColumns.map { r.extraTests[$0].map { String(format: "%.4f", $0) } ?? "" } + ["\(r.seeds)"]
            if hasNotes { cells.append((r.note ?? "").replacingOccurrences(of: "|", with: "\\|")) }
            lines.append("| " + cells.joined(separator: " | ") + " |")
        }
        return lines.joined(separator: "\n") + "\n\n" + stateSizeNote + "\n"
    }

    /// What the state size column counts, and at which lengths.
    var stateSizeNote: String {
        let lengths = Set(rows.map { r in
            let task = r.settings["task"] ?? "?"
            return r.stateLength.map { "\(task) T = \($0)" } ?? "\(task): length of its first training example"
        }).sorted()
        return "State size: recurrent state in scalars per sequence after the task's longest training sequence ("
            + lengths.joined(separator: "; ") + ")."
    }

    /// LaTeX with booktabs rules.
    public func latex() -> String {
        func escape(_ s: String) -> String { s.replacingOccurrences(of: "_", with: "\\_").replacingOccurrences(of: "%", with: "\\%") }
        let head = columns.map(Self.header) + ["lr", "params", "state size", "val acc", "test acc"] + extraTestColumns + ["seeds"]
            + (hasNotes ? ["note"] : [])
        let alignment = String(repeating: "l", count: columns.count) + String(repeating: "r", count: head.count - columns.count - (hasNotes ? 1 : 0))
            + (hasNotes ? "l" : "")
        var lines = ["\\begin{tabular}{" + alignment + "}",
                     "\\toprule", head.map(escape).joined(separator: " & ") + " \\\\", "\\midrule"]
        for r in rows {
            let test = String(format: "%.4f $\\pm$ %.4f", r.test.mean, r.test.std)
            var cells = columns.map { escape(r.settings[$0] ?? "") }
            cells += [r.bestLearningRate, "\(r.params)", "\(r.stateSize)", String(format: "%.4f", r.validation.mean),
                      r.isBest ? "\\textbf{\(test)}" : test]
            cells += extraTestColumns.map { r.extraTests[$0].map { String(format: "%.4f", $0) } ?? "" } + ["\(r.seeds)"]
            if hasNotes { cells.append(escape(r.note ?? "")) }
            lines.append(cells.joined(separator: " & ") + " \\\\")
        }
        lines += ["\\bottomrule", "\\end{tabular}"]
        return lines.joined(separator: "\n") + "\n"
    }

    /// CSV with separate mean and std columns.
    public func csv() -> String {
        func quote(_ s: String) -> String { s.contains(",") || s.contains("\"") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s }
        let head = columns + ["lr", "params", "state_size", "val_acc_mean", "val_acc_std", "test_acc_mean", "test_acc_std"] + extraTestColumns + ["seeds", "best"]
            + (hasNotes ? ["note"] : [])
        var lines = [head.map(quote).joined(separator: ",")]
        for r in rows {
            var cells = columns.map { r.settings[$0] ?? "" }
            cells += [r.bestLearningRate, "\(r.params)", "\(r.stateSize)", "\(r.validation.mean)", "\(r.validation.std)", "\(r.test.mean)", "\(r.test.std)"]
            cells += extraTestColumns.map { r.extraTests[$0].map { "\($0)" } ?? "" } + ["\(r.seeds)", r.isBest ? "1" : "0"]
                + (hasNotes ? [r.note ?? ""] : [])
            lines.append(cells.map(quote).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// DIR/notes.json: row selectors ("model.layer=s4d", "model.layer=gla d_model=64": every dotted key=value of a row's
/// settings must match) and the one-line note each selected row carries in the tables.
public enum RowNotes {
    static let fileName = "notes.json"

    /// The key=value pairs of a selector; nil when malformed.
    static func selector(_ text: String) -> [(key: String, value: String)]? {
        let pairs = text.split(separator: " ").map { $0.split(separator: "=", maxSplits: 1).map(String.init) }
        guard !pairs.isEmpty, pairs.allSatisfy({ $0.count == 2 && !$0[0].isEmpty }) else { return nil }
        return pairs.map { ($0[0], $0[1]) }
    }

    static func matches(_ selector: String, _ settings: [String: String]) -> Bool {
        Self.selector(selector)?.allSatisfy { settings[$0.key] == $0.value } ?? false
    }

    /// The notes of a directory (none without notes.json); a malformed file is a one-line error.
    public static func read(in directory: URL) throws -> [String: String] {
        let url = directory.appendingPathComponent(fileName)
        guard let data = FileManager.default.contents(atPath: url.path) else { return [:] }
        guard let notes = try? JSONSerialization.jsonObject(with: data) as? [String: String],
              notes.keys.allSatisfy({ selector($0) != nil }) else {
            throw SequenceLabError("\(url.path) is not an object of row selectors ('key=value ...') and notes")
        }
        return notes
    }

    /// Writes (atomically) or, for no notes, removes DIR/notes.json.
    static func write(_ notes: [String: String], in directory: URL) throws {
        let url = directory.appendingPathComponent(fileName)
        if notes.isEmpty {
            if FileManager.default.fileExists(atPath: url.path) { try FileManager.default.removeItem(at: url) }
            return
        }
        try writeAtomically(try JSONSerialization.data(withJSONObject: notes, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]), to: url)
    }
}

func mean(_ xs: [Double]) -> Double { xs.isEmpty ? .nan : xs.reduce(0, +) / Double(xs.count) }

/// Mean and sample standard deviation (0 for one value).
func meanStd(_ xs: [Double]) -> (mean: Double, std: Double) {
    let m = mean(xs)
    guard xs.count > 1 else { return (m, 0) }
    return (m, (xs.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(xs.count - 1)).squareRoot())
}
