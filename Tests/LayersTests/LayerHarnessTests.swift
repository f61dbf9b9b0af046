import Foundation
import XCTest
@testable import Layers
@testable import Tensors

/// The generic layer harnesses on the test layer, and what they must catch.
final class LayerHarnessTests: XCTestCase {
    func testDiagonalLayerPassesTheLayerCheck() throws {
        let results = try LayerCheck.run("diagonal", quick: true)
        XCTAssertGreaterThanOrEqual(results.count, 4)
        for r in results { XCTAssertTrue(r.passed, r.row) }
    }

    /// A layer whose recurrent step uses a slightly different decay than its parallel form.
    final class DriftingStep<T: TensorScalar>: SequenceLayer {
        let inner: DiagonalRecurrence<T>
        init(dModel: Int) {
            var rng = RandomGenerator(seed: 0)
            inner = DiagonalRecurrence(dModel: dModel, rng: &rng)
        }
        var dModel: Int { inner.dModel }
        func callAsFunction(_ x: Tensor<T>) -> Tensor<T> { inner(x) }
        func initialState(batchSize: Int) -> Tensor<T> { inner.initialState(batchSize: batchSize) }
        func step(_ x: Tensor<T>, state h: inout Tensor<T>) -> Tensor<T> {
            h = (inner.aLogit.sigmoid() * 0.999) * h + inner.b * x
            return inner.output(h * inner.c + x * inner.d)
        }
        var parameters: [NamedParameter<T>] { inner.parameters }
        func stateSize(sequenceLength: Int) -> Int { dModel }
    }

    func testLayerCheckFailsWhenStepDisagreesWithParallel() {
        let results = LayerCheck.check(DriftingStep<Double>(dModel: 6), single: DriftingStep<Float>(dModel: 6), label: "drifting", quick: true)
        let stepRows = results.filter { $0.name.contains("step == parallel") }
        XCTAssertTrue(results[0].passed, "its gradients are right: \(results[0].row)")
        XCTAssertTrue(stepRows.contains { $0.name.contains("L=7") && !$0.passed }, "a drifting step must fail")
        XCTAssertTrue(stepRows.contains { $0.name.contains("Float32") && !$0.passed })
        XCTAssertTrue(stepRows.contains { $0.name.contains("L=1") && $0.passed }, "one token cannot drift yet")
    }

    func testRegistryRejectsUnknownNamesAndOptions() {
        XCTAssertThrowsError(try LayerRegistry.make("mamaba", dModel: 8, as: Double.self)) { error in
            XCTAssertTrue("\(error)".hasPrefix("unknown layer 'mamaba' (did you mean 'mamba'?) (known: "), "\(error)")
        }
        XCTAssertThrowsError(try LayerRegistry.make("diagonal", dModel: 8, options: LayerOptions(["n_head": "2"]), as: Double.self)) { error in
            XCTAssertTrue("\(error)".contains("unknown option 'n_head'"), "\(error)")
        }
        XCTAssertThrowsError(try LayerRegistry.make("diagonal", dModel: 0, as: Float.self))
        XCTAssertThrowsError(try LayerRegistry.make("deltanet", dModel: 8, options: LayerOptions(["n_h": "two"]), as: Float.self)) { error in
            XCTAssertEqual("\(error)", "layer deltanet: option n_h: 'two' is not an integer")
        }
        XCTAssertThrowsError(try LayerRegistry.make("deltanet", dModel: 8, options: LayerOptions(["n_hh": "2"]), as: Float.self)) { error in
            XCTAssertTrue("\(error)".hasPrefix("layer deltanet: unknown option 'n_hh' (did you mean 'n_h'?)"), "\(error)")
        }
        XCTAssertThrowsError(try LayerRegistry.make("attentoin", dModel: 8, as: Float.self)) { error in
            XCTAssertTrue("\(error)".hasPrefix("unknown layer 'attentoin' (did you mean 'attention'?)"), "\(error)")
        }
    }

