import RealModule

/// A first-order optimiser over a fixed list of named parameters.
///
/// One training step: `loss.backward()`, optionally `clipGradientNorm(params, maxNorm:)`, then
/// `step(scheduleFactor: schedule.factor(step: opt.stepCount))`, then `zeroGrad()`. A parameter's effective learning
/// rate is `lr_eff = (tags.learningRate ?? learningRate) * scheduleFactor`; parameters whose `grad` is nil are
/// skipped (not updated, not decayed, their moments untouched).
public protocol Optimizer<Scalar>: AnyObject {
    associatedtype Scalar: TensorScalar
    /// The parameters it updates, in order (names unique).
    var parameters: [NamedParameter<Scalar>] { get }
    /// The base learning rate; a parameter's `tags.learningRate` overrides it.
    var learningRate: Double { get set }
    /// The number of `step` calls so far.
    var stepCount: Int { get }
    /// Updates every parameter that has a gradient, with learning rates multiplied by `scheduleFactor`.
    func step(scheduleFactor: Double)
    /// The step count and moment buffers, to checkpoint.
    var state: OptimizerState { get }
    /// Restores a checkpointed `state`; the next `step` then makes exactly the updates the saved optimiser would have.
    func load(state: OptimizerState)
}

extension Optimizer {
    /// Drops every parameter's gradient (call after `step`: gradients accumulate across `backward` calls).
    public func zeroGrad() {
        for p in parameters { p.tensor.zeroGrad() }
    }
}

/// An optimiser's serialisable state: step counts and moment buffers keyed by parameter name (Codable: a trainer
/// checkpoints it as JSON next to the weights). Moments are stored as `Double`, which holds `Float` exactly, so a
/// save/load round trip reproduces the updates bit for bit.
public struct OptimizerState: Codable, Equatable, Sendable {
    /// "AdamW" or "SGD": `load` refuses a state of the other kind.
    public var kind: String
    /// The number of `step` calls so far.
    public var step: Int
    /// How many updates each parameter has received (Adam's bias correction counts per parameter, as PyTorch does).
    public var parameterSteps: [String: Int]
    /// Adam's first moment m, or SGD's momentum buffer, by parameter name (absent until its first gradient).
    public var firstMoments: [String: [Double]]
    /// Adam's second moment v by parameter name (empty for SGD).
    public var secondMoments: [String: [Double]]

    /// A state from its parts.
    public init(
        kind: String, step: Int, parameterSteps: [String: Int] = [:],
        firstMoments: [String: [Double]] = [:], secondMoments: [String: [Double]] = [:]
    ) {
        self.kind = kind
        self.step = step
        self.parameterSteps = parameterSteps
        self.firstMoments = firstMoments
        self.secondMoments = secondMoments
    }
}

/// AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019;
/// Adam: Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015). PyTorch's `torch.optim.AdamW`.
///
/// For each parameter p with gradient g, at its t-th update, with lr = lr_eff (see `Optimizer`):
///
///     p ← p · (1 − lr · λ)                       (decoupled decay; skipped if tags.weightDecay == false)
///     m ← β₁ m + (1 − β₁) g
///     v ← β₂ v + (1 − β₂) g²
///     p ← p − lr / (1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)
public final class AdamW<T: TensorScalar>: Optimizer {
    /// The parameters it updates, in order.
    public let parameters: [NamedParameter<T>]
    /// The base learning rate; a parameter's `tags.learningRate` overrides it.
    public var learningRate: Double
    /// (β₁, β₂): decay rates of the first and second moments.
    public var betas: (Double, Double)
    /// ε, added to √v̂ for numerical stability.
    public var eps: Double
    /// λ, the decoupled weight decay coefficient.
    public var weightDecay: Double
    /// The number of `step` calls so far.
    public private(set) var stepCount = 0
    private var first: [[T]]  // m per parameter; empty until its first gradient
    private var second: [[T]]  // v per parameter
    private var updates: [Int]  // t per parameter

