import Foundation
import XCTest
@testable import Layers
@testable import Tensors

/// Gated linear attention: chunked == recurrent (fla's test grid), carried state, finite differences, layer, op.
final class GLATests: XCTestCase {
    /// fla's `assert_close`: pass if max |ref - x| <= 1e-6, else no NaN and RMS(ref - x) / (RMS(ref) + 1e-8) < ratio.
    func flaClose(_ x: [Double], _ ref: [Double], ratio: Double) -> (ok: Bool, error: Double) {
        XCTAssertEqual(x.count, ref.count)
        if x.contains(where: { !$0.isFinite }) { return (false, .infinity) }
        let maxAbs = zip(x, ref).map { Swift.abs($0 - $1) }.max() ?? 0
        if maxAbs <= 1e-6 { return (true, maxAbs) }
        let n = Double(max(1, x.count))
        let err = (zip(x, ref).map { ($0 - $1) * ($0 - $1) }.reduce(0, +) / n).squareRoot()
        let base = (ref.map { $0 * $0 }.reduce(0, +) / n).squareRoot()
        let r = err / (base + 1e-8)
        return (r < ratio, r)
    }

    /// o, hT and the gradients of q, k, v, g, h0 under loss = sum(o do) + sum(hT dhT).
    func glaRun<T: TensorScalar>(
        _ inputs: [Tensor<Double>], cotangents: [Tensor<Double>], as _: T.Type, chunked: Bool
    ) -> [String: [Double]] {
        let x = inputs.map { $0.converted(to: T.self).requiringGrad() }
        let (o, hT) = chunked
            ? gatedLinearAttention(q: x[0], k: x[1], v: x[2], logGates: x[3], initialState: x[4])
            : gatedLinearAttentionRecurrent(q: x[0], k: x[1], v: x[2], logGates: x[3], initialState: x[4])
        let loss = (o * cotangents[0].converted(to: T.self)).sum() + (hT * cotangents[1].converted(to: T.self)).sum()
        loss.backward()
        var r: [String: [Double]] = ["o": o.data.map(Double.init), "hT": hT.data.map(Double.init)]
        for (name, t) in zip(["dq", "dk", "dv", "dg", "dh0"], x) { r[name] = t.grad!.map(Double.init) }
        return r
    }

    func testChunkedMatchesRecurrentAcrossLengthsHeadDimsAndGateStrengths() {
        let (b, h, k, v) = (1, 2, 7, 9)  // head dims that are not powers of two
        for length in [1, 15, 64, 65, 1000] {
            for normalizer in [0.1, 1, 10] {
                var rng = RandomGenerator(seed: UInt64(length * 10 + Int(normalizer * 10)))
                let q = Tensor<Double>.randn([b, length, h, k], using: &rng)
                let kk = Tensor<Double>.randn([b, length, h, k], using: &rng)
                let vv = Tensor<Double>.randn([b, length, h, v], using: &rng)
                // fla: g = logsigmoid(randn) / gate_normalizer
                let g = Tensor<Double>.randn([b, length, h, k], using: &rng).logSigmoid().scaled(by: 1 / normalizer).detached()
                let h0 = Tensor<Double>.randn([b, h, k, v], using: &rng)
                let cot = [Tensor<Double>.randn([b, length, h, v], using: &rng), Tensor<Double>.randn([b, h, k, v], using: &rng)]
                let inputs = [q, kk, vv, g, h0]
                let reference = glaRun(inputs, cotangents: cot, as: Double.self, chunked: false)
                let exact = glaRun(inputs, cotangents: cot, as: Double.self, chunked: true)
                let single = glaRun(inputs, cotangents: cot, as: Float.self, chunked: true)
                for name in ["o", "hT", "dq", "dk", "dv", "dg", "dh0"] {
                    let label = "L=\(length) gate/\(normalizer) \(name)"
                    let e64 = GradientCheck.relativeError(exact[name]!, reference[name]!)
                    XCTAssertLessThan(e64, 1e-9, "Float64 chunked vs recurrent, \(label)")
                    let (ok, e32) = flaClose(single[name]!, reference[name]!, ratio: 0.005)
                    XCTAssertTrue(ok, "Float32 chunked vs recurrent (fla metric \(e32)), \(label)")
                }
            }
        }
    }

