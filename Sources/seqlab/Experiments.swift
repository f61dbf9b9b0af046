import ArgumentParser
import Experiments
import Foundation
import Tensors

/// `seqlab sweep`: run every configuration of a sweep spec (resumable).
struct Sweep: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a sweep spec; finished runs are skipped, interrupted ones resume.")

    @Argument(help: "The sweep spec (JSON; see Experiments/).") var spec: String
    @Option(help: "Output directory (one sub-directory per run).") var out: String
    @Option(parsing: .unconditional, help: "Worker processes at once (each gets cores / jobs threads).") var jobs: Int = 1
    @Option(help: "Run one slice I/N of the runs (cluster job arrays).") var shard: String?
    @Flag(name: .customLong("dry-run"), help: "List the runs and exit.") var dryRun = false

    func run() throws {
        let sweep = reportingErrors { try SweepSpec.load(from: URL(fileURLWithPath: spec)) }
        let runs = reportingErrors { try sweep.runs() }
        var shardPair: (Int, Int)? = nil
        if let shard {
            let parts = shard.split(separator: "/", omittingEmptySubsequences: false).map { Int($0) }
            guard parts.count == 2, let i = parts[0], let n = parts[1] else { fail("--shard must be I/N (two integers), got '\(shard)'") }
            shardPair = (i, n)
        }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: out, isDirectory: &isDirectory), !isDirectory.boolValue {
            fail("--out \(out) exists and is not a directory")
        }
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let runner = reportingErrors {
            try SweepRunner(runs: runs, output: URL(fileURLWithPath: out), jobs: jobs, shard: shardPair, executable: executable,
                            notes: sweep.notes)
        }
        if dryRun {
            for r in runner.runs { print("\(runner.isFinished(r) ? "finished" : "pending ")  \(r.id)") }
            print("\(runner.runs.count) runs")
            return
        }
        let failed = reportingErrors { try runner.execute { print($0); fflush(stdout) } }
        if !failed.isEmpty { fail("\(failed.count) runs failed: \(failed.joined(separator: ", ")) (see their train.log)") }
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
