import Dispatch
import Foundation
import Tensors

/// Stop requests delivered by signal, for runs on machines that end them: SIGTERM (a cluster's time limit, a
/// preemption, `kill`), SIGUSR1 (what `sbatch --signal=B:USR1@SECONDS` sends ahead of the limit) and SIGINT (Ctrl-C).
/// Once `install` has run (the `seqlab train` command does it), a signal no longer ends the process at once: the
/// trainer finishes the step it is in, writes an atomic checkpoint of that step and throws `TrainingStopped`; the same
/// command resumes from there and ends identical to an uninterrupted run (wall times aside). A second signal of the
/// same kind while the first is being honoured is ignored; SIGKILL cannot be caught (the run then resumes from its
/// last evaluation's checkpoint, as before).
public enum StopSignals {
    /// The signals `install` turns into stop requests.
    public static let handled: [Int32] = [SIGTERM, SIGUSR1, SIGINT]

    /// The first signal received since `install`, if any.
    public static var received: Int32? { state.withLock { $0.received } }

    /// Turns `handled` into stop requests for the rest of the process (idempotent).
    public static func install() {
        state.withLock { s in
            guard s.sources.isEmpty else { return }
            s.sources = handled.map { number in
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler { state.withLock { if $0.received == nil { $0.received = number } } }
                source.resume()
                return source
            }
        }
    }

    /// Forgets a received signal (tests that stop and resume in one process).
    public static func reset() { state.withLock { $0.received = nil } }

    /// A signal's conventional name ("SIGTERM").
    public static func name(_ number: Int32) -> String {
        switch number {
        case SIGTERM: return "SIGTERM"
        case SIGUSR1: return "SIGUSR1"
        case SIGINT: return "SIGINT"
        default: return "signal \(number)"
        }
    }

    private struct State {
        var sources: [DispatchSourceSignal] = []
        var received: Int32?
    }

    private static let state = Locked(State())
}

/// Thrown by `Trainer.train()` when a stop signal arrived: the run directory holds a checkpoint of `step`.
public struct TrainingStopped: Error, CustomStringConvertible {
    /// The signal that asked for the stop.
    public let signal: Int32
    /// The step the checkpoint holds.
    public let step: Int
    /// The run directory.
    public let directory: String

    public var description: String {
        "\(StopSignals.name(signal)): stopped after step \(step) with a checkpoint in \(directory); the same command resumes it"
    }
}
