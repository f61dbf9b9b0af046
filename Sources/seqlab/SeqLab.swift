import ArgumentParser
import Foundation
import Layers
import Tensors

/// `seqlab`: the SequenceLab command line.
@main
struct SeqLab: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seqlab",
        abstract: "State-space models and linear RNNs on one autodiff tape.",
        subcommands: [Train.self, ConfigCommand.self, Sweep.self, Table.self, Plot.self, Check.self, Op.self, Layer.self, Convert.self, Batches.self, Bench.self, List.self])

    /// Turns the Swift runtime's crash backtracer off (see `withoutBacktracer`), then parses and runs the command
    /// (the allocator is tuned when the library loads: `MemoryTuning`).
    static func main() {
        withoutBacktracer()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            // --help and --version print in full and succeed; a parse error (an unknown option, a missing or
            // malformed value) is one line, as every other refusal.
            if exitCode(for: error) == .success {
                print(fullMessage(for: error))
                Foundation.exit(0)
            }
            let message = self.message(for: error).split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty && !$0.hasPrefix("Usage:") && !$0.hasPrefix("See '") }.joined(separator: " ")
            fail(message.hasPrefix("Error: ") ? String(message.dropFirst(7)) : message)
        }
    }

    /// Re-executes the process with SWIFT_BACKTRACE=enable=no unless the caller set it. A failed precondition is a bug,
    /// but the process must still end at once: the backtracer would print a multi-page trace and can stay alive after
    /// the crash holding the caller's stdout and stderr, so that a caller reading them through a pipe hangs.
    static func withoutBacktracer() {
        guard ProcessInfo.processInfo.environment["SWIFT_BACKTRACE"] == nil else { return }
        setenv("SWIFT_BACKTRACE", "enable=no", 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        // exec failed (no /proc): carry on with the backtracer
    }
}

/// Prints a one-line error to stderr and exits non-zero (bad input never gets a crash trace).
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    Foundation.exit(1)
}

/// Runs `body`, turning any thrown error into a one-line message and a non-zero exit.
func reportingErrors<R>(_ body: () throws -> R) -> R {
    do { return try body() } catch { fail("\(error)") }
}
