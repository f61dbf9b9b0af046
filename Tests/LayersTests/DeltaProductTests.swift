import Foundation
import XCTest
@testable import Layers
@testable import Tensors

/// DeltaNet / DeltaProduct: chunked node == fused recurrent node == tape-op recurrence (outputs, final state, all
/// gradients), n_h = 1 == the delta rule, Householder-product transitions, finite differences, the layers, the ops.
final class DeltaProductTests: XCTestCase {
    /// o, hT and the gradients of (q, k, v, beta, g, h0) under loss = sum(o do) + sum(hT dhT); k is L2-normalised,
    /// beta = betaMax sigmoid(.), g = logsigmoid(.) (leaves are the raw values).
    func run<T: TensorScalar>(_ leaves: [Tensor<Double>], cot: [Tensor<Double>], betaMax: Double, gated: Bool,
                              form: DeltaRuleChecks.Form, chunk: Int = 64, as _: T.Type) -> [String: [Double]] {
        let x = leaves.map { $0.converted(to: T.self).requiringGrad() }
        let k = x[1] * (x[1].square().sum(axis: 4, keepDims: true) + T(1e-6)).rsqrt()
        let beta = x[3].sigmoid() * T(betaMax)
        let g = gated ? x[4].logSigmoid() : nil
        let (o, hT): (Tensor<T>, Tensor<T>)
        switch form {
        case .chunked: (o, hT) = deltaProductChunked(q: x[0], k: k, v: x[2], beta: beta, logDecay: g, initialState: x[5], chunkSize: chunk)
        case .recurrentFused: (o, hT) = deltaProductRecurrentFused(q: x[0], k: k, v: x[2], beta: beta, logDecay: g, initialState: x[5])
        default: (o, hT) = deltaProductRecurrent(q: x[0], k: k, v: x[2], beta: beta, logDecay: g, initialState: x[5])
        }
        ((o * cot[0].converted(to: T.self)).sum() + (hT * cot[1].converted(to: T.self)).sum()).backward()
        var r: [String: [Double]] = ["o": o.data.map(Double.init), "hT": hT.data.map(Double.init)]
        for (name, t) in zip(["dq", "dk", "dv", "dbeta", "dg", "dh0"], x) where gated || name != "dg" {
            r[name] = t.grad!.map(Double.init)
        }
        return r
    }

    func inputs(_ b: Int, _ l: Int, _ nh: Int, _ h: Int, _ k: Int, _ v: Int, seed: UInt64) -> (x: [Tensor<Double>], cot: [Tensor<Double>]) {
        var rng = RandomGenerator(seed: seed)
        let x = DeltaRuleChecks.shapes(b, l, nh, h, k, v).map { Tensor<Double>.randn($0, using: &rng) }
        return (x, [Tensor<Double>.randn([b, l, h, v], using: &rng), Tensor<Double>.randn([b, h, k, v], using: &rng)])
    }

    /// The MUST: chunked (chunk 64) == recurrent for o, hT and all gradients at L in {1, 63, 64, 75, 1000},
    /// n_h in {1, 2, 3}, with and without the gate, beta in [0, 1] and [0, 2]; Float64 to 1e-9, Float32 to 2e-3.
    func testChunkedMatchesRecurrentAcrossLengthsHouseholderStepsGatesAndBetaRanges() {
        let (b, h, k, v) = (1, 2, 5, 3)
        for length in [1, 63, 64, 75, 1000] {
            for nh in [1, 2, 3] {
                for gated in [false, true] {
                    for betaMax in [1.0, 2.0] {
                        let (x, cot) = inputs(b, length, nh, h, k, v, seed: UInt64(length * 31 + nh * 7 + (gated ? 1 : 0)))
                        let recurrent = run(x, cot: cot, betaMax: betaMax, gated: gated, form: .recurrentFused, as: Double.self)
                        let exact = run(x, cot: cot, betaMax: betaMax, gated: gated, form: .chunked, as: Double.self)
                        let single = run(x, cot: cot, betaMax: betaMax, gated: gated, form: .chunked, as: Float.self)
                        XCTAssertEqual(Set(exact.keys), Set(recurrent.keys))
                        for (name, ref) in recurrent {
                            let label = "L=\(length) n_h=\(nh) gated=\(gated) beta<=\(betaMax) \(name)"
                            XCTAssertLessThan(GradientCheck.relativeError(exact[name]!, ref), 1e-9, "Float64 chunked vs recurrent, \(label)")
                            XCTAssertLessThan(GradientCheck.relativeError(single[name]!, ref), 2e-3, "Float32 chunked vs recurrent, \(label)")
                        }
                    }
                }
            }
        }
    }

