import Foundation
import XCTest
@testable import Layers
@testable import Tensors

/// `seqlab op`: the KERNELS.md contract (names, shapes, grad_ outputs) and its errors.
final class KernelRunnerTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("seqlab-op-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    private func file(_ name: String) -> URL { directory.appendingPathComponent(name) }

    func testFFTConvWritesOutputsAndInputGradients() throws {
        var rng = RandomGenerator(seed: 8)
        let u = Tensor<Double>.randn([2, 11, 3], using: &rng), k = Tensor<Double>.randn([3, 11], using: &rng)
        let d = Tensor<Double>.randn([3], using: &rng), gy = Tensor<Double>.randn([2, 11, 3], using: &rng)
        var input = SafeTensors()
        input.set("u", u); input.set("K", k); input.set("Dskip", d); input.set("grad_y", gy)
        try input.write(to: file("in.safetensors"))
        try KernelRegistry.run("fft_conv", input: file("in.safetensors"), output: file("out.safetensors"))
        let out = try SafeTensors.read(from: file("out.safetensors"))
        XCTAssertEqual(Set(out.names), ["y", "grad_u", "grad_K", "grad_Dskip"])
        XCTAssertEqual(out.arrays["y"]!.dtype, .f64)

        let (ur, kr, dr) = (u.detached().requiringGrad(), k.detached().requiringGrad(), d.detached().requiringGrad())
        let y = referenceCausalConvolution(ur, kernel: kr, skip: dr)
        y.backward(seed: gy.data)
        XCTAssertLessThan(GradientCheck.relativeError(try out.tensor("y", as: Double.self).data, y.data), 1e-12)
        XCTAssertLessThan(GradientCheck.relativeError(try out.tensor("grad_u", as: Double.self).data, ur.grad!), 1e-12)
        XCTAssertLessThan(GradientCheck.relativeError(try out.tensor("grad_K", as: Double.self).data, kr.grad!), 1e-12)
        XCTAssertLessThan(GradientCheck.relativeError(try out.tensor("grad_Dskip", as: Double.self).data, dr.grad!), 1e-12)
        XCTAssertEqual(try out.tensor("grad_K", as: Double.self).shape, [3, 11])
    }

    func testAttentionInFloat32WithoutCotangentsWritesOnlyTheOutput() throws {
        var rng = RandomGenerator(seed: 9)
        var input = SafeTensors(metadata: ["causal": "false", "scale": "0.5"])
        let q = Tensor<Float>.randn([1, 5, 2, 4], using: &rng), k = Tensor<Float>.randn([1, 5, 2, 4], using: &rng)
        let v = Tensor<Float>.randn([1, 5, 2, 4], using: &rng)
        input.set("q", q); input.set("k", k); input.set("v", v)
        try input.write(to: file("in.safetensors"))
        try KernelRegistry.run("attention", input: file("in.safetensors"), output: file("out.safetensors"))
        let out = try SafeTensors.read(from: file("out.safetensors"))
        XCTAssertEqual(out.names, ["o"])
        XCTAssertEqual(out.arrays["o"]!.dtype, .f32)
        let expected = referenceAttention(q: q, k: k, v: v, scale: 0.5, causal: false)
        XCTAssertLessThan(GradientCheck.relativeError(try out.tensor("o", as: Float.self).data, expected.data), 1e-5)
    }

    func testBadInputsGetOneLineErrors() throws {
        var rng = RandomGenerator(seed: 1)
        func expectError(_ tensors: [String: Tensor<Float>], op: String = "fft_conv", metadata: [String: String] = [:], containing text: String) throws {
            var input = SafeTensors(metadata: metadata)
            for (n, t) in tensors { input.set(n, t) }
            try input.write(to: file("bad.safetensors"))
            XCTAssertThrowsError(try KernelRegistry.run(op, input: file("bad.safetensors"), output: file("never.safetensors"))) { error in
                XCTAssertTrue("\(error)".contains(text), "'\(error)' should mention '\(text)'")
                XCTAssertFalse("\(error)".contains("\n"))
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: file("never.safetensors").path), "no half-written output")
        }
        let u = Tensor<Float>.randn([1, 4, 2], using: &rng)
        try expectError(["u": u], containing: "missing input tensor 'K'")
        try expectError(["u": u, "K": Tensor.zeros([2, 5])], containing: "K has shape [2, 5], expected [2, 4]")
        try expectError(["u": Tensor.zeros([4, 2]), "K": Tensor.zeros([2, 4])], containing: "u has shape [4, 2], expected [B, L, H]")
        try expectError(["u": u, "K": Tensor.zeros([2, 4]), "bias": Tensor.zeros([2])], containing: "unexpected tensor 'bias'")
        try expectError(["u": u, "K": Tensor.zeros([2, 4]), "grad_y": Tensor.zeros([1, 4, 3])], containing: "grad_y has shape [1, 4, 3]")
        try expectError(["q": Tensor.zeros([1, 2, 1, 2]), "k": Tensor.zeros([1, 2, 1, 2]), "v": Tensor.zeros([1, 2, 1, 2])],
                        op: "attention", metadata: ["causal": "maybe"], containing: "option causal: 'maybe' is not true or false")
        XCTAssertThrowsError(try KernelRegistry.run("selective_scan_v9", input: file("bad.safetensors"), output: file("x"))) { error in
            XCTAssertTrue("\(error)".hasPrefix("unknown op 'selective_scan_v9'"))
        }
        try Data([1, 2, 3]).write(to: file("truncated.safetensors"))
        XCTAssertThrowsError(try KernelRegistry.run("fft_conv", input: file("truncated.safetensors"), output: file("x")))
        XCTAssertThrowsError(try KernelRegistry.run("fft_conv", input: file("missing.safetensors"), output: file("x")))
    }

    func testMixedPrecisionInputsAreRejected() throws {
        var input = SafeTensors()
        input.set("u", Tensor<Float>.zeros([1, 3, 2]))
        input.set("K", Tensor<Double>.zeros([2, 3]))
        try input.write(to: file("mixed.safetensors"))
        XCTAssertThrowsError(try KernelRegistry.run("fft_conv", input: file("mixed.safetensors"), output: file("x"))) { error in
            XCTAssertTrue("\(error)".contains("mix F32 and F64"))
        }
    }
}