    func testCarryingTheFinalStateReproducesTheConcatenation() {
        let (b, length, h, k, v, cut) = (2, 150, 2, 5, 6, 70)
        var rng = RandomGenerator(seed: 285)  // fla issue #285
        let shapes = [[b, length, h, k], [b, length, h, k], [b, length, h, v], [b, length, h, k]]
        let raw = shapes.map { Tensor<Double>.randn($0, using: &rng) }
        let h0 = Tensor<Double>.randn([b, h, k, v], using: &rng)
        let dO = Tensor<Double>.randn([b, length, h, v], using: &rng), dhT = Tensor<Double>.randn([b, h, k, v], using: &rng)
        func run(segments: [Range<Int>]) -> [[Double]] {
            let x = raw.map { $0.detached().requiringGrad() }
            let s0 = h0.detached().requiringGrad()
            let g = x[3].logSigmoid()
            var state = s0, outputs: [Tensor<Double>] = []
            for r in segments {
                let (o, hT) = gatedLinearAttention(q: x[0].slice(axis: 1, r), k: x[1].slice(axis: 1, r), v: x[2].slice(axis: 1, r),
                                                   logGates: g.slice(axis: 1, r), initialState: state, chunkSize: 16, subChunkSize: 4)
                outputs.append(o)
                state = hT
            }
            let o = Tensor.concatenate(outputs, axis: 1)
            ((o * dO).sum() + (state * dhT).sum()).backward()
            return [o.data, state.data] + x.map { $0.grad! } + [s0.grad!]
        }
        let whole = run(segments: [0..<length])
        let split = run(segments: [0..<cut, cut..<length])
        let threeWay = run(segments: [0..<1, 1..<cut, cut..<length])
        for (i, name) in ["o", "hT", "dq", "dk", "dv", "dg", "dh0"].enumerated() {
            XCTAssertLessThan(GradientCheck.relativeError(split[i], whole[i]), 1e-12, "two segments: \(name)")
            XCTAssertLessThan(GradientCheck.relativeError(threeWay[i], whole[i]), 1e-12, "three segments: \(name)")
        }
    }

    func testFusedNodeFiniteDifferencesAndFormChecks() {
        for check in LinearAttentionChecks.all {
            let r = check.run(false)
            XCTAssertTrue(r.passed, r.row)
        }
    }

    func testStrongGatesStayFiniteInFloat32() {
        var rng = RandomGenerator(seed: 649)  // fla #77, #215, #649: NaN and overflow from gates
        let (b, l, h, k, v) = (1, 300, 1, 16, 8)
        let q = Tensor<Float>.randn([b, l, h, k], using: &rng).requiringGrad(), kk = Tensor<Float>.randn([b, l, h, k], using: &rng).requiringGrad()
        let vv = Tensor<Float>.randn([b, l, h, v], using: &rng).requiringGrad()
        let g = Tensor<Float>.uniform([b, l, h, k], low: -60, high: 0, using: &rng).requiringGrad()  // e^-60 per token
        let (o, hT) = gatedLinearAttention(q: q, k: kk, v: vv, logGates: g)
        (o.sum() + hT.sum()).backward()
        for t in [o, hT] { XCTAssertTrue(t.data.allSatisfy { $0.isFinite }) }
        for t in [q, kk, vv, g] { XCTAssertTrue(t.grad!.allSatisfy { $0.isFinite }) }
    }

    func testLayerPassesTheLayerCheck() throws {
        let results = try LayerCheck.run("gla", quick: false)
        XCTAssertGreaterThanOrEqual(results.count, 10)
        for r in results { XCTAssertTrue(r.passed, r.row) }
    }

    func testLayerHasFlaParameterNamesAndStateSize() throws {
        let layer: any SequenceLayer<Float> = try LayerRegistry.make("gla", dModel: 128)
        XCTAssertEqual(layer.parameters.map(\.name), [
            "q_proj.weight", "k_proj.weight", "v_proj.weight", "g_proj.weight", "gk_proj.0.weight", "gk_proj.1.weight",
            "gk_proj.1.bias", "g_norm_swish_gate.weight", "o_proj.weight"])
        XCTAssertEqual(layer.parameters[0].tensor.shape, [64, 128])  // expand_k 0.5
        XCTAssertEqual(layer.parameters[2].tensor.shape, [128, 128])  // expand_v 1
        XCTAssertEqual(layer.stateSize(sequenceLength: 1000), 4 * 16 * 32)  // H K V
        let conv: any SequenceLayer<Float> = try LayerRegistry.make("gla", dModel: 32, options: LayerOptions(["use_short_conv": "true"]))
        XCTAssertTrue(conv.parameters.map(\.name).contains("v_conv1d.weight"))
        XCTAssertThrowsError(try LayerRegistry.make("gla", dModel: 30, as: Float.self))  // key_dim 15 over 4 heads
        XCTAssertThrowsError(try LayerRegistry.make("gla", dModel: 33, options: LayerOptions(["heads": "1"]), as: Float.self))  // key_dim 16.5
    }