    /// Float32 paths with SIMD16 row loops (K, V >= 16, channels >= 16) against Float64: the chunked kernel at the
    /// layer's head sizes, the short convolution + SiLU, the gated RMSNorm.
    func testFloatPathsAtRealisticWidthsMatchDouble() {
        let (x, cot) = inputs(2, 100, 2, 1, 32, 32, seed: 4242)
        let reference = run(x, cot: cot, betaMax: 2, gated: true, form: .recurrentFused, as: Double.self)
        for chunk in [32, 64] {  // the layer's chunk (auto) and fla's
            let single = run(x, cot: cot, betaMax: 2, gated: true, form: .chunked, chunk: chunk, as: Float.self)
            let exact = run(x, cot: cot, betaMax: 2, gated: true, form: .chunked, chunk: chunk, as: Double.self)
            for (name, ref) in reference {
                XCTAssertLessThan(GradientCheck.relativeError(single[name]!, ref), 2e-3, "Float32 chunked \(chunk) vs Float64 recurrent, \(name)")
                XCTAssertLessThan(GradientCheck.relativeError(exact[name]!, ref), 1e-9, "Float64 chunked \(chunk) vs recurrent, \(name)")
            }
        }
        var rng = RandomGenerator(seed: 17)
        let u = Tensor<Double>.randn([2, 37, 40], using: &rng), w = Tensor<Double>.randn([40, 4], using: &rng)
        let o = Tensor<Double>.randn([2, 37, 2, 24], using: &rng), z = Tensor<Double>.randn([2, 37, 48], using: &rng)
        let nw = Tensor<Double>.randn([24], using: &rng)
        func both<T: TensorScalar>(_: T.Type) -> [[Double]] {
            let leaves = [u, w, o, z, nw].map { $0.converted(to: T.self).requiringGrad() }
            let y1 = shortConvolutionSiLU(leaves[0], weight: leaves[1])
            let y2 = gatedRMSNorm(leaves[2], gate: leaves[3], weight: leaves[4])
            (y1.square().sum() + (y2 * y2.detached()).sum()).backward()
            return [y1.data.map(Double.init), y2.data.map(Double.init)] + leaves.map { $0.grad!.map(Double.init) }
        }
        let (f, d) = (both(Float.self), both(Double.self))
        for i in 0..<d.count { XCTAssertLessThan(GradientCheck.relativeError(f[i], d[i]), 1e-5, "Float32 vs Float64, quantity \(i)") }
    }

    /// The fused recurrent node against the tape-op recurrence (the obviously right reference) across the same axes.
    func testRecurrentFusedMatchesTheTapeReference() {
        let (b, h, k, v) = (1, 2, 5, 3)
        for length in [1, 75, 1000] {
            for nh in [1, 2, 3] {
                for gated in [false, true] {
                    let betaMax = gated ? 2.0 : 1.0
                    // At L = 1000 one head and n_h <= 2 keep the tape-op reference affordable in debug.
                    if length == 1000 && nh == 3 { continue }
                    let (x, cot) = inputs(b, length, nh, length == 1000 ? 1 : h, k, v, seed: UInt64(length * 17 + nh * 5 + (gated ? 1 : 0)))
                    let reference = run(x, cot: cot, betaMax: betaMax, gated: gated, form: .reference, as: Double.self)
                    let exact = run(x, cot: cot, betaMax: betaMax, gated: gated, form: .recurrentFused, as: Double.self)
                    let single = run(x, cot: cot, betaMax: betaMax, gated: gated, form: .recurrentFused, as: Float.self)
                    for (name, ref) in reference {
                        let label = "L=\(length) n_h=\(nh) gated=\(gated) beta<=\(betaMax) \(name)"
                        XCTAssertLessThan(GradientCheck.relativeError(exact[name]!, ref), 1e-10, "Float64 fused vs tape reference, \(label)")
                        XCTAssertLessThan(GradientCheck.relativeError(single[name]!, ref), 2e-3, "Float32 fused vs tape reference, \(label)")
                    }
                }
            }
        }
    }

