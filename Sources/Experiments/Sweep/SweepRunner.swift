import Foundation
import Tensors
import Training

/// Runs a sweep's runs as `seqlab train` worker processes: `jobs` at a time, each with a fair share of the cores
/// (SEQLAB_THREADS and OPENBLAS_NUM_THREADS = cores / jobs). A run whose final.json exists is skipped; an interrupted
/// one resumes (the trainer resumes from its checkpoint). `shard` (i, n) runs every n-th run from the i-th, for
/// cluster job arrays. A run directory whose config.json differs from the spec's run is an error, never silently reused.
public struct SweepRunner {
    public let runs: [SweepSpec.Run]
    public let output: URL
    public let jobs: Int
    public let executable: URL
    /// The spec's row notes, written to DIR/notes.json before the runs start.
    public let notes: [String: String]

    public init(runs: [SweepSpec.Run], output: URL, jobs: Int, shard: (index: Int, count: Int)? = nil, executable: URL,
                notes: [String: String] = [:]) throws {
        guard jobs >= 1 else { throw SequenceLabError("sweep: --jobs must be at least 1") }
        if let shard {
            guard shard.count >= 1, shard.index >= 0, shard.index < shard.count else {
                throw SequenceLabError("sweep: --shard \(shard.index)/\(shard.count) is not I/N with 0 <= I < N")
            }
            self.runs = runs.enumerated().filter { $0.offset % shard.count == shard.index }.map(\.element)
        } else {
            self.runs = runs
        }
        self.output = output
        self.jobs = jobs
        self.executable = executable
        self.notes = notes
        try checkExistingRuns()
    }

    /// A run directory left by an earlier version of the spec would be skipped (finished) or refused (checkpointed)
    /// though the spec now asks for something else: say so before anything starts.
    private func checkExistingRuns() throws {
        let changed = try runs.filter { run in
            try TrainConfig.heldRun(in: directory(of: run)).map { !$0.sameRun(as: run.config) } ?? false
        }.map(\.id)
        guard let first = changed.first else { return }
        throw SequenceLabError("sweep: \(changed.count) run director\(changed.count == 1 ? "y" : "ies") in \(output.path) hold a "
            + "different configuration than the spec now gives (first: \(first); see its config.json): move them aside or use another --out")
    }

    /// The run directory of a run.
    public func directory(of run: SweepSpec.Run) -> URL { output.appendingPathComponent(run.id) }

    /// Whether a run has finished.
    public func isFinished(_ run: SweepSpec.Run) -> Bool {
        FileManager.default.fileExists(atPath: directory(of: run).appendingPathComponent("final.json").path)
    }