    func testOpWritesOutputsAndGradientsAndRejectsBadInput() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("seqlab-gla-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var rng = RandomGenerator(seed: 12)
        let (b, l, h, k, v) = (2, 19, 2, 3, 5)
        let q = Tensor<Double>.randn([b, l, h, k], using: &rng), kk = Tensor<Double>.randn([b, l, h, k], using: &rng)
        let vv = Tensor<Double>.randn([b, l, h, v], using: &rng), h0 = Tensor<Double>.randn([b, h, k, v], using: &rng)
        let g = Tensor<Double>.randn([b, l, h, k], using: &rng).logSigmoid().detached()
        let go = Tensor<Double>.randn([b, l, h, v], using: &rng), gh = Tensor<Double>.randn([b, h, k, v], using: &rng)
        var file = SafeTensors(metadata: ["chunk_size": "8", "scale": "0.4"])
        for (name, t) in [("q", q), ("k", kk), ("v", vv), ("g", g), ("h0", h0), ("grad_o", go), ("grad_hT", gh)] { file.set(name, t) }
        let (input, output) = (dir.appendingPathComponent("in.safetensors"), dir.appendingPathComponent("out.safetensors"))
        try file.write(to: input)
        try KernelRegistry.run("gla", input: input, output: output)
        let out = try SafeTensors.read(from: output)
        XCTAssertEqual(Set(out.names), ["o", "hT", "grad_q", "grad_k", "grad_v", "grad_g", "grad_h0"])

        let x = [q, kk, vv, g, h0].map { $0.detached().requiringGrad() }
        let (o, hT) = gatedLinearAttentionRecurrent(q: x[0], k: x[1], v: x[2], logGates: x[3], initialState: x[4], scale: 0.4)
        ((o * go).sum() + (hT * gh).sum()).backward()
        XCTAssertLessThan(GradientCheck.relativeError(try out.tensor("o", as: Double.self).data, o.data), 1e-12)
        XCTAssertLessThan(GradientCheck.relativeError(try out.tensor("hT", as: Double.self).data, hT.data), 1e-12)
        for (name, t) in zip(["q", "k", "v", "g", "h0"], x) {
            XCTAssertLessThan(GradientCheck.relativeError(try out.tensor("grad_\(name)", as: Double.self).data, t.grad!), 1e-12, name)
        }

        var positive = SafeTensors()
        for (name, t) in [("q", q), ("k", kk), ("v", vv), ("g", g.scaled(by: -1))] { positive.set(name, t) }
        try positive.write(to: input)
        XCTAssertThrowsError(try KernelRegistry.run("gla", input: input, output: output)) { XCTAssertTrue("\($0)".contains("<= 0"), "\($0)") }
        var badState = SafeTensors()
        for (name, t) in [("q", q), ("k", kk), ("v", vv), ("g", g), ("h0", gh.reshaped([b, h, v, k]))] { badState.set(name, t) }
        try badState.write(to: input)
        XCTAssertThrowsError(try KernelRegistry.run("gla", input: input, output: output)) { XCTAssertTrue("\($0)".contains("h0"), "\($0)") }
        var badChunk = SafeTensors(metadata: ["chunk_size": "0"])
        for (name, t) in [("q", q), ("k", kk), ("v", vv), ("g", g)] { badChunk.set(name, t) }
        try badChunk.write(to: input)
        XCTAssertThrowsError(try KernelRegistry.run("gla", input: input, output: output)) { XCTAssertTrue("\($0)".contains("chunk_size"), "\($0)") }
    }

    /// `seqlab op gla` with g [B, L, H] (the scalar-gate kernel) equals g broadcast to [B, L, H, K] (the per-channel
    /// kernel), outputs and gradients, in Float64.
    func testOpWithPerHeadGatesEqualsBroadcastGates() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gla-op-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var rng = RandomGenerator(seed: 31)
        let (b, l, h, k, v) = (2, 45, 3, 5, 4)
        let g = Tensor<Double>.randn([b, l, h], using: &rng).logSigmoid().detached()
        var common: [String: Tensor<Double>] = ["q": .randn([b, l, h, k], using: &rng), "k": .randn([b, l, h, k], using: &rng),
                                                "v": .randn([b, l, h, v], using: &rng), "h0": .randn([b, h, k, v], using: &rng),
                                                "grad_o": .randn([b, l, h, v], using: &rng), "grad_hT": .randn([b, h, k, v], using: &rng)]
        func run(_ gates: Tensor<Double>) throws -> SafeTensors {
            common["g"] = gates
            var file = SafeTensors(metadata: ["chunk_size": "16"])
            for (name, t) in common { file.set(name, t) }
            let (input, output) = (dir.appendingPathComponent("in.safetensors"), dir.appendingPathComponent("out.safetensors"))
            try file.write(to: input)
            try KernelRegistry.run("gla", input: input, output: output)
            return try SafeTensors.read(from: output)
        }
        let perHead = try run(g), broadcast = try run(g.reshaped([b, l, h, 1]).broadcast(to: [b, l, h, k]).detached())
        for name in ["o", "hT", "grad_q", "grad_k", "grad_v", "grad_h0"] {
            let (x, y) = (try perHead.tensor(name, as: Double.self), try broadcast.tensor(name, as: Double.self))
            XCTAssertLessThan(GradientCheck.relativeError(x.data, y.data), 1e-12, name)
        }
        let dgHead = try perHead.tensor("grad_g", as: Double.self), dgChannels = try broadcast.tensor("grad_g", as: Double.self)
        let summed = (0..<(b * l * h)).map { r in (0..<k).reduce(0.0) { $0 + dgChannels.data[r * k + $1] } }
        XCTAssertLessThan(GradientCheck.relativeError(dgHead.data, summed), 1e-12, "grad_g = the per-channel gradients summed over K")
    }
}
