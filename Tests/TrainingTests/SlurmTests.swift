import Foundation
import XCTest
@testable import Training

/// `seqlab sweep --slurm` against a real Slurm (scripts/slurm-local starts a one-node cluster; .ci/run does, and sets
/// SEQLAB_REQUIRE_SLURM=1 so that a missing cluster fails instead of skipping): a sweep through Slurm ends with the
/// files of the same sweep run locally; a requeued task, a task told to checkpoint before its time limit (SIGUSR1), and
/// a cancelled task followed by a resubmission all end with every run finished once and identical; a malformed
/// setting is a one-line error before anything is submitted.
final class SlurmTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("seqlab-slurm-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    /// Skips (or, with SEQLAB_REQUIRE_SLURM=1, fails) when no cluster answers `sinfo`.
    private func requireCluster() throws {
        guard FileManager.default.isExecutableFile(atPath: SeqlabCommand.url.path) else { throw XCTSkip("seqlab binary not built") }
        let answers = (try? shell("sinfo", ["-h", "-o", "%T"]))?.output.contains(where: { !$0.isWhitespace }) ?? false
        if answers { return }
        if ProcessInfo.processInfo.environment["SEQLAB_REQUIRE_SLURM"] == "1" {
            XCTFail("SEQLAB_REQUIRE_SLURM=1 but no Slurm cluster answers sinfo (scripts/slurm-local start)")
        }
        throw XCTSkip("no Slurm cluster (scripts/slurm-local start starts one on localhost)")
    }

    /// Runs a command from PATH to its end.
    @discardableResult
    private func shell(_ command: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [command] + arguments
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// A spec of `seeds` tiny parity runs (diagonal layer, d_model 16).
    private func spec(_ name: String, seeds: Int, steps: Int, evalEvery: Int, logEvery: Int) throws -> URL {
        let url = directory.appendingPathComponent(name)
        try Data("""
            {"base": {"task": "parity", "model": {"layer": "diagonal", "d_model": 16, "n_layers": 1},
                      "task_options": {"train_size": "512", "val_size": "64", "test_size": "64"},
                      "max_steps": \(steps), "eval_every": \(evalEvery), "log_every": \(logEvery), "batch_size": 16},
             "grid": {"seed": [\((0..<seeds).map(String.init).joined(separator: ", "))]},
             "slurm": {"cpus_per_task": 1, "time": "20:00"}}
            """.utf8).write(to: url)
        return url
    }

    /// The job id printed by `seqlab sweep --slurm`.
    private func submit(_ spec: URL, _ out: URL) throws -> String {
        let r = try SeqlabCommand.run(["sweep", spec.path, "--out", out.path, "--slurm"], in: directory, timeout: 60)
        XCTAssertEqual(r.status, 0, r.error)
        let words = r.output.split(separator: " ")
        guard let i = words.firstIndex(of: "array"), i + 1 < words.count else {
            XCTFail("no job id in '\(r.output)'")
            return ""
        }
        return String(words[i + 1].dropLast())  // "123:"
    }

    /// The array tasks of `job` Slurm still holds ("JOB_INDEX" -> state).
    private func queue(_ job: String) throws -> [String: String] {
        let r = try shell("squeue", ["--noheader", "--array", "--format=%i|%T", "--jobs=\(job)"])
        var tasks: [String: String] = [:]
        for line in r.output.split(separator: "\n") {
            let parts = line.split(separator: "|")
            if parts.count == 2 { tasks[String(parts[0])] = String(parts[1]) }
        }
        return tasks
    }

    private func wait(_ what: String, timeout: TimeInterval = 240, until condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return }
            Thread.sleep(forTimeInterval: 0.2)
        }
        XCTFail("timed out waiting for \(what)")
        throw XCTSkip("timed out")
    }

    private func finished(_ out: URL, _ run: String) -> Bool {
        FileManager.default.fileExists(atPath: out.appendingPathComponent("\(run)/final.json").path)
    }

    private func records(_ out: URL, _ run: String) -> Int {
        ((try? String(contentsOf: out.appendingPathComponent("\(run)/metrics.jsonl"), encoding: .utf8)) ?? "")
            .split(separator: "\n").count
    }

    /// final.json and metrics.jsonl of every run agree between two sweep directories, wall-clock fields aside.
    private func assertSameRuns(_ a: URL, _ b: URL, runs: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        func strip(_ data: Data) throws -> String {
            var object = try JSONSerialization.jsonObject(with: data) as! [String: Any]
            for key in ["wall_s", "tokens_per_s"] { object[key] = nil }
            return String(decoding: try JSONSerialization.data(withJSONObject: object, options: .sortedKeys), as: UTF8.self)
        }
        for run in runs {
            let finals = try [a, b].map { try strip(Data(contentsOf: $0.appendingPathComponent("\(run)/final.json"))) }
            XCTAssertEqual(finals[0], finals[1], "final.json of \(run)", file: file, line: line)
            let metrics = try [a, b].map { dir in
                try String(contentsOf: dir.appendingPathComponent("\(run)/metrics.jsonl"), encoding: .utf8)
                    .split(separator: "\n").map { try strip(Data($0.utf8)) }
            }
            XCTAssertEqual(metrics[0], metrics[1], "metrics.jsonl of \(run)", file: file, line: line)
        }
    }

    func testSweepThroughSlurmEqualsTheSameSweepRunLocally() throws {
        try requireCluster()
        let spec = try spec("small.json", seeds: 3, steps: 60, evalEvery: 20, logEvery: 5)
        let local = directory.appendingPathComponent("local"), cluster = directory.appendingPathComponent("cluster")
        let r = try SeqlabCommand.run(["sweep", spec.path, "--out", local.path, "--jobs", "2"], in: directory, timeout: 300)
        XCTAssertEqual(r.status, 0, r.error)
        let job = try submit(spec, cluster)
        let runs = ["seed-0", "seed-1", "seed-2"]
        try wait("the array to finish") { try queue(job).isEmpty && runs.allSatisfy { finished(cluster, $0) } }
        try assertSameRuns(local, cluster, runs: runs)
        let status = try SeqlabCommand.run(["sweep", cluster.path, "--status"], in: directory, timeout: 60)
        XCTAssertEqual(status.status, 0, status.error)
        XCTAssertTrue(status.output.contains("3 runs: 3 finished"), status.output)
        let again = try SeqlabCommand.run(["sweep", spec.path, "--out", cluster.path, "--slurm"], in: directory, timeout: 60)
        XCTAssertTrue(again.output.contains("nothing to submit: 3 runs, 3 finished"), again.output)
        // Tables work unchanged on a directory filled by Slurm tasks.
        let tables = try ["local", "cluster"].map { try SeqlabCommand.run(["table", directory.appendingPathComponent($0).path], in: directory, timeout: 60) }
        XCTAssertEqual(tables[1].status, 0, tables[1].error)
        XCTAssertEqual(tables[0].output, tables[1].output)
    }

    func testRequeuedSignalledAndCancelledTasksEndWithEveryRunFinishedOnceAndIdentical() throws {
        try requireCluster()
        let spec = try spec("longer.json", seeds: 3, steps: 400, evalEvery: 100, logEvery: 10)
        let runs = ["seed-0", "seed-1", "seed-2"]
        let local = directory.appendingPathComponent("local"), cluster = directory.appendingPathComponent("cluster")
        let r = try SeqlabCommand.run(["sweep", spec.path, "--out", local.path, "--jobs", "2"], in: directory, timeout: 600)
        XCTAssertEqual(r.status, 0, r.error)

        let job = try submit(spec, cluster)
        try wait("two tasks training") { records(cluster, "seed-0") >= 4 && records(cluster, "seed-1") >= 4 }
        // A requeue by the scheduler (SIGTERM: checkpoint, then Slurm queues the task again) and the signal of a
        // coming time limit (SIGUSR1 to the batch script: checkpoint, then the task requeues itself).
        XCTAssertEqual(try shell("scontrol", ["requeue", "\(job)_0"]).status, 0)
        XCTAssertEqual(try shell("scancel", ["--batch", "--signal=USR1", "\(job)_1"]).status, 0)
        // (Slurm 22.05 holds a requeued task for about two minutes before it may start again: most of this test's time.)
        // A cancelled task: the trainer checkpoints and the task ends; its run stays unfinished until resubmitted.
        try wait("the third task training") { records(cluster, "seed-2") >= 4 }
        XCTAssertEqual(try shell("scancel", ["\(job)_2"]).status, 0)
        try wait("the array to leave the queue") { try queue(job).isEmpty }
        XCTAssertTrue(finished(cluster, "seed-0") && finished(cluster, "seed-1"))
        XCTAssertFalse(finished(cluster, "seed-2"))
        let status = try SeqlabCommand.run(["sweep", cluster.path, "--status"], in: directory, timeout: 60)
        XCTAssertTrue(status.output.contains("seed-2  failed"), status.output)
        XCTAssertTrue(status.output.contains("slurm/logs/\(job)_2.out"), status.output)
        for run in ["seed-0", "seed-1"] {
            let log = try String(contentsOf: cluster.appendingPathComponent("slurm/logs/\(job)_\(run.last!).out"), encoding: .utf8)
            XCTAssertTrue(log.contains("stopped after step"), "\(run) was interrupted and resumed: \(log)")
            XCTAssertTrue(log.contains("resuming"), log)
        }

        let resubmitted = try SeqlabCommand.run(["sweep", spec.path, "--out", cluster.path, "--slurm"], in: directory, timeout: 60)
        XCTAssertEqual(resubmitted.status, 0, resubmitted.error)
        XCTAssertTrue(resubmitted.output.contains(": 1 run (2 finished, 0 already pending or running)"), resubmitted.output)
        let second = String(resubmitted.output.split(separator: " ")[3].dropLast())
        try wait("the resubmitted run") { try queue(second).isEmpty && finished(cluster, "seed-2") }
        try assertSameRuns(local, cluster, runs: runs)
        let trainRecords = try String(contentsOf: cluster.appendingPathComponent("seed-2/metrics.jsonl"), encoding: .utf8)
            .split(separator: "\n").filter { $0.contains("\"split\":\"train\"") }.count
        XCTAssertEqual(trainRecords, 400 / 10, "no step trained twice or skipped")
    }

    func testAMalformedSettingIsAOneLineErrorBeforeAnythingIsSubmitted() throws {
        guard FileManager.default.isExecutableFile(atPath: SeqlabCommand.url.path) else { throw XCTSkip("seqlab binary not built") }
        let spec = try spec("small.json", seeds: 2, steps: 20, evalEvery: 10, logEvery: 5)
        let out = directory.appendingPathComponent("out")
        for (flags, says) in [(["--time", "1h"], "time '1h'"), (["--mem", "lots"], "mem 'lots'"),
                              (["--cpus-per-task", "0"], "cpus_per_task"), (["--partition", "a b"], "partition 'a b'"),
                              (["--array-limit", "-2"], "array_limit"), (["--sbatch-arg", "--array=0-9"], "sets --array itself"),
                              (["--sbatch-arg", "constraint"], "must be one option")] {
            let r = try SeqlabCommand.run(["sweep", spec.path, "--out", out.path, "--slurm"] + flags, in: directory, timeout: 60)
            XCTAssertNotEqual(r.status, 0, "\(flags)")
            XCTAssertTrue(r.error.hasPrefix("error: slurm: ") && r.error.contains(says), "\(flags): \(r.error)")
            XCTAssertEqual(r.error.split(separator: "\n").count, 1, r.error)
        }
        let badSpec = directory.appendingPathComponent("bad.json")
        try Data(#"{"base": {"task": "parity"}, "slurm": {"walltime": "1:00:00"}}"#.utf8).write(to: badSpec)
        let r = try SeqlabCommand.run(["sweep", badSpec.path, "--out", out.path, "--slurm"], in: directory, timeout: 60)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.error.contains("unknown slurm key 'walltime'"), r.error)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("slurm").path), "nothing was written")
    }
}
