import Dispatch
import Foundation
import Tensors

/// Stop requests delivered by signal, for runs on machines that end them: SIGTERM (a cluster's time limit, a
/// preemption, `kill`), SIGUSR1 (what `sbatch --signal=B:USR1@SECONDS` sends ahead of the limit) and SIGINT (Ctrl-C).
/// Once `install` has run (the `seqlab train` command does it), a signal no longer ends the process at once: the
/// trainer finishes the step it is in, writes an atomic checkpoint of that step and throws `TrainingStopped`; the same
/// command resumes from there and ends identical to an uninterrupted run (wall times aside). The same signal again,
/// `repeatWindow` seconds or more after the first, ends the process at once (exit 128 + signal) without finishing the
/// step: the way out of a step that never returns (the run then resumes from its last checkpoint). Within the window
/// it is the same request (a signal sent to a process group and forwarded by a sweep arrives twice); another kind of
/// signal after the first is ignored (Slurm's SIGTERM after the `--signal` warning). SIGKILL cannot be caught.
public enum StopSignals {
    /// The signals `install` turns into stop requests.
    public static let handled: [Int32] = [SIGTERM, SIGUSR1, SIGINT]

    /// Seconds after a stop request within which the same signal is taken for the same request.
    public static let repeatWindow: Double = 2

    /// The first signal received since `install`, if any.
    public static var received: Int32? { state.withLock { $0.received } }

    /// Turns `handled` into stop requests for the rest of the process (idempotent).
    public static func install() {
        state.withLock { s in
            guard s.sources.isEmpty else { return }
            s.sources = handled.map { number in
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler { respond(to: number) }
                source.resume()
                return source
            }
        }
    }

    /// Forgets a received signal (tests that stop and resume in one process).
    public static func reset() { state.withLock { $0.received = nil } }

    /// The first signal: a stop request, announced on stderr; the same signal again after `repeatWindow`: the end.
    private static func respond(to number: Int32) {
        let response: Response = state.withLock { s in
            let now = DispatchTime.now().uptimeNanoseconds  // read under the lock: never before an earlier signal's time
            guard let received = s.received else {
                s.received = number
                s.receivedAt = now
                return .stopAfterStep
            }
            let repeated = received == number && Double(now - s.receivedAt) >= repeatWindow * 1e9
            return repeated ? .endNow : .sameRequest
        }
        switch response {
        case .stopAfterStep:
            FileHandle.standardError.write(Data(
                "\(name(number)): stopping after the current step with a checkpoint; \(name(number)) again ends at once\n".utf8))
        case .endNow:
            FileHandle.standardError.write(Data(
                "\(name(number)) again: ended inside a step; the run resumes from its last checkpoint\n".utf8))
            _exit(128 + number)
        case .sameRequest:
            break
        }
    }

    private enum Response { case stopAfterStep, endNow, sameRequest }

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
        var receivedAt: UInt64 = 0
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
