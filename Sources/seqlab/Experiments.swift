import ArgumentParser
import Experiments
import Foundation
import Tensors

/// `seqlab sweep`: run every configuration of a sweep spec (resumable).
struct Sweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a sweep spec; finished runs are skipped, interrupted ones resume.",
        discussion: "On a Slurm cluster: `seqlab sweep SPEC --out DIR --slurm [settings]` submits the unfinished runs as one "
            + "job array (a second call submits only what is neither finished nor queued); `seqlab sweep DIR --status` "
            + "shows every run's state. Settings come from the spec's \"slurm\" object, overridden by the flags.")

    @Argument(help: "The sweep spec (JSON; see Experiments/); with --status, the sweep's output directory.") var spec: String
    @Option(help: "Output directory (one sub-directory per run).") var out: String?
    @Option(parsing: .unconditional, help: "Worker processes at once (each gets cores / jobs threads).") var jobs: Int = 1
    @Option(help: "Run one slice I/N of the runs (cluster job arrays).") var shard: String?
    @Flag(name: .customLong("dry-run"), help: "List the runs (with --slurm: print the batch script) and exit.") var dryRun = false
    @Flag(help: "Submit the unfinished runs to Slurm as one job array (sbatch), print the job id.") var slurm = false
    @Flag(help: "Every run's state in the directory given as the argument: finished, pending, running, failed.") var status = false
    @Option(help: "Slurm: partition.") var partition: String?
    @Option(help: "Slurm: time limit (minutes, HH:MM:SS, D-HH:MM:SS, ...).") var time: String?
    @Option(name: .customLong("cpus-per-task"), parsing: .unconditional, help: "Slurm: cores per run, its threads (default \(SlurmSettings().cpusPerTask)).") var cpusPerTask: Int?
    @Option(help: "Slurm: memory per run (e.g. 8G).") var mem: String?
    @Option(help: "Slurm: account.") var account: String?
    @Option(help: "Slurm: quality of service.") var qos: String?
    @Option(name: .customLong("array-limit"), parsing: .unconditional, help: "Slurm: runs at once (the array's %K).") var arrayLimit: Int?
    @Option(name: .customLong("sbatch-arg"), parsing: .unconditionalSingleValue, help: "Slurm: a further sbatch option (repeatable), e.g. --sbatch-arg --constraint=avx512.") var sbatchArgs: [String] = []
    @Option(name: .customLong("signal-seconds"), parsing: .unconditional, help: "Slurm: checkpoint and requeue this many seconds before the time limit (default \(SlurmSettings().signalSeconds)).") var signalSeconds: Int?

    func run() throws {
        if status { return showStatus() }
        guard let out else { fail("--out DIR is required (the directory the runs are written to)") }
        let sweep = reportingErrors { try SweepSpec.load(from: URL(fileURLWithPath: spec)) }
        let runs = reportingErrors { try sweep.runs() }
        var shardPair: (Int, Int)? = nil
        if let shard {
            guard !slurm else { fail("--shard and --slurm do not combine (the job array is the sharding)") }
            let parts = shard.split(separator: "/", omittingEmptySubsequences: false).map { Int($0) }
            guard parts.count == 2, let i = parts[0], let n = parts[1] else { fail("--shard must be I/N (two integers), got '\(shard)'") }
            shardPair = (i, n)
        }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: out, isDirectory: &isDirectory), !isDirectory.boolValue {
            fail("--out \(out) exists and is not a directory")
        }
        var settings = sweep.slurm
        if slurm {  // every setting checked before anything is written or submitted
            if let partition { settings.partition = partition }
            if let time { settings.time = time }
            if let cpusPerTask { settings.cpusPerTask = cpusPerTask }
            if let mem { settings.memory = mem }
            if let account { settings.account = account }
            if let qos { settings.qos = qos }
            if let arrayLimit { settings.arrayLimit = arrayLimit }
            if !sbatchArgs.isEmpty { settings.extraArguments += sbatchArgs }
            if let signalSeconds { settings.signalSeconds = signalSeconds }
            reportingErrors { try settings.validate() }
        }
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let runner = reportingErrors {
            try SweepRunner(runs: runs, output: URL(fileURLWithPath: out), jobs: jobs, shard: shardPair, executable: executable,
                            notes: sweep.notes)
        }
        if slurm { return submit(SlurmSweep(runner: runner, settings: settings), executable: executable) }
        if dryRun {
            for r in runner.runs { print("\(runner.isFinished(r) ? "finished" : "pending ")  \(r.id)") }
            print("\(runner.runs.count) runs")
            return
        }
        let failed = reportingErrors { try runner.execute { print($0); fflush(stdout) } }
        if !failed.isEmpty { fail("\(failed.count) runs failed: \(failed.joined(separator: ", ")) (see their train.log)") }
    }

    /// --slurm: one job array over the runs neither finished nor queued.
    private func submit(_ cluster: SlurmSweep, executable: URL) {
        let runs = reportingErrors { try cluster.unsubmitted() }
        let finished = cluster.runner.runs.filter { cluster.runner.isFinished($0) }.count
        let queued = cluster.runner.runs.count - finished - runs.count
        guard !runs.isEmpty else {
            print("nothing to submit: \(cluster.runner.runs.count) runs, \(finished) finished, \(queued) pending or running")
            return
        }
        let command = (["seqlab"] + CommandLine.arguments.dropFirst()).map { $0.contains(" ") ? shellQuoted($0) : $0 }.joined(separator: " ")
        let prepared = reportingErrors { try cluster.prepare(runs, executable: executable, command: command, write: !dryRun) }
        if dryRun {
            print(prepared.text, terminator: "")
            print("# \(runs.count) tasks (runs: \(runs.map(\.id).joined(separator: ", ")))")
            return
        }
        let id = reportingErrors { try cluster.submit(prepared) }
        print("submitted job array \(id): \(runs.count) run\(runs.count == 1 ? "" : "s") (\(finished) finished, \(queued) already pending or running); "
              + "script \(prepared.script.path); watch with: seqlab sweep \(cluster.runner.output.path) --status")
    }

    /// --status: the state of every run configured in the directory.
    private func showStatus() {
        let dir = URL(fileURLWithPath: spec)
        let configs = dir.appendingPathComponent("configs")
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: configs.path) else {
            fail("\(spec) is not a sweep's output directory (it has no configs/)")
        }
        let ids = names.filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.sorted()
        let runner = reportingErrors { try SweepRunner(runs: [], output: dir, jobs: 1, executable: URL(fileURLWithPath: "/proc/self/exe")) }
        let states = reportingErrors { try SlurmSweep(runner: runner, settings: SlurmSettings()).status(runIDs: ids) }
        let width = max(3, states.map(\.run.count).max() ?? 3)
        for s in states {
            var line = s.run.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + s.state.padding(toLength: 13, withPad: " ", startingAt: 0)
            if let task = s.task { line += "  task \(task)" }
            if s.state == "failed", let log = s.log { line += "  log \(log)" + (s.detail.map { "  (\($0))" } ?? "") }
            print(line)
        }
        let counts = Dictionary(grouping: states, by: \.state).mapValues(\.count)
        print("\(states.count) runs: " + counts.keys.sorted().map { "\(counts[$0]!) \($0)" }.joined(separator: ", "))
    }
}