    /// An AdamW optimiser over `parameters` (names must be unique).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public init(
        parameters: [NamedParameter<T>], learningRate: Double, betas: (Double, Double) = (0.9, 0.999),
        eps: Double = 1e-8, weightDecay: Double = 0.01
    ) {
        parameters.checkUniqueNames()
        self.parameters = parameters
        self.learningRate = learningRate
        self.betas = betas
        self.eps = eps
        self.weightDecay = weightDecay
        first = Array(repeating: [], count: parameters.count)
        second = first
        updates = Array(repeating: 0, count: parameters.count)
    }

    /// One AdamW update of every parameter that has a gradient (formulas above), lr = lr_eff · `scheduleFactor`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func step(scheduleFactor: Double = 1) {
        stepCount += 1
        let (beta1, beta2) = betas
        for (i, p) in parameters.enumerated() {
            guard let g = p.tensor.grad else { continue }
            let lr = (p.tags.learningRate ?? learningRate) * scheduleFactor
            if first[i].isEmpty {
                first[i] = [T](repeating: 0, count: g.count)
                second[i] = first[i]
            }
            updates[i] += 1
            let correction1 = 1 - Double.pow(beta1, updates[i])
            let correction2 = 1 - Double.pow(beta2, updates[i])
            let decay = T(p.tags.weightDecay ? 1 - lr * weightDecay : 1)
            let stepSize = T(lr / correction1), invRoot2 = T(1 / correction2.squareRoot())
            let b1 = T(beta1), c1 = T(1 - beta1), b2 = T(beta2), c2 = T(1 - beta2), e = T(eps)
            p.tensor.data.withUnsafeMutableBufferPointer { x in
                first[i].withUnsafeMutableBufferPointer { m in
                    second[i].withUnsafeMutableBufferPointer { v in
                        g.withUnsafeBufferPointer { g in
                            for j in 0..<x.count {
                                m[j] = b1 * m[j] + c1 * g[j]
                                v[j] = b2 * v[j] + c2 * g[j] * g[j]
                                x[j] = x[j] * decay - stepSize * m[j] / (v[j].squareRoot() * invRoot2 + e)
                            }
                        }
                    }
                }
            }
        }
    }

    /// Step counts and the moments m, v by parameter name (see `OptimizerState`).
    public var state: OptimizerState {
        OptimizerState(
            kind: "AdamW", step: stepCount, parameterSteps: namedCounts(parameters, updates),
            firstMoments: namedBuffers(parameters, first), secondMoments: namedBuffers(parameters, second))
    }

    /// Restores `state` (from `state` of an AdamW over parameters with the same names and sizes).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func load(state: OptimizerState) {
        precondition(state.kind == "AdamW", "AdamW.load: state of a \(state.kind) optimiser")
        stepCount = state.step
        updates = countsByIndex(parameters, state.parameterSteps)
        first = buffersByIndex(parameters, state.firstMoments)
        second = buffersByIndex(parameters, state.secondMoments)
    }
}

/// Stochastic gradient descent with momentum (Polyak heavy ball; Nesterov as in Sutskever et al. 2013), PyTorch's
/// `torch.optim.SGD` with dampening 0. Weight decay here is L2 (coupled: added to the gradient), as in PyTorch.
///
/// For each parameter p with gradient g, with lr = lr_eff (see `Optimizer`) and momentum μ:
///
///     d ← g + λ p                               (λ = 0 if tags.weightDecay == false)
///     b ← μ b + d                               (b starts at 0, so b = d on the first update)
///     p ← p − lr · (nesterov ? d + μ b : b)     (μ = 0: p ← p − lr · d, no buffer)
public final class SGD<T: TensorScalar>: Optimizer {
    /// The parameters it updates, in order.
    public let parameters: [NamedParameter<T>]
    /// The base learning rate; a parameter's `tags.learningRate` overrides it.
    public var learningRate: Double
    /// μ, the momentum coefficient.
    public var momentum: Double
    /// λ, the L2 weight decay coefficient.
    public var weightDecay: Double
    /// Whether to use Nesterov momentum.
    public var nesterov: Bool
    /// The number of `step` calls so far.
    public private(set) var stepCount = 0
    private var buffers: [[T]]  // b per parameter; empty until its first gradient (or always, if μ = 0)