    func testDeltaRuleMatchesAPlainLoopAndDeltaProductWithOneStep() {
        // delta_rule per KERNELS.md, written as a plain loop over one (batch, head) item.
        let (l, h, k, v) = (13, 2, 4, 3)
        var rng = RandomGenerator(seed: 5)
        let q = Tensor<Double>.randn([1, l, h, k], using: &rng)
        let kk = Tensor<Double>.randn([1, l, h, k], using: &rng).scaled(by: 0.5)
        let vv = Tensor<Double>.randn([1, l, h, v], using: &rng)
        let beta = Tensor<Double>.uniform([1, l, h], low: 0, high: 2, using: &rng)
        let g = Tensor<Double>.uniform([1, l, h], low: -1, high: 0, using: &rng)
        let (o, hT) = deltaRule(q: q, k: kk, v: vv, beta: beta, logDecay: g, scale: 0.7)
        for head in 0..<h {
            var S = [Double](repeating: 0, count: k * v)
            for t in 0..<l {
                let eg = Foundation.exp(g.data[t * h + head])
                for i in 0..<(k * v) { S[i] *= eg }
                let kt = (0..<k).map { kk.data[(t * h + head) * k + $0] }, bt = beta.data[t * h + head]
                let u = (0..<v).map { c in (0..<k).reduce(0.0) { $0 + kt[$1] * S[$1 * v + c] } }
                for d in 0..<k { for c in 0..<v { S[d * v + c] += kt[d] * bt * (vv.data[(t * h + head) * v + c] - u[c]) } }
                for c in 0..<v {
                    let expected = (0..<k).reduce(0.0) { $0 + 0.7 * q.data[(t * h + head) * k + $1] * S[$1 * v + c] }
                    XCTAssertEqual(o.data[(t * h + head) * v + c], expected, accuracy: 1e-12)
                }
            }
            for i in 0..<(k * v) { XCTAssertEqual(hT.data[head * k * v + i], S[i], accuracy: 1e-12) }
        }
        // n_h = 1 DeltaProduct (k [B, L, 1, H, K]) is the delta rule, through the reference forms too.
        let (o1, h1) = deltaProductRecurrent(q: q, k: kk.reshaped([1, l, 1, h, k]), v: vv.reshaped([1, l, 1, h, v]),
                                             beta: beta.reshaped([1, l, 1, h]), logDecay: g, scale: 0.7)
        XCTAssertLessThan(GradientCheck.relativeError(o1.data, o.data), 1e-12)
        XCTAssertLessThan(GradientCheck.relativeError(h1.data, hT.data), 1e-12)
    }

    func testEmptySequencePassesTheStateThrough() {
        var rng = RandomGenerator(seed: 8)
        let h0 = Tensor<Double>.randn([2, 3, 4, 5], using: &rng)
        let (o, hT) = deltaProduct(q: .zeros([2, 0, 3, 4]), k: .zeros([2, 0, 2, 3, 4]), v: .zeros([2, 0, 2, 3, 5]),
                                   beta: .zeros([2, 0, 2, 3]), logDecay: .zeros([2, 0, 3]), initialState: h0)
        XCTAssertEqual(o.shape, [2, 0, 3, 5])
        XCTAssertEqual(hT.data, h0.data)
    }

