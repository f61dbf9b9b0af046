import Foundation
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

    /// Runs `seqlab ARGS` in `directory` to the end: its exit status, standard output and standard error.
    @discardableResult
    static func run(_ arguments: [String], in directory: URL) throws -> (status: Int32, output: String, error: String) {
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
        let output = out.fileHandleForReading.readDataToEndOfFile(), error = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: output, as: UTF8.self), String(decoding: error, as: UTF8.self))
    }
}