    /// An SGD optimiser over `parameters` (names must be unique).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public init(
        parameters: [NamedParameter<T>], learningRate: Double, momentum: Double = 0.9, weightDecay: Double = 0,
        nesterov: Bool = false
    ) {
        parameters.checkUniqueNames()
        self.parameters = parameters
        self.learningRate = learningRate
        self.momentum = momentum
        self.weightDecay = weightDecay
        self.nesterov = nesterov
        buffers = Array(repeating: [], count: parameters.count)
    }

    /// One SGD update of every parameter that has a gradient (formulas above), lr = lr_eff · `scheduleFactor`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func step(scheduleFactor: Double = 1) {
        stepCount += 1
        let mu = T(momentum), useMomentum = momentum != 0, nesterov = nesterov
        for (i, p) in parameters.enumerated() {
            guard let g = p.tensor.grad else { continue }
            let lr = T((p.tags.learningRate ?? learningRate) * scheduleFactor)
            let wd = T(p.tags.weightDecay ? weightDecay : 0)
            if useMomentum && buffers[i].isEmpty { buffers[i] = [T](repeating: 0, count: g.count) }
            p.tensor.data.withUnsafeMutableBufferPointer { x in
                buffers[i].withUnsafeMutableBufferPointer { b in
                    g.withUnsafeBufferPointer { g in
                        for j in 0..<x.count {
                            let d = g[j] + wd * x[j]
                            guard useMomentum else { x[j] -= lr * d; continue }
                            b[j] = mu * b[j] + d
                            x[j] -= lr * (nesterov ? d + mu * b[j] : b[j])
                        }
                    }
                }
            }
        }
    }

    /// The step count and the momentum buffers by parameter name (see `OptimizerState`).
    public var state: OptimizerState {
        OptimizerState(kind: "SGD", step: stepCount, firstMoments: namedBuffers(parameters, buffers))
    }

    /// Restores `state` (from `state` of an SGD over parameters with the same names and sizes).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func load(state: OptimizerState) {
        precondition(state.kind == "SGD", "SGD.load: state of a \(state.kind) optimiser")
        stepCount = state.step
        buffers = buffersByIndex(parameters, state.firstMoments)
    }
}

/// Global-norm gradient clipping, PyTorch's `clip_grad_norm_`: with N = √(Σ over all gradients of g²), every
/// gradient is scaled by c = maxNorm / (N + 1e-6) when c < 1 (so the clipped norm is maxNorm · N / (N + 1e-6)).
/// Parameters without a gradient are ignored. Returns N before clipping (non-finite if a gradient is: check it).
@discardableResult
@_specialize(where T == Float)
@_specialize(where T == Double)
public func clipGradientNorm<T: TensorScalar>(_ params: [NamedParameter<T>], maxNorm: T) -> T {
    var sumOfSquares = 0.0
    for p in params {
        p.tensor.grad?.withUnsafeBufferPointer { g in
            for j in 0..<g.count { sumOfSquares += Double(g[j]) * Double(g[j]) }
        }
    }
    let norm = sumOfSquares.squareRoot()
    let scale = Double(maxNorm) / (norm + 1e-6)
    if scale < 1 {
        let c = T(scale)
        for p in params where p.tensor.grad != nil {
            p.tensor.grad!.withUnsafeMutableBufferPointer { g in
                for j in 0..<g.count { g[j] *= c }
            }
        }
    }
    return T(norm)
}

// MARK: - State conversion (moment buffers by index <-> by name)

private func namedBuffers<T>(_ params: [NamedParameter<T>], _ buffers: [[T]]) -> [String: [Double]] {
    var out: [String: [Double]] = [:]
    for (p, b) in zip(params, buffers) where !b.isEmpty { out[p.name] = b.map(Double.init) }
    return out
}

private func namedCounts<T>(_ params: [NamedParameter<T>], _ counts: [Int]) -> [String: Int] {
    var out: [String: Int] = [:]
    for (p, n) in zip(params, counts) where n > 0 { out[p.name] = n }
    return out
}

private func checkNames<T, V>(_ params: [NamedParameter<T>], _ named: [String: V]) {
    for name in named.keys {
        precondition(params.parameter(named: name) != nil, "optimizer load: state for unknown parameter '\(name)'")
    }
}

private func buffersByIndex<T>(_ params: [NamedParameter<T>], _ named: [String: [Double]]) -> [[T]] {
    checkNames(params, named)
    return params.map { p in
        guard let b = named[p.name] else { return [] }
        precondition(b.count == p.tensor.count, "optimizer load: '\(p.name)' has \(p.tensor.count) scalars, state \(b.count)")
        return b.map { T($0) }
    }
}

private func countsByIndex<T>(_ params: [NamedParameter<T>], _ named: [String: Int]) -> [Int] {
    checkNames(params, named)
    return params.map { named[$0.name] ?? 0 }
}
