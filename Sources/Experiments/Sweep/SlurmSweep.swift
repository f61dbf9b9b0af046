import Foundation
import Tensors
import Training

/// A sweep on a Slurm cluster: one job array per submission, one array task per run not yet finished and not already
/// queued or running, each task running exactly its run (`seqlab train --config DIR/configs/ID.json --out DIR/ID`)
/// with the cores it was given. Everything lives in DIR/slurm/: the batch scripts, the task lists (array index i runs
/// line i + 1), `jobs.jsonl` (one line per submitted array) and the task logs `logs/JOB_INDEX.out`.
///
/// Time limits and preemption: the script asks for SIGUSR1 `signal_seconds` before the limit and is requeueable. On
/// SIGUSR1 it tells the trainer (which checkpoints the step it is in) and requeues the task; on SIGTERM (preemption,
/// `scancel`, `scontrol requeue`) the trainer checkpoints and stops. A requeued or resubmitted task resumes the run
/// from its checkpoint and ends identical to an uninterrupted run; the run directory's lock keeps two tasks from ever
/// running one run at once.
public struct SlurmSweep {
    public let runner: SweepRunner
    public let settings: SlurmSettings

    public init(runner: SweepRunner, settings: SlurmSettings) {
        (self.runner, self.settings) = (runner, settings)
    }

    /// DIR/slurm.
    public var directory: URL { runner.output.appendingPathComponent("slurm") }
    var jobsFile: URL { directory.appendingPathComponent("jobs.jsonl") }

    /// One submitted job array: its id and the task list it runs.
    public struct Job: Codable, Equatable {
        public let job_id: String
        public let tasks: String
        public let script: String
        public let submitted: String
    }

    /// A batch script ready to submit: where it is, its text, and the runs of its tasks in array order.
    public struct Prepared {
        public let script: URL
        public let tasks: URL
        public let text: String
        public let runs: [String]
    }

    /// Writes the configs of `runs`, their task list and the batch script (DIR/slurm/sweep-STAMP.sbatch); with
    /// `write` false only returns what would be written.
    public func prepare(_ runs: [SweepSpec.Run], executable: URL, command: String, now: Date = Date(), write: Bool = true) throws -> Prepared {
        try settings.validate()
        guard !runs.isEmpty else { throw SequenceLabError("slurm: no runs to submit") }
        let stamp = Self.stamp(now)
        let tasks = directory.appendingPathComponent("tasks-\(stamp).txt")
        let script = directory.appendingPathComponent("sweep-\(stamp).sbatch")
        let text = batchScript(tasks: tasks, count: runs.count, executable: executable, command: command, now: now)
        let prepared = Prepared(script: script, tasks: tasks, text: text, runs: runs.map(\.id))
        guard write else { return prepared }
        let fm = FileManager.default
        try fm.createDirectory(at: directory.appendingPathComponent("logs"), withIntermediateDirectories: true)
        try fm.createDirectory(at: runner.output.appendingPathComponent("configs"), withIntermediateDirectories: true)
        try RowNotes.write(runner.notes, in: runner.output)
        for run in runs {
            try writeAtomically(try RunFileCoding.encoder.encode(run.config),
                                to: runner.output.appendingPathComponent("configs/\(run.id).json"))
        }
        try writeAtomically(Data((runs.map(\.id).joined(separator: "\n") + "\n").utf8), to: tasks)
        try writeAtomically(Data(text.utf8), to: script)
        return prepared
    }

