import ArgumentParser
import Foundation
import Layers
import Tasks
import Tensors
import Training

/// `seqlab train`: one training run; rerunning the same command on the same --out resumes it.
struct Train: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            abstract: "Train a model (any layer, any task); resumes when --out already holds the run.",
            discussion: "Settings are flags (they override the keys of --config FILE); every one is checked against its "
                + "declaration.\n\n" + ConfigFlags.help)
    }

    @Option(help: "Task name (seqlab list).") var task: String?
    @Option(help: "Mixer layer name (seqlab list).") var layer: String?
    @Option(help: "A config file (JSON, the format of a run's config.json); flags override its keys.") var config: String?
    @Option(help: "Run directory.") var out: String

    @Argument(parsing: .allUnrecognized, help: "Settings: --name value (see below).") var settings: [String] = []

    func run() throws {
        if out.trimmingCharacters(in: .whitespaces).isEmpty { fail("--out must name the run directory") }
        let config = reportingErrors { try resolveRun(task: task, layer: layer, config: self.config, settings: settings) }
        StopSignals.install()  // SIGTERM / SIGUSR1 / SIGINT: checkpoint the current step, then exit 128 + signal
        do {
            try Trainer(config: config, directory: URL(fileURLWithPath: out)) { line in
                print(line)
                fflush(stdout)
            }.train()
        } catch let stopped as TrainingStopped {
            FileHandle.standardError.write(Data("stopped: \(stopped)\n".utf8))
            Foundation.exit(128 + stopped.signal)
        } catch {
            fail("\(error)")
        }
    }
}

/// A run's configuration from `seqlab train` arguments, with what `seqlab config show` reports about it.
struct ResolvedRun {
    let config: TrainConfig
    /// The config file's object (nil without --config), its name, and the key paths the flags set.
    let file: [String: Any]?
    let source: String
    let flagged: Set<String>
}

/// The configuration of `seqlab train` (and `seqlab config show`) arguments: the config file's object (or the task's
/// suggested run for --task and --layer), --task/--layer, then the flags, resolved and checked.
func resolveRun(task: String?, layer: String?, config: String?, settings: [String]) throws -> TrainConfig {
    try resolveRunExplained(task: task, layer: layer, config: config, settings: settings).config
}

func resolveRunExplained(task: String?, layer: String?, config: String?, settings: [String]) throws -> ResolvedRun {
    var object: [String: Any]
    var file: [String: Any]?
    var source: String
    if let config {
        object = try TrainConfig.loadObject(from: URL(fileURLWithPath: config))
        file = object
        source = "config file \(config)"
    } else {
        guard task != nil, layer != nil else { throw SequenceLabError("train: give --task and --layer (or --config FILE)") }
        object = [:]
        source = "flags"
    }
    var flagged = Set<String>()
    if let task { object["task"] = task; flagged.insert("task") }
    if let layer { object[path: ["model"]]["layer"] = layer; flagged.insert("model.layer") }
    flagged.formUnion(try ConfigFlags.apply(settings, to: &object))
    let resolved = try TrainConfig.resolve(object, source: config != nil && !settings.isEmpty ? source + " with flags" : source)
    return ResolvedRun(config: resolved, file: file, source: config.map { "file \($0)" } ?? "flags", flagged: flagged)
}

/// `seqlab config show [train arguments]`: the resolved configuration and where each value came from.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Inspect a run's configuration.", subcommands: [Show.self])

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the resolved configuration of `seqlab train` arguments, each value with its source "
                + "(default, recipe, recipe for the layer, file, flag); --json prints the config.json a run would write.")

        @Option(help: "Task name (seqlab list).") var task: String?
        @Option(help: "Mixer layer name (seqlab list).") var layer: String?
        @Option(help: "A config file (JSON); flags override its keys.") var config: String?
        @Option(help: "Accepted and ignored, so that a train command line can be pasted as it is.") var out: String?
        @Flag(help: "Print the resolved config as JSON (the run's config.json, git commit aside).") var json = false
        @Argument(parsing: .allUnrecognized, help: "Settings, as for seqlab train.") var settings: [String] = []

        func run() throws {
            let run = reportingErrors { try resolveRunExplained(task: task, layer: layer, config: config, settings: settings) }
            if json {
                print(String(decoding: reportingErrors { try RunFileCoding.encoder.encode(run.config) }, as: UTF8.self))
                return
            }
            let rows = reportingErrors {
                try ConfigSources.explain(run.config, file: run.file, fileName: run.source, flagged: run.flagged)
            }
            let width = rows.map(\.key.count).max() ?? 0, valueWidth = min(40, rows.map(\.value.count).max() ?? 0)
            for row in rows {
                print(row.key.padding(toLength: width, withPad: " ", startingAt: 0) + "  "
                      + row.value.padding(toLength: max(valueWidth, row.value.count), withPad: " ", startingAt: 0) + "  " + row.source)
            }
        }
    }
}