    func testDeltaProductIsTheDeltaRuleOnTheInterleavedSequence() {
        for nh in [2, 3] {
            let (x, _) = inputs(2, 17, nh, 2, 4, 3, seed: UInt64(nh))
            let a = DeltaRuleChecks.run(x, form: .chunked, chunk: 5), b = DeltaRuleChecks.run(x, form: .interleaved)
            for i in 0..<2 { XCTAssertLessThan(GradientCheck.relativeError(a[i].data, b[i].data), 1e-12, "n_h \(nh) output \(i)") }
        }
    }

    func testPerTokenTransitionIsAProductOfHouseholderMatrices() {
        let (nh, k, v) = (3, 4, 3)
        var rng = RandomGenerator(seed: 99)
        let raw = Tensor<Double>.randn([1, 1, nh, 1, k], using: &rng)
        let keys = raw * raw.square().sum(axis: 4, keepDims: true).rsqrt()  // exactly unit keys
        let beta = Tensor<Double>(shape: [1, 1, nh, 1], data: [0.3, 1.6, 2.0])      // eigenvalues 0.7, -0.6, -1
        let g = Tensor<Double>(shape: [1, 1, 1], data: [-0.4])
        let h0 = Tensor<Double>.randn([1, 1, k, v], using: &rng)
        let q = Tensor<Double>.randn([1, 1, 1, k], using: &rng)
        let zeroV = Tensor<Double>.zeros([1, 1, nh, 1, v])
        let (_, hT) = deltaProduct(q: q, k: keys, v: zeroV, beta: beta, logDecay: g, initialState: h0)
        // Dense A = H_{n-1} ... H_0 e^g with H_j = I - beta_j k_j k_j^T.
        var A = (0..<(k * k)).map { $0 / k == $0 % k ? Foundation.exp(-0.4) : 0 }
        for j in 0..<nh {
            let kj = Array(keys.data[(j * k)..<((j + 1) * k)]), bj = beta.data[j]
            let Hj = (0..<(k * k)).map { i in (i / k == i % k ? 1 : 0) - bj * kj[i / k] * kj[i % k] }
            // Eigenvalue 1 - beta along k_j (negative for beta > 1).
            for d in 0..<k {
                XCTAssertEqual((0..<k).reduce(0.0) { $0 + Hj[d * k + $1] * kj[$1] }, (1 - bj) * kj[d], accuracy: 1e-12)
            }
            A = (0..<(k * k)).map { i in (0..<k).reduce(0.0) { $0 + Hj[(i / k) * k + $1] * A[$1 * k + i % k] } }
        }
        for d in 0..<k {
            for c in 0..<v {
                let expected = (0..<k).reduce(0.0) { $0 + A[d * k + $1] * h0.data[$1 * v + c] }
                XCTAssertEqual(hT.data[d * v + c], expected, accuracy: 1e-12)
            }
        }
        // With values the map is affine: hT(h0, v) = A h0 + hT(0, v).
        let vv = Tensor<Double>.randn([1, 1, nh, 1, v], using: &rng)
        let full = deltaProduct(q: q, k: keys, v: vv, beta: beta, logDecay: g, initialState: h0).finalState
        let offset = deltaProduct(q: q, k: keys, v: vv, beta: beta, logDecay: g).finalState
        for i in 0..<(k * v) { XCTAssertEqual(full.data[i], hT.data[i] + offset.data[i], accuracy: 1e-12) }
    }

    func testFiniteDifferencesAndFormChecksOfTheKernels() {
        for check in DeltaRuleChecks.all {
            let r = check.run(false)
            XCTAssertTrue(r.passed, r.row)
        }
    }

    func testLayersPassTheLayerCheck() throws {
        for name in ["deltaproduct", "deltanet"] {
            let results = try LayerCheck.run(name, quick: false)
            XCTAssertGreaterThanOrEqual(results.count, 8)
            for r in results { XCTAssertTrue(r.passed, r.row) }
        }
    }

