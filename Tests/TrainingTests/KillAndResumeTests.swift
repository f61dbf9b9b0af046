import Foundation
import XCTest
@testable import Training

/// SIGKILL at a random moment, then the same command again: a run ends with the same metrics as an uninterrupted
/// one, and a sweep completes without redoing its finished runs (the `seqlab` binary, as a user runs it).
final class KillAndResumeTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("seqlab-kill-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    /// The seqlab executable next to the test bundle (swift build --build-tests builds it).
    private var seqlab: URL { SeqlabCommand.url }

    private func train(_ out: URL, evalEvery: Int = 10) -> Process {
        let p = Process()
        p.executableURL = seqlab
        p.arguments = ["train", "--task", "parity", "--layer", "diagonal", "--d-model", "16", "--n-layers", "1",
                       "--max-steps", "120", "--eval-every", "\(evalEvery)", "--log-every", "5", "--batch-size", "16",
                       "--train-size", "512", "--val-size", "64", "--test-size", "64", "--seed", "3", "--out", out.path]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        return p
    }

    private func finalMetrics(_ dir: URL) throws -> FinalMetrics {
        try JSONDecoder().decode(FinalMetrics.self, from: Data(contentsOf: dir.appendingPathComponent("final.json")))
    }

    /// The final metrics of two runs agree (wall time aside).
    private func assertSameResult(_ first: URL, _ second: URL, file: StaticString = #filePath, line: UInt = #line) throws {
        let a = try finalMetrics(first), b = try finalMetrics(second)
        XCTAssertEqual(a.bestValAccuracy, b.bestValAccuracy, file: file, line: line)
        XCTAssertEqual(a.bestValStep, b.bestValStep, file: file, line: line)
        XCTAssertEqual(a.testAccuracy, b.testAccuracy, file: file, line: line)
        XCTAssertEqual(a.testLoss, b.testLoss, file: file, line: line)
        XCTAssertEqual(a.tests, b.tests, file: file, line: line)
        XCTAssertEqual(a.steps, b.steps, file: file, line: line)
    }

    func testKilledRunResumesToTheSameResult() throws {
        guard FileManager.default.isExecutableFile(atPath: seqlab.path) else { throw XCTSkip("seqlab binary not built") }
        let whole = directory.appendingPathComponent("whole")
        let uninterrupted = train(whole)
        let started = Date()
        try uninterrupted.run()
        uninterrupted.waitUntilExit()
        XCTAssertEqual(uninterrupted.terminationStatus, 0)
        let duration = Date().timeIntervalSince(started)

        var rng = SystemRandomNumberGenerator()
        let killed = directory.appendingPathComponent("killed")
        var kills = 0
        for _ in 0..<3 {  // up to three kills at random moments, each followed by the same command
            let p = train(killed)
            try p.run()
            Thread.sleep(forTimeInterval: Double.random(in: 0.2...0.8, using: &rng) * duration)
            if p.isRunning {
                kill(p.processIdentifier, SIGKILL)
                kills += 1
            }
            p.waitUntilExit()
        }
        let last = train(killed)
        try last.run()
        last.waitUntilExit()
        XCTAssertEqual(last.terminationStatus, 0)
        XCTAssertGreaterThan(kills, 0, "at least one kill landed mid-run")
        try assertSameResult(whole, killed)
    }

    /// SIGTERM, SIGUSR1 and SIGINT between two evaluations: the trainer checkpoints the step it is in, exits with
    /// 128 + signal, and the same command ends with the metrics (and metrics.jsonl records) of an uninterrupted run.
    func testSignalledRunCheckpointsItsStepAndResumesToTheSameResult() throws {
        guard FileManager.default.isExecutableFile(atPath: seqlab.path) else { throw XCTSkip("seqlab binary not built") }
        let whole = directory.appendingPathComponent("whole")
        let uninterrupted = train(whole, evalEvery: 40)
        try uninterrupted.run()
        uninterrupted.waitUntilExit()
        XCTAssertEqual(uninterrupted.terminationStatus, 0)

        let stopped = directory.appendingPathComponent("stopped")
        let metrics = stopped.appendingPathComponent("metrics.jsonl")
        var stoppedAt: [Int] = []
        for signal in [SIGUSR1, SIGTERM, SIGINT] {
            let p = train(stopped, evalEvery: 40)
            try p.run()
            let records = (try? String(contentsOf: metrics, encoding: .utf8))?.split(separator: "\n").count ?? 0
            let deadline = Date().addingTimeInterval(120)
            while p.isRunning && Date() < deadline
                    && ((try? String(contentsOf: metrics, encoding: .utf8))?.split(separator: "\n").count ?? 0) < records + 3 {
                Thread.sleep(forTimeInterval: 0.01)
            }
            guard p.isRunning else { break }  // finished before the signal: nothing left to interrupt
            kill(p.processIdentifier, signal)
            p.waitUntilExit()
            XCTAssertEqual(p.terminationStatus, 128 + signal, "exit status after \(StopSignals.name(signal))")
            let state = try JSONDecoder().decode(TrainerState.self,
                                                 from: Data(contentsOf: stopped.appendingPathComponent("trainer-state.json")))
            stoppedAt.append(state.step)
        }
        XCTAssertTrue(stoppedAt.contains { $0 % 40 != 0 }, "a stop landed between evaluations: \(stoppedAt)")
        let last = train(stopped, evalEvery: 40)
        try last.run()
        last.waitUntilExit()
        XCTAssertEqual(last.terminationStatus, 0)
        try assertSameResult(whole, stopped)
        func records(_ dir: URL) throws -> [String] {  // every metrics record without its wall-clock fields
            try String(contentsOf: dir.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n").map { line in
                var object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                object["wall_s"] = nil
                object["tokens_per_s"] = nil
                return String(decoding: try JSONSerialization.data(withJSONObject: object, options: .sortedKeys), as: UTF8.self)
            }
        }
        XCTAssertEqual(try records(whole), try records(stopped))
    }

    /// After a first SIGTERM: `p` still runs once the repeat window has passed (`stillRunning` says why), and a second
    /// SIGTERM ends it at once with 128 + SIGTERM.
    private func assertSecondSIGTERMEndsAtOnce(_ p: Process, _ stillRunning: String,
                                               file: StaticString = #filePath, line: UInt = #line) {
        Thread.sleep(forTimeInterval: StopSignals.repeatWindow + 0.5)
        XCTAssertTrue(p.isRunning, stillRunning, file: file, line: line)
        let sent = Date()
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        XCTAssertLessThan(Date().timeIntervalSince(sent), 10, "ended at once, not at the step's end", file: file, line: line)
        XCTAssertEqual(p.terminationStatus, 128 + SIGTERM, file: file, line: line)
    }

    /// A step that does not return (here: one long step) cannot stop at its end: the same signal again, `repeatWindow`
    /// seconds or more after the first, ends the process at once with 128 + signal and one line; the same signal
    /// within the window (a process group's signal forwarded by a sweep arrives twice) is the same request.
    func testTheSameSignalAgainEndsAStepThatDoesNotReturn() throws {
        guard FileManager.default.isExecutableFile(atPath: seqlab.path) else { throw XCTSkip("seqlab binary not built") }
        let out = directory.appendingPathComponent("long-step")
        let p = Process()
        p.executableURL = seqlab
        p.arguments = ["train", "--task", "mqar", "--layer", "gla", "--d-model", "256", "--seq-len", "1024",
                       "--num-pairs", "8", "--train-size", "64", "--val-size", "32", "--test-size", "32",
                       "--batch-size", "32", "--max-steps", "2", "--out", out.path]  // minutes per step in a debug build
        let stderr = Pipe()
        p.standardOutput = FileHandle.nullDevice
        p.standardError = stderr
        try p.run()
        let deadline = Date().addingTimeInterval(120)
        while p.isRunning && Date() < deadline
                && !FileManager.default.fileExists(atPath: out.appendingPathComponent("config.json").path) {
            Thread.sleep(forTimeInterval: 0.02)  // config.json is written after the handlers are installed
        }
        XCTAssertTrue(p.isRunning, "the run started")
        kill(p.processIdentifier, SIGTERM)
        Thread.sleep(forTimeInterval: 0.2)
        kill(p.processIdentifier, SIGTERM)  // within the window: the same request
        assertSecondSIGTERMEndsAtOnce(p, "still in its first step: a repeat within the window did not end it")
        let lines = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .split(separator: "\n").map(String.init)
        XCTAssertEqual(lines, ["SIGTERM: stopping after the current step with a checkpoint; SIGTERM again ends at once",
                               "SIGTERM again: ended inside a step; the run resumes from its last checkpoint"])
    }

    /// The worker processes a sweep started (Linux: /proc/PID/task/TID/children of each of its threads).
    private func children(of pid: Int32) -> [Int32] {
        let threads = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return threads.flatMap { tid -> [Int32] in
            let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/children", encoding: .utf8)) ?? ""
            return text.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
    }

    private func sweep(_ spec: URL, _ out: URL, output: Pipe? = nil) -> Process {
        let p = Process()
        p.executableURL = seqlab
        p.arguments = ["sweep", spec.path, "--out", out.path, "--jobs", "1"]
        p.standardOutput = output ?? FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        return p
    }

    func testStoppedSweepCompletesWithoutRedoingFinishedRuns() throws {
        guard FileManager.default.isExecutableFile(atPath: seqlab.path) else { throw XCTSkip("seqlab binary not built") }
        let spec = directory.appendingPathComponent("spec.json")
        try Data("""
            {"base": {"task": "parity", "model": {"layer": "diagonal", "d_model": 16, "n_layers": 1},
                      "task_options": {"train_size": "512", "val_size": "64", "test_size": "64"},
                      "max_steps": 150, "eval_every": 10, "log_every": 5, "batch_size": 16},
             "grid": {"seed": [0, 1, 2]}}
            """.utf8).write(to: spec)
        let out = directory.appendingPathComponent("sweep")
        let first = out.appendingPathComponent("seed-0/final.json")

        let p = sweep(spec, out)
        try p.run()
        let deadline = Date().addingTimeInterval(300)
        while !FileManager.default.fileExists(atPath: first.path) && p.isRunning && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.05)
        }
        var workers: [Int32] = []  // the second run's worker, once it has started
        while workers.isEmpty && p.isRunning && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.05)
            workers = children(of: p.processIdentifier)
        }
        Thread.sleep(forTimeInterval: 0.3)  // into the second run
        XCTAssertTrue(p.isRunning, "the sweep was still running when stopped")
        XCTAssertFalse(workers.isEmpty, "a worker was running")
        kill(p.processIdentifier, SIGTERM)  // as `kill PID` or a cluster's time limit would: the workers stop too
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 128 + SIGTERM)
        for worker in workers { XCTAssertNotEqual(kill(worker, 0), 0, "worker \(worker) outlived the sweep") }
        let finishedBefore = try FileManager.default.contentsOfDirectory(atPath: out.path)
            .filter { FileManager.default.fileExists(atPath: out.appendingPathComponent("\($0)/final.json").path) }
        XCTAssertTrue(finishedBefore.contains("seed-0"))
        XCTAssertLessThan(finishedBefore.count, 3, "the kill landed before the sweep's end")
        let firstWritten = try FileManager.default.attributesOfItem(atPath: first.path)[.modificationDate] as? Date

        let pipe = Pipe()
        let again = sweep(spec, out, output: pipe)
        try again.run()
        let log = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        again.waitUntilExit()
        XCTAssertEqual(again.terminationStatus, 0, log)
        XCTAssertTrue(log.contains("3 runs, \(finishedBefore.count) finished, \(3 - finishedBefore.count) to run"), log)
        for seed in 0..<3 {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("seed-\(seed)/final.json").path))
        }
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: first.path)[.modificationDate] as? Date, firstWritten,
                       "the finished run was not redone")
        let steps = try String(contentsOf: out.appendingPathComponent("seed-1/metrics.jsonl"), encoding: .utf8)
            .split(separator: "\n").filter { $0.contains("\"split\":\"train\"") }.count
        XCTAssertEqual(steps, 150 / 5, "the interrupted run resumed without duplicate or missing train records")
    }

    /// A sweep forwards the second signal too: its worker, in a step that does not return, ends at once, and so does
    /// the sweep (exit 128 + signal) instead of waiting for the step.
    func testSweepForwardsTheSecondSignalToAWorkerInALongStep() throws {
        guard FileManager.default.isExecutableFile(atPath: seqlab.path) else { throw XCTSkip("seqlab binary not built") }
        let spec = directory.appendingPathComponent("long-step.json")
        try Data("""
            {"base": {"task": "mqar", "model": {"layer": "gla", "d_model": 256},
                      "task_options": {"seq_len": "1024", "num_pairs": "8", "train_size": "64", "val_size": "32",
                                       "test_size": "32"},
                      "max_steps": 2, "batch_size": 32},
             "grid": {"seed": [0]}}
            """.utf8).write(to: spec)
        let out = directory.appendingPathComponent("sweep")
        let p = sweep(spec, out)
        try p.run()
        let deadline = Date().addingTimeInterval(120)
        var workers: [Int32] = []
        while p.isRunning && Date() < deadline
                && (workers.isEmpty || !FileManager.default.fileExists(atPath: out.appendingPathComponent("seed-0/config.json").path)) {
            Thread.sleep(forTimeInterval: 0.02)
            workers = children(of: p.processIdentifier)
        }
        XCTAssertFalse(workers.isEmpty, "the worker started")
        kill(p.processIdentifier, SIGTERM)
        assertSecondSIGTERMEndsAtOnce(p, "the sweep waits for its worker's step")
        for worker in workers { XCTAssertNotEqual(kill(worker, 0), 0, "worker \(worker) outlived the sweep") }
    }

    func testTwoTrainersCannotShareARunDirectory() throws {
        guard FileManager.default.isExecutableFile(atPath: seqlab.path) else { throw XCTSkip("seqlab binary not built") }
        let out = directory.appendingPathComponent("shared")
        let first = train(out)
        try first.run()
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: out.appendingPathComponent("config.json").path) && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.02)
        }
        let second = train(out)
        let errors = Pipe()
        second.standardError = errors
        try second.run()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        second.waitUntilExit()
        first.waitUntilExit()
        XCTAssertNotEqual(second.terminationStatus, 0)
        XCTAssertTrue(message.contains("is in use by another seqlab process"), message)
        XCTAssertEqual(first.terminationStatus, 0, "the first trainer is undisturbed")
    }
}
