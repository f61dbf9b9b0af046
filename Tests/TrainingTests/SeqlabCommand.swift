import Foundation
import Tensors
import XCTest

/// Runs the seqlab executable built next to the test bundle (`swift build --build-tests` builds it).
enum SeqlabCommand {
    /// The executable's URL.
    static var url: URL {
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        while url.path != "/" && !FileManager.default.isExecutableFile(atPath: url.appendingPathComponent("seqlab").path) {
            url.deleteLastPathComponent()
        }
        return url.appendingPathComponent("seqlab")
    }

    /// Runs `seqlab ARGS` in `directory` to the end: its exit status, standard output and standard error. With a
    /// `timeout`, a process still running then is killed and reported as `timedOut` (its pipes are read to their
    /// end either way, so a process that leaves a child holding them shows up as a hang, not a stuck test).
    @discardableResult
    static func run(_ arguments: [String], in directory: URL, timeout: TimeInterval? = nil)
        throws -> (status: Int32, output: String, error: String, timedOut: Bool) {
        let p = Process()
        p.executableURL = url
        p.arguments = arguments
        p.currentDirectoryURL = directory
        var environment = ProcessInfo.processInfo.environment
        environment["SEQLAB_THREADS"] = "1"
        p.environment = environment
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let timedOut = Locked(false)
        if let timeout {
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout) { [p] in
                if p.isRunning {
                    timedOut.withLock { $0 = true }
                    kill(-p.processIdentifier, SIGKILL)
                    kill(p.processIdentifier, SIGKILL)
                }
            }
        }
        let output = Locked(Data())
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            let data = out.fileHandleForReading.readDataToEndOfFile()
            output.withLock { $0 = data }
            done.signal()
        }
        let error = err.fileHandleForReading.readDataToEndOfFile()
        done.wait()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: output.withLock { $0 }, as: UTF8.self), String(decoding: error, as: UTF8.self),
                timedOut.withLock { $0 })
    }
}