    func testLayerParametersShapesAndBadOptions() throws {
        let layer: any SequenceLayer<Float> = try LayerRegistry.make("deltaproduct", dModel: 128)
        XCTAssertEqual(layer.parameters.map(\.name), [
            "q_proj.weight", "k_proj.weight", "v_proj.weight", "b_proj.weight", "a_proj.weight", "A_log", "dt_bias",
            "g_proj.weight", "o_norm.weight", "q_conv1d.weight", "k_conv1d.weight", "v_conv1d.weight", "o_proj.weight"])
        XCTAssertEqual(layer.parameters[1].tensor.shape, [256, 128])  // n_h 2 x 4 heads x 32
        XCTAssertEqual(layer.parameters[3].tensor.shape, [8, 128])
        XCTAssertEqual(layer.stateSize(sequenceLength: 10), 4 * 32 * 32 + 3 * (128 + 256 + 256))
        let net: any SequenceLayer<Float> = try LayerRegistry.make("deltanet", dModel: 64)
        XCTAssertFalse(net.parameters.map(\.name).contains("A_log"))
        XCTAssertEqual(net.parameters[0].tensor.shape, [64, 64])  // head_dim auto = d_model / heads, fla's expand_k 1
        XCTAssertThrowsError(try LayerRegistry.make("deltanet", dModel: 30, as: Float.self))  // 4 heads do not divide 30
        XCTAssertThrowsError(try LayerRegistry.make("deltaproduct", dModel: 16, options: LayerOptions(["head_dim": "3", "expand_v": "1.5"]), as: Float.self))
        XCTAssertThrowsError(try LayerRegistry.make("deltaproduct", dModel: 16, options: LayerOptions(["n_h": "0"]), as: Float.self))
        XCTAssertThrowsError(try LayerRegistry.make("deltanet", dModel: 16, options: LayerOptions(["conv_size": "1"]), as: Float.self))
        XCTAssertThrowsError(try LayerRegistry.make("deltanet", dModel: 16, options: LayerOptions(["chunk_size": "0"]), as: Float.self))
        XCTAssertThrowsError(try LayerRegistry.make("deltanet", dModel: 16, options: LayerOptions(["form": "parallel"]), as: Float.self))
        XCTAssertEqual((layer as! DeltaProductLayer<Float>).chunkSize, 32)   // auto: max(K, V) for K = V = 32
        XCTAssertEqual(DeltaProductLayer<Float>.defaultChunkSize(keyDim: 128, valueDim: 256), 64)
        XCTAssertEqual(DeltaProductLayer<Float>.defaultChunkSize(keyDim: 4, valueDim: 8), 16)
        // A one-token and an odd-length batch run and give finite gradients.
        var rng = RandomGenerator(seed: 3)
        for length in [1, 37] {
            let x = Tensor<Float>.randn([2, length, 128], using: &rng).requiringGrad()
            let y = layer(x)
            XCTAssertEqual(y.shape, [2, length, 128])
            y.sum().backward()
            XCTAssertTrue(x.grad!.allSatisfy { $0.isFinite })
        }
    }

