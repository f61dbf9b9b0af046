import Foundation
import XCTest
@testable import Training

/// SIGKILL at a random moment, then the same command again: the run ends with the same metrics as an
/// uninterrupted one (the `seqlab` binary, as a user runs it).
final class KillAndResumeTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("seqlab-kill-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    /// The seqlab executable next to the test bundle (swift build --build-tests builds it).
    private var seqlab: URL {
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        while url.path != "/" && !FileManager.default.isExecutableFile(atPath: url.appendingPathComponent("seqlab").path) {
            url.deleteLastPathComponent()
        }
        return url.appendingPathComponent("seqlab")
    }

    private func train(_ out: URL) -> Process {
        let p = Process()
        p.executableURL = seqlab
        p.arguments = ["train", "--task", "parity", "--layer", "diagonal", "--d-model", "16", "--n-layers", "1",
                       "--max-steps", "120", "--eval-every", "10", "--log-every", "5", "--batch-size", "16",
                       "--train-size", "512", "--val-size", "64", "--test-size", "64", "--seed", "3", "--out", out.path]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        return p
    }

    private func finalMetrics(_ dir: URL) throws -> FinalMetrics {
        try JSONDecoder().decode(FinalMetrics.self, from: Data(contentsOf: dir.appendingPathComponent("final.json")))
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
        let a = try finalMetrics(whole), b = try finalMetrics(killed)
        XCTAssertGreaterThan(kills, 0, "at least one kill landed mid-run")
        XCTAssertEqual(a.bestValAccuracy, b.bestValAccuracy)
        XCTAssertEqual(a.bestValStep, b.bestValStep)
        XCTAssertEqual(a.testAccuracy, b.testAccuracy)
        XCTAssertEqual(a.testLoss, b.testLoss)
        XCTAssertEqual(a.tests, b.tests)
        XCTAssertEqual(a.steps, b.steps)
    }
}