    /// Every integer option of every built-in layer is bounded above where it is declared (LayerLimits): a value past
    /// the bound is a one-line error naming the option, where it once failed in allocation (a crash) while the layer
    /// was built (mamba d_state 1e9, deltaproduct n_h 1e5).
    func testEveryIntegerOptionIsBoundedAbove() throws {
        var checked = 0
        for factory in LayerRegistry.builtIn {
            for option in factory.options where option.kind == .integer {
                let maximum = try XCTUnwrap(option.maximum, "\(factory.name).\(option.name) has no maximum")
                XCTAssertNoThrow(try LayerRegistry.resolvedOptions(factory.name, LayerOptions([option.name: "\(Int(maximum))"])),
                                 "\(factory.name).\(option.name) at its maximum")
                XCTAssertThrowsError(try LayerRegistry.resolvedOptions(factory.name, LayerOptions([option.name: "\(Int(maximum) + 1)"]))) {
                    XCTAssertTrue("\($0)".hasPrefix("layer \(factory.name): option \(option.name)"), "\($0)")
                    XCTAssertFalse("\($0)".contains("\n"), "\($0)")
                }
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 40)
        XCTAssertThrowsError(try LayerRegistry.make("attention", dModel: LayerLimits.maximumWidth + 1, as: Float.self))
    }

    /// A chunk (or sub-chunk, or checkpoint interval) at its maximum, far longer than the sequence, is clamped to it
    /// (`ChunkGrid`): no layer allocates a chunk-sized buffer, forward or backward (2^20 squared entries once crashed
    /// every chunked layer in allocation).
    func testLayersRunWithTheLargestChunkOnAShortSequence() throws {
        let chunkOptions: Set<String> = ["chunk_size", "sub_chunk_size", "checkpoint_interval"]
        var rng = RandomGenerator(seed: 3)
        for factory in LayerRegistry.builtIn {
            let names = factory.options.filter { chunkOptions.contains($0.name) }.map(\.name)
            guard !names.isEmpty else { continue }
            var values: [String: String] = [:]
            for name in names { values[name] = "\(LayerLimits.maximumChunk)" }
            // With the largest state too, a chunk-sized buffer would not fit in any machine's memory (Mamba's scan
            // checkpoints are interval x channels x d_state: 2^20 x 32 x 4096 floats), so a regression crashes here.
            if factory.options.contains(where: { $0.name == "d_state" }) { values["d_state"] = "\(LayerLimits.maximumStateSize)" }
            let layer: any SequenceLayer<Float> = try LayerRegistry.make(factory.name, dModel: 16, options: LayerOptions(values))
            let x = Tensor<Float>.randn([1, 5, 16], using: &rng).requiringGrad()
            let y = layer(x)
            XCTAssertEqual(y.shape, x.shape, factory.name)
            XCTAssertTrue(y.data.allSatisfy(\.isFinite), factory.name)
            y.sum().backward()
            XCTAssertTrue(x.grad!.allSatisfy { $0.isFinite }, factory.name)
        }
    }

    func testLayerParametersAreNamedAndTagged() throws {
        let layer: any SequenceLayer<Float> = try LayerRegistry.make("diagonal", dModel: 8)
        let names = layer.parameters.map(\.name)
        XCTAssertEqual(names, ["a_logit", "b", "c", "d", "out_proj.weight"])
        XCTAssertFalse(layer.parameters[0].tags.weightDecay)
        XCTAssertEqual(layer.parameterCount, 4 * 8 + 64)
        XCTAssertEqual(layer.stateSize(sequenceLength: 100), 8)
    }

    /// 1000 steps of forward + backward + AdamW on a small model: resident memory must stay flat.
    func testTrainingLoopMemoryStaysFlat() {
        var rng = RandomGenerator(seed: 3)
        let (vocab, width, length, batch) = (16, 32, 64, 4)
        let embedding = Tensor<Float>.randn([vocab, width], std: 0.1, using: &rng, requiresGrad: true)
        let mixer = DiagonalRecurrence<Float>(dModel: width, rng: &rng)
        let head = Linear<Float>(inputSize: width, outputSize: vocab, rng: &rng)
        let params = [NamedParameter("embedding", embedding)] + mixer.parameters.prefixed("mixer") + head.parameters("head")
        let optimizer = AdamW(parameters: params, learningRate: 1e-3)
        var residentAt: [Int: Double] = [:]
        var firstLoss = 0.0, lastLoss = 0.0
        for step in 1...1000 {
            let tokens = (0..<(batch * length)).map { _ in rng.int(below: vocab) }
            let targets = tokens.map { ($0 + 1) % vocab }
            let x = embedding.embedding(tokens, indexShape: [batch, length])
            let loss = head(x + mixer(x).gelu()).crossEntropy(targets: targets)
            loss.backward()
            clipGradientNorm(params, maxNorm: 1)
            optimizer.step()
            optimizer.zeroGrad()
            if step == 1 { firstLoss = Double(loss.item) }
            lastLoss = Double(loss.item)
            if step == 100 || step == 1000 { residentAt[step] = MemoryProbe.residentMB() }
        }
        let growth = residentAt[1000]! - residentAt[100]!
        print("training loop RSS: step 100 \(residentAt[100]!) MB, step 1000 \(residentAt[1000]!) MB, growth \(growth) MB")
        XCTAssertLessThan(growth, 4, "resident memory grew by \(growth) MB between steps 100 and 1000")
        XCTAssertLessThan(lastLoss, firstLoss * 0.5, "the model learns the shift-by-one map")
    }
}