/// `seqlab table`: the results table of a directory of runs.
struct Table: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Collect final.json of every run: mean +- std over seeds, best lr on validation.")

    @Argument(help: "A directory of runs.") var directory: String
    @Option(help: "md, tex or csv.") var format: String = "md"
    @Option(help: "Write to this file (atomically) instead of standard output.") var out: String?

    func run() throws {
        let table = reportingErrors { try ResultTable(directory: URL(fileURLWithPath: directory)) }
        guard !table.rows.isEmpty else { fail("\(directory): no finished runs") }
        let text: String
        switch format {
        case "md": text = table.markdown()
        case "tex": text = table.latex()
        case "csv": text = table.csv()
        default: fail("unknown format '\(format)' (md, tex, csv)")
        }
        if let out { reportingErrors { try writeAtomically(Data(text.utf8), to: URL(fileURLWithPath: out)) } } else { print(text, terminator: "") }
    }
}

/// `seqlab plot`: an SVG plot of a directory of runs.
struct Plot: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Plot runs as SVG: learning curves, accuracy vs width or state size, time vs length.")

    @Argument(help: "A directory of runs.") var directory: String
    @Option(help: "The SVG file to write.") var out: String
    @Option(help: "curves, width, state or speed.") var kind: String = "curves"

    func run() throws {
        guard let k = PlotKind(rawValue: kind) else { fail("unknown plot kind '\(kind)' (\(PlotKind.allCases.map(\.rawValue).joined(separator: ", ")))") }
        let chart = reportingErrors { try RunPlots.chart(k, directory: URL(fileURLWithPath: directory)) }
        reportingErrors { try writeAtomically(Data(chart.svg().utf8), to: URL(fileURLWithPath: out)) }
    }
}
