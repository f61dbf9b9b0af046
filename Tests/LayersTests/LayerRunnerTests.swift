import Foundation
import XCTest
@testable import Layers
@testable import Tensors

/// `seqlab layer` as a user runs it (the binary): outputs on good input, and one-line errors that name the tensor or
/// option, with nothing written, on bad input.
final class LayerRunnerTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("seqlab-layer-\(UUID().uuidString)")
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

    /// Runs `seqlab layer NAME --in IN --out OUT`; returns the exit status and stderr.
    private func layer(_ name: String, _ input: SafeTensors) throws -> (Int32, String, URL) {
        let (inURL, outURL) = (directory.appendingPathComponent("in.safetensors"), directory.appendingPathComponent("out.safetensors"))
        try? FileManager.default.removeItem(at: outURL)
        try input.write(to: inURL)
        let p = Process(), err = Pipe()
        p.executableURL = seqlab
        p.arguments = ["layer", name, "--in", inURL.path, "--out", outURL.path]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = err
        try p.run()
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus, message, outURL)
    }

    private var fixture: SafeTensors {
        get throws { try SafeTensors.read(from: ReferenceParityTests.fixtures.appendingPathComponent("mamba-default.in.safetensors")) }
    }

    /// A refusal: non-zero exit, one line that contains every one of `words`, no output file.
    private func assertRefused(_ name: String, _ input: SafeTensors, naming words: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let (status, message, out) = try layer(name, input)
        XCTAssertEqual(status, 1, message, file: file, line: line)
        XCTAssertEqual(message.split(separator: "\n").count, 1, "not one line: \(message)", file: file, line: line)
        for word in words { XCTAssertTrue(message.contains(word), "'\(word)' not in: \(message)", file: file, line: line) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "an output was written", file: file, line: line)
    }

    func testGoodInputWritesOutputsAndEveryGradient() throws {
        guard FileManager.default.isExecutableFile(atPath: seqlab.path) else { throw XCTSkip("seqlab binary not built") }
        let (status, message, out) = try layer("mamba", try fixture)
        XCTAssertEqual(status, 0, message)
        let written = try SafeTensors.read(from: out)
        let layer: any SequenceLayer<Double> = try LayerRegistry.make("mamba", dModel: 16)
        XCTAssertEqual(Set(written.names), Set(["y", "grad_x"] + layer.parameters.map { "grad_\($0.name)" }))
        XCTAssertEqual(written.arrays["grad_in_proj.weight"]?.shape, [64, 16])
        var forwardOnly = try fixture
        forwardOnly.arrays["grad_y"] = nil
        forwardOnly.metadata["format"] = "pt"  // PyTorch's save_model tag is not an option
        let (status2, _, out2) = try self.layer("mamba", forwardOnly)
        XCTAssertEqual(status2, 0)
        XCTAssertEqual(try SafeTensors.read(from: out2).names, ["y"])
    }

    func testBadInputIsOneLineNamingTheProblemAndWritesNothing() throws {
        guard FileManager.default.isExecutableFile(atPath: seqlab.path) else { throw XCTSkip("seqlab binary not built") }
        var missing = try fixture
        missing.arrays["A_log"] = nil
        try assertRefused("mamba", missing, naming: ["missing", "'A_log'"])

        var extra = try fixture
        extra.set("bogus.weight", Tensor<Double>.zeros([2]))
        try assertRefused("mamba", extra, naming: ["unexpected", "'bogus.weight'"])

        var transposed = try fixture
        let w = try transposed.tensor("in_proj.weight", as: Double.self)
        transposed.set("in_proj.weight", w.transposed())
        try assertRefused("mamba", transposed, naming: ["'in_proj.weight'", "[16, 64]", "[64, 16]"])

        var noInput = try fixture
        noInput.arrays["x"] = nil
        try assertRefused("mamba", noInput, naming: ["'x'"])

        var badGrad = try fixture
        badGrad.set("grad_y", Tensor<Double>.zeros([2, 13, 3]))
        try assertRefused("mamba", badGrad, naming: ["grad_y"])

        var mixed = try fixture
        mixed.set("D", try mixed.tensor("D", as: Float.self))
        try assertRefused("mamba", mixed, naming: ["F32", "F64"])

        var option = try fixture
        option.metadata["d_stat"] = "8"
        try assertRefused("mamba", option, naming: ["d_stat"])

        var resized = try fixture
        resized.metadata["d_state"] = "8"
        try assertRefused("mamba", resized, naming: ["'x_proj.weight'", "[33, 32]", "[17, 32]"])

        try assertRefused("mambo", try fixture, naming: ["unknown layer 'mambo'"])
    }
}
