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

    /// Tunes the allocator (freed tensor memory stays in the process), then parses and runs the command.
    static func main() {
        MemoryTuning.retainFreedMemory()
        main(nil)
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