    /// The batch script of one array of `count` tasks over the task list `tasks`.
    func batchScript(tasks: URL, count: Int, executable: URL, command: String, now: Date) -> String {
        let out = runner.output.standardizedFileURL.path
        let array = "0-\(count - 1)" + (settings.arrayLimit.map { "%\($0)" } ?? "")
        let name = "seqlab-" + runner.output.lastPathComponent.replacingOccurrences(of: " ", with: "_")
        var lines = ["#!/bin/bash", "#SBATCH --job-name=\(name)", "#SBATCH --array=\(array)",
                     "#SBATCH --output=\(out)/slurm/logs/%A_%a.out", "#SBATCH --open-mode=append", "#SBATCH --requeue",
                     "#SBATCH --signal=B:USR1@\(settings.signalSeconds)"]
        lines += settings.directives.map { "#SBATCH \($0)" }
        lines += [
            "# Written by: \(command)",
            "# on \(ISO8601DateFormatter().string(from: now)): one array task per run of \(shellQuoted(tasks.path)) (index i: line i + 1).",
            "set -u",
            "run=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" \(shellQuoted(tasks.path)))",
            "if [ -z \"$run\" ]; then echo \"no run for array index $SLURM_ARRAY_TASK_ID\" >&2; exit 1; fi",
            "export SEQLAB_THREADS=\"${SLURM_CPUS_PER_TASK:-1}\" OPENBLAS_NUM_THREADS=\"${SLURM_CPUS_PER_TASK:-1}\"",
            "echo \"$(date -u +%FT%TZ) task ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID} (restart ${SLURM_RESTART_COUNT:-0}) on $(hostname): run $run\"",
            "\(shellQuoted(executable.path)) train --config \(shellQuoted(out + "/configs/"))\"$run\".json --out \(shellQuoted(out + "/"))\"$run\" &",
            "child=$!",
            "stop=",
            "# Before the time limit (--signal): the trainer checkpoints its step, then the task requeues itself.",
            "trap 'stop=USR1; kill -USR1 $child 2>/dev/null' USR1",
            "# Preemption, scancel, scontrol requeue: the trainer checkpoints its step and stops.",
            "trap 'stop=TERM; kill -TERM $child 2>/dev/null' TERM",
            "while true; do",
            "  wait $child; status=$?",
            "  kill -0 $child 2>/dev/null || break  # wait returned for a trapped signal while the trainer checkpoints",
            "done",
            "echo \"$(date -u +%FT%TZ) task ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}: run $run ended with exit status $status${stop:+ after SIG$stop}\"",
            "if [ \"$stop\" = USR1 ] && [ \"$status\" -ne 0 ]; then",
            "  scontrol requeue \"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"",
            "  exit 0",
            "fi",
            "exit $status",
        ]
        return lines.joined(separator: "\n") + "\n"
    }

    /// Submits a prepared script (`sbatch --parsable`), records the job in jobs.jsonl and returns its id.
    public func submit(_ prepared: Prepared, now: Date = Date()) throws -> String {
        let result = try Scheduler.run("sbatch", ["--parsable", prepared.script.path])
        guard result.status == 0 else {
            throw SequenceLabError("slurm: sbatch refused \(prepared.script.path): \(oneLineText(result.error.isEmpty ? result.output : result.error))")
        }
        let id = result.output.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ";").first.map(String.init) ?? ""
        guard !id.isEmpty, id.allSatisfy(\.isNumber) else { throw SequenceLabError("slurm: sbatch printed no job id ('\(result.output)')") }
        let job = Job(job_id: id, tasks: prepared.tasks.lastPathComponent, script: prepared.script.lastPathComponent,
                      submitted: ISO8601DateFormatter().string(from: now))
        var line = try JSONEncoder().encode(job)
        line.append(0x0A)
        let previous = (try? Data(contentsOf: jobsFile)) ?? Data()
        try writeAtomically(previous + line, to: jobsFile)
        return id
    }

    /// The arrays submitted into DIR so far, oldest first.
    public func jobs() throws -> [Job] {
        guard let text = try? String(contentsOf: jobsFile, encoding: .utf8) else { return [] }
        return try text.split(separator: "\n").map { line in
            do { return try JSONDecoder().decode(Job.self, from: Data(line.utf8)) } catch {
                throw SequenceLabError("\(jobsFile.path) is corrupt: \(line)")
            }
        }
    }

    /// One run's state: finished (final.json), pending or running (the scheduler's view of its latest task), failed
    /// (its latest task ended without final.json), or not submitted.
    public struct RunStatus: Equatable {
        public let run: String
        public let state: String
        /// "JOB_INDEX" of the run's latest task, if it was submitted.
        public let task: String?
        /// The latest task's log, if it was submitted.
        public let log: String?
        /// What the task log's last line says about how it ended, for failed runs.
        public let detail: String?
    }

    /// The states of every run configured in DIR (DIR/configs), from the run directories and `squeue`.
    public func status(runIDs: [String]) throws -> [RunStatus] {
        let jobs = try jobs()
        var latest: [String: (job: Job, index: Int)] = [:]
        for job in jobs {
            let text = (try? String(contentsOf: directory.appendingPathComponent(job.tasks), encoding: .utf8)) ?? ""
            for (index, run) in text.split(separator: "\n").enumerated() { latest[String(run)] = (job, index) }
        }
        let live = try liveTasks(jobs.map(\.job_id))
        return runIDs.map { id in
            let finished = FileManager.default.fileExists(atPath: runner.output.appendingPathComponent("\(id)/final.json").path)
            guard let (job, index) = latest[id] else {
                return RunStatus(run: id, state: finished ? "finished" : "not submitted", task: nil, log: nil, detail: nil)
            }
            let task = "\(job.job_id)_\(index)"
            let log = directory.appendingPathComponent("logs/\(task).out").path
            if finished { return RunStatus(run: id, state: "finished", task: task, log: log, detail: nil) }
            if let state = live[task] { return RunStatus(run: id, state: state.lowercased(), task: task, log: log, detail: nil) }
            let last = (try? String(contentsOfFile: log, encoding: .utf8))?.split(separator: "\n").last.map(String.init)
            return RunStatus(run: id, state: "failed", task: task, log: log, detail: last ?? "no log")
        }
    }

    /// Array tasks the scheduler still holds ("JOB_INDEX" -> PENDING, RUNNING, ...), from `squeue --array`.
    func liveTasks(_ jobIDs: [String]) throws -> [String: String] {
        guard !jobIDs.isEmpty else { return [:] }
        let result = try Scheduler.run("squeue", ["--noheader", "--array", "--format=%i|%T", "--jobs=\(jobIDs.joined(separator: ","))"])
        // squeue fails on a job list whose jobs all left the queue ("Invalid job id specified"): nothing is live.
        if result.status != 0 {
            if result.error.contains("Invalid job id") { return [:] }
            throw SequenceLabError("slurm: squeue failed: \(oneLineText(result.error))")
        }
        var live: [String: String] = [:]
        for line in result.output.split(separator: "\n") {
            let parts = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2 { live[parts[0]] = parts[1] }
        }
        return live
    }

    /// The runs of `runner` still to submit: not finished and without a pending or running task.
    public func unsubmitted() throws -> [SweepSpec.Run] {
        let states = try status(runIDs: runner.runs.map(\.id))
        let busy = Set(states.filter { !["finished", "failed", "not submitted"].contains($0.state) }.map(\.run))
        return runner.runs.filter { !runner.isFinished($0) && !busy.contains($0.id) }
    }

    static func stamp(_ date: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd'T'HHmmss.SSS"
        return f.string(from: date)
    }
}

/// Runs a Slurm command found on PATH, capturing its output.
enum Scheduler {
    static func run(_ command: String, _ arguments: [String]) throws -> (status: Int32, output: String, error: String) {
        guard let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
            .map({ "\($0)/\(command)" }).first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw SequenceLabError("slurm: \(command) is not on PATH (is this a Slurm login node?)")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = arguments
        let (out, err) = (Pipe(), Pipe())
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let error = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus, output, error)
    }
}

/// A text on one line (newlines folded).
func oneLineText(_ s: String) -> String {
    s.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
}

/// A single-quoted shell word.
public func shellQuoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
