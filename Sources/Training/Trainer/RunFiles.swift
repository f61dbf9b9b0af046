import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Tensors

/// One line of DIR/metrics.jsonl.
public struct MetricsRecord: Codable, Equatable, Sendable {
    public var step: Int
    public var epoch: Double
    public var split: String
    public var loss: Double
    public var accuracy: Double
    public var lr: Double
    public var tokensPerS: Double
    public var wallS: Double

    enum CodingKeys: String, CodingKey {
        case step, epoch, split, loss, accuracy, lr
        case tokensPerS = "tokens_per_s", wallS = "wall_s"
    }
}

/// The trainer's progress, saved inside every checkpoint (the trainer resumes from that copy, verified by the
/// checkpoint's checksum) and as DIR/trainer-state.json for people to read.
struct TrainerState: Codable, Equatable {
    var step = 0
    var wallSeconds = 0.0
    var tokensSeen = 0
    var bestValidationAccuracy = -1.0
    /// nil before the first evaluation (a stop signal can checkpoint a step before it; JSON has no infinity).
    var bestValidationLoss: Double? = nil
    var bestStep = 0
    /// Metrics of every test split at the best validation step ("test_accuracy", "test_loss", "test_len128_accuracy"...).
    var testMetricsAtBest: [String: Double] = [:]
    /// The running training window since the last log line.
    var windowLoss = 0.0
    var windowCorrect = 0
    var windowScored = 0
    var windowSteps = 0
    var optimizerKind = ""
    var optimizerStep = 0
    var parameterSteps: [String: Int] = [:]
    var stoppedBy: String? = nil
}

/// DIR/final.json: the run's final metrics.
public struct FinalMetrics: Codable, Equatable, Sendable {
    public var bestValAccuracy: Double
    public var bestValStep: Int
    public var testAccuracy: Double
    public var testLoss: Double
    public var steps: Int
    public var params: Int
    public var stateSize: Int
    public var wallS: Double
    public var stoppedBy: String
    /// Every test split's metrics at the best validation step (length extrapolation: "test_len256_accuracy").
    public var tests: [String: Double]
    /// Who trained the run when not SequenceLab's trainer: a reference control (scripts/interop/reference_control.py
    /// writes "pytorch"); nil for SequenceLab's own runs. Result tables show it as the `implementation` column.
    public var implementation: String? = nil

    enum CodingKeys: String, CodingKey {
        case steps, params, tests, implementation
        case bestValAccuracy = "best_val_accuracy", bestValStep = "best_val_step", testAccuracy = "test_accuracy"
        case testLoss = "test_loss", stateSize = "state_size", wallS = "wall_s", stoppedBy = "stopped_by"
    }
}

/// The files of a run directory: config.json, metrics.jsonl, checkpoint.safetensors, trainer-state.json, final.json
/// (and train.lock, held while a process trains there).
struct RunDirectory {
    let url: URL
    var config: URL { url.appendingPathComponent("config.json") }
    var metrics: URL { url.appendingPathComponent("metrics.jsonl") }
    var checkpoint: URL { url.appendingPathComponent("checkpoint.safetensors") }
    var trainerState: URL { url.appendingPathComponent("trainer-state.json") }
    var final: URL { url.appendingPathComponent("final.json") }

    func exists(_ file: URL) -> Bool { FileManager.default.fileExists(atPath: file.path) }

    func create() throws {
        do { try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) } catch {
            throw SequenceLabError("cannot create run directory \(url.path): \(error.localizedDescription)")
        }
    }

    /// The configuration of the run the directory holds: a finished or checkpointed run's config.json; nil when it
    /// holds none yet (absent, or started without a checkpoint: nothing there would be reused).
    func heldConfig() throws -> TrainConfig? {
        if exists(checkpoint) { return try readJSON(TrainConfig.self, from: config) }
        return exists(final) && exists(config) ? try readJSON(TrainConfig.self, from: config) : nil
    }

    /// Takes the directory's lock for this process: two trainers writing one run directory (a sweep killed without
    /// its workers, then rerun; two terminals) would interleave its metrics and checkpoints.
    func lock() throws -> RunLock { try RunLock(url.appendingPathComponent("train.lock"), directory: url) }

    func writeJSON<V: Encodable>(_ value: V, to file: URL) throws {
        try writeAtomically(try RunFileCoding.encoder.encode(value), to: file)
    }

    func readJSON<V: Decodable>(_ type: V.Type, from file: URL) throws -> V {
        guard let data = FileManager.default.contents(atPath: file.path) else {
            throw SequenceLabError("\(file.path) does not exist or cannot be read")
        }
        do { return try RunFileCoding.decoder.decode(type, from: data) } catch {
            throw SequenceLabError("\(file.path) is corrupt: \(oneLine(error))")
        }
    }

    /// Appends one record to metrics.jsonl.
    func append(_ record: MetricsRecord) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var line = try encoder.encode(record)
        line.append(0x0A)
        if !exists(metrics) { _ = FileManager.default.createFile(atPath: metrics.path, contents: nil) }
        let handle = try FileHandle(forWritingTo: metrics)
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: line)
    }

    /// Keeps only the metrics lines up to `step` (resuming from a checkpoint at `step` replays what followed).
    func truncateMetrics(after step: Int) throws {
        guard let data = FileManager.default.contents(atPath: metrics.path) else { return }
        let decoder = JSONDecoder()
        let kept = String(decoding: data, as: UTF8.self).split(separator: "\n").filter { line in
            guard let r = try? decoder.decode(MetricsRecord.self, from: Data(line.utf8)) else { return false }
            return r.step <= step
        }
        try writeAtomically(Data((kept.joined(separator: "\n") + (kept.isEmpty ? "" : "\n")).utf8), to: metrics)
    }
}

/// The commit of the working tree (nil outside a git checkout).
func currentGitCommit() -> String? {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["git", "rev-parse", "HEAD"]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    guard (try? process.run()) != nil else { return nil }
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { return nil }
    let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    return text.trimmingCharacters(in: .whitespacesAndNewlines)
}

/// An exclusive advisory lock (flock) on a run directory's train.lock, held until this object is released or the
/// process ends, however it ends (the kernel drops the lock with the descriptor).
final class RunLock {
    private let descriptor: Int32

    init(_ file: URL, directory: URL) throws {
        descriptor = open(file.path, O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw SequenceLabError("cannot open \(file.path): \(String(cString: strerror(errno)))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            throw SequenceLabError("\(directory.path) is in use by another seqlab process (it holds train.lock); wait for it or stop it")
        }
    }

    deinit { close(descriptor) }
}
