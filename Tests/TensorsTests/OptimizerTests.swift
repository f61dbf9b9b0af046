import Foundation
import XCTest

@testable import Tensors

final class OptimizerTests: XCTestCase {
    private func param<T: TensorScalar>(
        _ name: String, _ data: [T], tags: ParameterTags = .init()
    ) -> NamedParameter<T> {
        NamedParameter(name, Tensor(shape: [data.count], data: data, requiresGrad: true), tags: tags)
    }

    private func assertEqual(
        _ a: [Double], _ b: [Double], accuracy: Double, _ message: String = "",
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(a.count, b.count, message, file: file, line: line)
        for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: accuracy, message, file: file, line: line) }
    }

    // MARK: - Parameters

    func testNamedParameterHelpers() {
        let params = [param("A_log", [1.0, 2]), param("D", [3.0], tags: .norm)].prefixed("blocks.0.mixer")
        XCTAssertEqual(params.map(\.name), ["blocks.0.mixer.A_log", "blocks.0.mixer.D"])
        XCTAssertEqual(params.scalarCount, 3)
        XCTAssertEqual(params.parameter(named: "blocks.0.mixer.D")?.tensor.data, [3])
        XCTAssertEqual(params.parameter(named: "blocks.0.mixer.D")?.tags.weightDecay, false)
        XCTAssertNil(params.parameter(named: "D"))
        params.checkUniqueNames()
    }

    // MARK: - AdamW

    /// Adam (Kingma & Ba 2015) with decoupled weight decay (Loshchilov & Hutter 2019), lr = 0.01, λ = 0.1,
    /// β = (0.9, 0.999), ε = 1e-8, at update t = 1, 2:
    ///
    ///     p ← p (1 − lr λ)
    ///     m ← β₁ m + (1 − β₁) g          v ← β₂ v + (1 − β₂) g²
    ///     p ← p − lr · (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε)
    ///
    /// t = 1: m̂ = g, v̂ = g², so p₁ = 0.999 p₀ − 0.01 g / (|g| + 1e-8), e.g. p₁[0] = 0.4995 − 0.001 / 0.10000001.
    /// t = 2, element 0: p = 0.999 p₁[0] = 0.489010500999, m = 0.9 · 0.01 + 0.1 · (−0.05) = 0.004,
    /// v = 0.999 · 1e-5 + 0.001 · 0.0025 = 1.249e-5, m̂ = 0.004 / 0.19, v̂ = 1.249e-5 / 0.001999,
    /// p₂[0] = 0.489010500999 − 0.01 · m̂ / (√v̂ + 1e-8) = 0.486347130939.
    func testAdamWFirstTwoStepsMatchHandComputation() {
        let p = param("w", [0.5, -1.0, 2.0])
        let opt = AdamW(parameters: [p], learningRate: 0.01, weightDecay: 0.1)

        p.tensor.setGrad([0.1, -0.2, 0.3])
        opt.step()
        assertEqual(
            p.tensor.data, [0.4995 - 0.001 / 0.10000001, -0.999 + 0.002 / 0.20000001, 1.998 - 0.003 / 0.30000001],
            accuracy: 1e-15, "step 1")

        p.tensor.setGrad([-0.05, 0.4, 0.1])
        opt.step()
        assertEqual(p.tensor.data, [0.48634713093933907, -0.9916720356541037, 1.9773013612153862], accuracy: 1e-13, "step 2")
        let state = opt.state
        XCTAssertEqual(state.step, 2)
        XCTAssertEqual(state.parameterSteps, ["w": 2])
        assertEqual(state.firstMoments["w"]!, [0.004, 0.022, 0.037], accuracy: 1e-15)  // 0.09 g₁ + 0.1 g₂
        assertEqual(state.secondMoments["w"]!, [1.249e-5, 1.9996e-4, 9.991e-5], accuracy: 1e-17)
    }

    /// With a zero gradient Adam's update is 0 / (0 + ε) = 0, so only the decay moves p: p ← p (1 − lr λ).
    func testWeightDecaySkippedForNoWeightDecayTag() {
        let decayed = param("w", [2.0, -4.0])
        let exempt = param("norm.gain", [2.0, -4.0], tags: .norm)
        let noGrad = param("unused", [2.0, -4.0])
        let opt = AdamW(parameters: [decayed, exempt, noGrad], learningRate: 0.1, weightDecay: 0.5)
        decayed.tensor.setGrad([0, 0])
        exempt.tensor.setGrad([0, 0])
        opt.step()
        XCTAssertEqual(decayed.tensor.data, [2.0 * 0.95, -4.0 * 0.95])  // 1 − 0.1 · 0.5 = 0.95
        XCTAssertEqual(exempt.tensor.data, [2.0, -4.0])
        XCTAssertEqual(noGrad.tensor.data, [2.0, -4.0], "a parameter without gradient is skipped, not decayed")
        XCTAssertNil(opt.state.firstMoments["unused"])
    }

    /// At t = 1 Adam moves each scalar by lr_eff · g / (|g| + ε), with lr_eff = (tags.learningRate ?? base) · factor.
    func testPerParameterLearningRateOverridesBaseAndKeepsScheduleFactor() {
        let base = param("w", [1.0])
        let own = param("ssm.log_dt", [1.0], tags: ParameterTags(weightDecay: false, learningRate: 0.01))
        let opt = AdamW(parameters: [base, own], learningRate: 0.001, weightDecay: 0)
        base.tensor.setGrad([2])
        own.tensor.setGrad([2])
        opt.step(scheduleFactor: 0.5)
        let unit = 2.0 / (2.0 + 1e-8)
        XCTAssertEqual(base.tensor.data[0], 1 - 0.0005 * unit, accuracy: 1e-15)
        XCTAssertEqual(own.tensor.data[0], 1 - 0.005 * unit, accuracy: 1e-15)
    }

    func testAdamWMinimisesQuadraticIn500Steps() {
        let target: [Double] = [1, -2, 3, 0.5, -0.25]
        let p = param("w", [Double](repeating: 0, count: target.count))
        let opt = AdamW(parameters: [p], learningRate: 0.05, weightDecay: 0)
        for _ in 0..<500 {
            p.tensor.setGrad(zip(p.tensor.data, target).map { 2 * ($0 - $1) })  // ∇ Σ (p − c)²
            opt.step()
        }
        assertEqual(p.tensor.data, target, accuracy: 1e-3)
    }

    // MARK: - SGD

    /// b ← μ b + g (so b₁ = g₁), p ← p − lr b; Nesterov: p ← p − lr (g + μ b). lr = 0.1, μ = 0.9.
    func testSGDMomentumMatchesHandComputation() {
        let p = param("w", [1.0, -2.0])
        let n = param("w", [1.0, -2.0])
        let heavyBall = SGD(parameters: [p], learningRate: 0.1, momentum: 0.9)
        let nesterov = SGD(parameters: [n], learningRate: 0.1, momentum: 0.9, nesterov: true)
        for g in [[0.5, -1.0], [0.2, 0.4]] {
            p.tensor.setGrad(g)
            n.tensor.setGrad(g)
            heavyBall.step()
            nesterov.step()
        }
        // b₁ = (0.5, −1), p₁ = (0.95, −1.9); b₂ = 0.9 b₁ + g₂ = (0.65, −0.5), p₂ = p₁ − 0.1 b₂ = (0.885, −1.85).
        assertEqual(p.tensor.data, [0.885, -1.85], accuracy: 1e-15)
        assertEqual(heavyBall.state.firstMoments["w"]!, [0.65, -0.5], accuracy: 1e-15)
        // Nesterov: p₁ = p₀ − 0.1 (g₁ + 0.9 b₁) = (0.905, −1.81); p₂ = p₁ − 0.1 (g₂ + 0.9 b₂) = (0.8265, −1.805).
        assertEqual(n.tensor.data, [0.8265, -1.805], accuracy: 1e-15)
    }

    /// L2 decay is added to the gradient, d = g + λ p; without momentum p ← p − lr d. Untagged parameters only.
    func testSGDWeightDecayWithoutMomentum() {
        let decayed = param("w", [2.0])
        let exempt = param("b", [2.0], tags: .norm)
        let opt = SGD(parameters: [decayed, exempt], learningRate: 0.1, momentum: 0, weightDecay: 0.5)
        decayed.tensor.setGrad([1])
        exempt.tensor.setGrad([1])
        opt.step()
        XCTAssertEqual(decayed.tensor.data[0], 2 - 0.1 * (1 + 0.5 * 2), accuracy: 1e-15)  // 1.8
        XCTAssertEqual(exempt.tensor.data[0], 2 - 0.1, accuracy: 1e-15)
        XCTAssertTrue(opt.state.firstMoments.isEmpty)
    }

    // MARK: - Clipping

    func testClipGradientNormScalesToMaxNorm() {
        let a = param("a", [0.0, 0.0]), b = param("b", [0.0]), c = param("c", [0.0])
        a.tensor.setGrad([3, 0])
        b.tensor.setGrad([4])  // global norm √(9 + 16) = 5; c has no gradient
        let norm = clipGradientNorm([a, b, c], maxNorm: 1.0)
        XCTAssertEqual(norm, 5, accuracy: 1e-15)
        let scale = 1.0 / (5 + 1e-6)  // maxNorm / (norm + 1e-6), PyTorch's clip coefficient
        assertEqual(a.tensor.grad!, [3 * scale, 0], accuracy: 1e-15)
        assertEqual(b.tensor.grad!, [4 * scale], accuracy: 1e-15)
        XCTAssertNil(c.tensor.grad)
        // The norm after clipping is maxNorm · 5 / (5 + 1e-6): maxNorm up to the 1e-6 guard.
        XCTAssertEqual(clipGradientNorm([a, b, c], maxNorm: 10.0), 5 / (5 + 1e-6), accuracy: 1e-15)
        XCTAssertEqual(clipGradientNorm([a, b, c], maxNorm: 10.0), 1.0, accuracy: 1e-6)

        a.tensor.setGrad([0.3, 0])
        b.tensor.setGrad([0.4])
        XCTAssertEqual(clipGradientNorm([a, b], maxNorm: 1.0), 0.5, accuracy: 1e-15)
        XCTAssertEqual(a.tensor.grad!, [0.3, 0], "below maxNorm: untouched")
    }

    // MARK: - Schedules

    func testWarmupCosineSchedule() throws {
        let s = LearningRateSchedule.warmupCosine(warmupSteps: 10, totalSteps: 110, minFactor: 0.1)
        XCTAssertEqual(s.factor(step: 0), 0.1, accuracy: 1e-15)  // 1 / W
        XCTAssertEqual(s.factor(step: 4), 0.5, accuracy: 1e-15)  // mid-warmup: 5 / 10
        XCTAssertEqual(s.factor(step: 9), 1.0, accuracy: 1e-15)  // last warmup step
        XCTAssertEqual(s.factor(step: 10), 1.0, accuracy: 1e-15)  // cosine starts at 1
        XCTAssertEqual(s.factor(step: 35), 0.1 + 0.9 * 0.5 * (1 + cos(Double.pi / 4)), accuracy: 1e-15)
        XCTAssertEqual(s.factor(step: 60), 0.55, accuracy: 1e-15)  // middle: f + (1 − f) · ½
        XCTAssertEqual(s.factor(step: 110), 0.1, accuracy: 1e-15)  // end
        XCTAssertEqual(s.factor(step: 500), 0.1)  // after
        XCTAssertEqual(LearningRateSchedule.constant.factor(step: 7), 1)
        XCTAssertEqual(LearningRateSchedule.linearWarmup(warmupSteps: 4).factor(step: 1), 0.5)
        XCTAssertEqual(LearningRateSchedule.linearWarmup(warmupSteps: 4).factor(step: 100), 1)
        let json = try JSONEncoder().encode(s)
        XCTAssertEqual(try JSONDecoder().decode(LearningRateSchedule.self, from: json), s)
    }

    // MARK: - Checkpoint and resume

    /// Deterministic gradients that depend on the parameters; the third parameter gets none on odd steps.
    private func makeGradients(_ params: [NamedParameter<Float>], step: Int) {
        for (k, p) in params.enumerated() {
            if k == 2 && step % 2 == 1 { continue }
            p.tensor.setGrad(
                p.tensor.data.enumerated().map { j, x in 2 * x - Float(j + k) + 0.3 * Float.sin(Float(step) + x) })
        }
    }

    private func freshParameters() -> [NamedParameter<Float>] {
        [
            param("emb", [0.1, -0.7, 1.3, 2.2]),
            param("blocks.0.A_log", [0.5, 0.25], tags: ParameterTags(weightDecay: false, learningRate: 0.003)),
            param("blocks.0.D", [1.0, -1.0, 0.5]),
        ]
    }

    /// 5 steps, JSON round trip of the state, 5 more steps on copied parameters == 10 steps straight, bit for bit.
    private func checkResumeIsExact<O: Optimizer>(_ make: ([NamedParameter<Float>]) -> O) throws where O.Scalar == Float {
        let schedule = LearningRateSchedule.warmupCosine(warmupSteps: 3, totalSteps: 10, minFactor: 0.2)
        func run(_ opt: O, _ steps: Range<Int>) {
            for t in steps {
                makeGradients(opt.parameters, step: t)
                opt.step(scheduleFactor: schedule.factor(step: opt.stepCount))
                opt.zeroGrad()
            }
        }
        let straight = make(freshParameters())
        run(straight, 0..<10)

        let first = make(freshParameters())
        run(first, 0..<5)
        let saved = try JSONDecoder().decode(OptimizerState.self, from: JSONEncoder().encode(first.state))
        XCTAssertEqual(saved, first.state)
        let resumed = make(first.parameters.map { param($0.name, $0.tensor.data, tags: $0.tags) })
        resumed.load(state: saved)
        XCTAssertEqual(resumed.stepCount, 5)
        run(resumed, 5..<10)

        for (a, b) in zip(straight.parameters, resumed.parameters) {
            XCTAssertEqual(a.tensor.data, b.tensor.data, "\(a.name) differs after resume")  // exact equality
        }
        XCTAssertEqual(straight.state, resumed.state)
        XCTAssertNotEqual(straight.parameters[0].tensor.data, first.parameters[0].tensor.data)
    }

    func testAdamWStateSaveLoadResumesBitForBit() throws {
        try checkResumeIsExact { AdamW(parameters: $0, learningRate: 0.01, weightDecay: 0.05) }
    }

    func testSGDStateSaveLoadResumesBitForBit() throws {
        try checkResumeIsExact { SGD(parameters: $0, learningRate: 0.01, momentum: 0.9, weightDecay: 0.01, nesterov: true) }
    }

    // MARK: - With tape gradients

    /// loss = Σ exp(p) · (p − c)²; ∂loss/∂p = exp(p) ((p − c)² + 2 (p − c)), minimised at p = c.
    func testAdamWWithTapeGradients() {
        let p = param("w", [0.0, 0.5, -0.5])
        let c = Tensor<Double>(shape: [3], data: [0.3, -0.2, 0.1])
        let opt = AdamW(parameters: [p], learningRate: 0.02, weightDecay: 0)
        func lossAndBackward() -> Double {
            let loss = (p.tensor.exp() * (p.tensor - c).square()).sum()
            loss.backward()
            return loss.item
        }

        let initial = lossAndBackward()
        let expected = zip(p.tensor.data, c.data).map { x, c in Foundation.exp(x) * ((x - c) * (x - c) + 2 * (x - c)) }
        assertEqual(p.tensor.grad ?? [], expected, accuracy: 1e-12)
        opt.step()
        opt.zeroGrad()
        XCTAssertNil(p.tensor.grad)
        for _ in 1..<300 {
            _ = lossAndBackward()
            opt.step()
            opt.zeroGrad()
        }
        XCTAssertLessThan(lossAndBackward(), 1e-6 * initial)
        assertEqual(p.tensor.data, c.data, accuracy: 1e-3)
    }
}