    /// Runs every unfinished run; returns the ids of runs that failed.
    public func execute(log: @escaping (String) -> Void) throws -> [String] {
        try FileManager.default.createDirectory(at: output.appendingPathComponent("configs"), withIntermediateDirectories: true)
        try RowNotes.write(notes, in: output)
        let pending = runs.filter { !isFinished($0) }
        log("\(runs.count) runs, \(runs.count - pending.count) finished, \(pending.count) to run, \(jobs) at a time")
        let threads = max(1, Parallel.threadCount / jobs)
        let queue = WorkQueue(pending)
        let signals = Self.forwardingStopSignals(to: queue)
        defer { for (number, source) in signals { source.cancel(); signal(number, SIG_DFL) } }
        let group = DispatchGroup()
        for _ in 0..<min(jobs, pending.count) {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                while let run = queue.next() {
                    let ok = (try? self.launch(run, threads: threads, queue: queue)) ?? false
                    queue.finish(run.id, ok: ok, log: log)
                }
            }
        }
        group.wait()
        // Stopped by a signal: the workers ended because the handler killed them, and the handler exits with
        // 128 + signal once they are gone; returning here would race it with the exit status of failed runs.
        if queue.isStopping { while true { sleep(60) } }
        return queue.failed
    }

    /// SIGINT / SIGTERM / SIGHUP to the sweep stop its workers too, then the sweep (exit 128 + signal): a worker
    /// left running would keep its run directory locked. Every such signal is forwarded, the second too: a worker
    /// whose step never returns ends at once on its second (`StopSignals`). (SIGKILL cannot be forwarded: the
    /// workers run on, and a rerun's worker for the same run fails on the directory's lock until they end.)
    private static func forwardingStopSignals(to queue: WorkQueue) -> [(Int32, DispatchSourceSignal)] {
        [SIGINT, SIGTERM, SIGHUP].map { signalNumber in
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler {
                guard queue.stopAll(signalNumber) else { return }
                Thread.detachNewThread {  // the handler returns, so that the next signal is forwarded too
                    queue.waitForWorkers()
                    exit(128 + signalNumber)
                }
            }
            source.resume()
            return (signalNumber, source)
        }
    }

    /// One worker process: `seqlab train --config configs/ID.json --out ID`, output to ID/train.log.
    private func launch(_ run: SweepSpec.Run, threads: Int, queue: WorkQueue) throws -> Bool {
        let configFile = output.appendingPathComponent("configs/\(run.id).json")
        try writeAtomically(try RunFileCoding.encoder.encode(run.config), to: configFile)
        let dir = directory(of: run)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let logFile = dir.appendingPathComponent("train.log")
        if !FileManager.default.fileExists(atPath: logFile.path) { _ = FileManager.default.createFile(atPath: logFile.path, contents: nil) }
        let logHandle = try FileHandle(forWritingTo: logFile)
        try logHandle.seekToEnd()
        defer { try? logHandle.close() }
        let process = Process()
        process.executableURL = executable
        process.arguments = ["train", "--config", configFile.path, "--out", dir.path]
        var environment = ProcessInfo.processInfo.environment
        environment["SEQLAB_THREADS"] = "\(threads)"
        environment["OPENBLAS_NUM_THREADS"] = "\(threads)"
        process.environment = environment
        process.standardOutput = logHandle
        process.standardError = logHandle
        guard try queue.started(process) else { return false }
        defer { queue.ended(process) }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }
}

/// The runs still to start and the worker processes running, shared by the worker threads.
private final class WorkQueue: @unchecked Sendable {
    private let lock = NSLock()
    private var pending: [SweepSpec.Run]
    private var running: [ObjectIdentifier: Process] = [:]
    private var stopping = false
    private(set) var failed: [String] = []

    init(_ runs: [SweepSpec.Run]) { pending = runs.reversed() }

    /// Whether `stopAll` was called (set before any worker is signalled).
    var isStopping: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopping
    }

    func next() -> SweepSpec.Run? {
        lock.lock()
        defer { lock.unlock() }
        return pending.popLast()
    }

    /// Starts a worker unless the sweep is stopping (so no worker starts after `stopAll`).
    func started(_ process: Process) throws -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard !stopping else { return false }
        try process.run()
        running[ObjectIdentifier(process)] = process
        return true
    }

    func ended(_ process: Process) {
        lock.lock()
        defer { lock.unlock() }
        running[ObjectIdentifier(process)] = nil
    }

    /// Sends `signalNumber` to every running worker and starts no more; true the first time.
    func stopAll(_ signalNumber: Int32) -> Bool {
        lock.lock()
        let first = !stopping
        stopping = true
        pending.removeAll()
        let workers = Array(running.values)
        lock.unlock()
        for worker in workers where worker.isRunning { kill(worker.processIdentifier, signalNumber) }
        return first
    }

    /// Waits for the workers running when `stopAll` was first called (none starts after it).
    func waitForWorkers() {
        lock.lock()
        let workers = Array(running.values)
        lock.unlock()
        for worker in workers { worker.waitUntilExit() }
    }

    func finish(_ id: String, ok: Bool, log: (String) -> Void) {
        lock.lock()
        defer { lock.unlock() }
        if !ok { failed.append(id) }
        log("\(ok ? "done" : "FAILED"): \(id)")
    }
}