    func testOpsWriteOutputsAndGradientsAndRejectBadInput() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("seqlab-delta-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var rng = RandomGenerator(seed: 21)
        let (b, l, nh, h, k, v) = (2, 9, 2, 2, 3, 4)
        let q = Tensor<Double>.randn([b, l, h, k], using: &rng), kk = Tensor<Double>.randn([b, l, nh, h, k], using: &rng)
        let vv = Tensor<Double>.randn([b, l, nh, h, v], using: &rng), h0 = Tensor<Double>.randn([b, h, k, v], using: &rng)
        let beta = Tensor<Double>.uniform([b, l, nh, h], low: 0, high: 2, using: &rng)
        let g = Tensor<Double>.randn([b, l, h], using: &rng).logSigmoid().detached()
        let go = Tensor<Double>.randn([b, l, h, v], using: &rng), gh = Tensor<Double>.randn([b, h, k, v], using: &rng)
        var file = SafeTensors(metadata: ["chunk_size": "4", "scale": "0.4"])
        for (name, t) in [("q", q), ("k", kk), ("v", vv), ("beta", beta), ("g", g), ("h0", h0), ("grad_o", go), ("grad_hT", gh)] { file.set(name, t) }
        let (input, output) = (dir.appendingPathComponent("in.safetensors"), dir.appendingPathComponent("out.safetensors"))
        try file.write(to: input)
        try KernelRegistry.run("delta_product", input: input, output: output)
        let out = try SafeTensors.read(from: output)
        XCTAssertEqual(Set(out.names), ["o", "hT", "grad_q", "grad_k", "grad_v", "grad_beta", "grad_g", "grad_h0"])
        let x = [q, kk, vv, beta, g, h0].map { $0.detached().requiringGrad() }
        let (o, hT) = deltaProductRecurrent(q: x[0], k: x[1], v: x[2], beta: x[3], logDecay: x[4], initialState: x[5], scale: 0.4)
        ((o * go).sum() + (hT * gh).sum()).backward()
        XCTAssertLessThan(GradientCheck.relativeError(try out.tensor("o", as: Double.self).data, o.data), 1e-12)
        XCTAssertLessThan(GradientCheck.relativeError(try out.tensor("hT", as: Double.self).data, hT.data), 1e-12)
        for (name, t) in zip(["q", "k", "v", "beta", "g", "h0"], x) {
            XCTAssertLessThan(GradientCheck.relativeError(try out.tensor("grad_\(name)", as: Double.self).data, t.grad!), 1e-12, name)
        }
        // delta_rule on the n_h = 1 slice.
        var rule = SafeTensors()
        let k1 = kk.slice(axis: 2, 0..<1).reshaped([b, l, h, k]).detached(), v1 = vv.slice(axis: 2, 0..<1).reshaped([b, l, h, v]).detached()
        for (name, t) in [("q", q), ("k", k1), ("v", v1), ("beta", beta.slice(axis: 2, 0..<1).reshaped([b, l, h]).detached())] { rule.set(name, t) }
        try rule.write(to: input)
        try KernelRegistry.run("delta_rule", input: input, output: output)
        XCTAssertEqual(try SafeTensors.read(from: output).tensor("o", as: Double.self).shape, [b, l, h, v])

        var positive = SafeTensors()
        for (name, t) in [("q", q), ("k", kk), ("v", vv), ("beta", beta), ("g", g.scaled(by: -1))] { positive.set(name, t) }
        try positive.write(to: input)
        XCTAssertThrowsError(try KernelRegistry.run("delta_product", input: input, output: output)) { XCTAssertTrue("\($0)".contains("<= 0"), "\($0)") }
        var badBeta = SafeTensors()
        for (name, t) in [("q", q), ("k", kk), ("v", vv), ("beta", g)] { badBeta.set(name, t) }
        try badBeta.write(to: input)
        XCTAssertThrowsError(try KernelRegistry.run("delta_product", input: input, output: output)) { XCTAssertTrue("\($0)".contains("beta"), "\($0)") }
        // The recurrent form through the op agrees with the chunked default.
        var recurrentFile = file
        recurrentFile.metadata["form"] = "recurrent"
        try recurrentFile.write(to: input)
        try KernelRegistry.run("delta_product", input: input, output: output)
        XCTAssertLessThan(GradientCheck.relativeError(try SafeTensors.read(from: output).tensor("grad_k", as: Double.self).data, x[1].grad!), 1e-12)
        var badForm = file
        badForm.metadata["form"] = "parallel"
        try badForm.write(to: input)
        XCTAssertThrowsError(try KernelRegistry.run("delta_product", input: input, output: output)) { XCTAssertTrue("\($0)".contains("form"), "\($0)") }
        var badChunk = SafeTensors(metadata: ["chunk_size": "0"])
        for (name, t) in [("q", q), ("k", k1), ("v", v1), ("beta", beta.slice(axis: 2, 0..<1).reshaped([b, l, h]).detached())] { badChunk.set(name, t) }
        try badChunk.write(to: input)
        XCTAssertThrowsError(try KernelRegistry.run("delta_rule", input: input, output: output)) { XCTAssertTrue("\($0)".contains("chunk_size"), "\($0)") }
    }
}
