/// An n-dimensional array of `Float` or `Double`: row-major, contiguous, and a value on the autodiff tape.
///
/// `data` holds `shape.reduce(1, *)` scalars, the last axis fastest. A tensor with `requiresGrad` set and no
/// producing op is a leaf (a parameter or an input under test): after `backward()` its gradient is in `grad`.
/// Every other tensor that depends on a leaf remembers the op that produced it (`node`) until backward consumes it.
public final class Tensor<T: TensorScalar> {
    /// The extent of each axis, outermost first.
    public let shape: [Int]
    /// The scalars, row-major. Optimisers update parameters in place through this.
    public var data: [T]
    /// The accumulated gradient of the last backward pass (leaves only; intermediate gradients are freed).
    public internal(set) var grad: [T]?
    /// Whether gradients flow to this tensor.
    public internal(set) var requiresGrad: Bool
    /// The tape node of the op that produced this tensor, if it was recorded.
    var node: TapeNode<T>?

    /// A tensor from its shape and row-major scalars. Fails if the counts disagree.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public init(shape: [Int], data: [T], requiresGrad: Bool = false) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor: negative extent in shape \(shape)")
        precondition(
            shape.reduce(1, *) == data.count,
            "Tensor: shape \(shape) needs \(shape.reduce(1, *)) scalars, got \(data.count)")
        self.shape = shape
        self.data = data
        self.requiresGrad = requiresGrad
    }

    /// The number of scalars.
    @inlinable public var count: Int { data.count }
    /// The number of axes.
    @inlinable public var rank: Int { shape.count }
    /// Whether this tensor is a leaf that collects gradients (no producing op on the tape).
    public var isLeaf: Bool { node == nil }

    /// The single scalar of a one-element tensor.
    public var item: T {
        precondition(count == 1, "item: tensor of shape \(shape) has \(count) scalars, not 1")
        return data[0]
    }

    /// Marks this tensor as a leaf that collects gradients and returns it.
    @discardableResult
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func requiringGrad(_ flag: Bool = true) -> Tensor {
        precondition(node == nil, "requiringGrad: only leaves can be marked (this tensor was produced by an op)")
        requiresGrad = flag
        return self
    }

    /// Drops the accumulated gradient.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func zeroGrad() { grad = nil }

    /// The same scalars as a new leaf, cut off from the tape.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func detached() -> Tensor { Tensor(shape: shape, data: data) }

    /// Adds `g` into `grad` (gradients accumulate over every use of a tensor).
    func accumulateGrad(_ g: [T]) {
        precondition(g.count == count, "accumulateGrad: gradient of \(g.count) scalars for a tensor of shape \(shape)")
        if grad == nil {
            grad = g
            return
        }
        grad!.withUnsafeMutableBufferPointer { dst in
            g.withUnsafeBufferPointer { src in
                for i in 0..<dst.count { dst[i] += src[i] }
            }
        }
    }

    /// Replaces the gradient (used by optimisers' clipping and by tests).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func setGrad(_ g: [T]?) {
        if let g { precondition(g.count == count, "setGrad: \(g.count) scalars for shape \(shape)") }
        grad = g
    }
}

// MARK: - Factories

extension Tensor {
    /// A tensor filled with `value`.
    public convenience init(repeating value: T, shape: [Int], requiresGrad: Bool = false) {
        self.init(shape: shape, data: [T](repeating: value, count: shape.reduce(1, *)), requiresGrad: requiresGrad)
    }

    /// A one-element tensor of shape [].
    public convenience init(scalar: T) { self.init(shape: [], data: [scalar]) }

    /// All zeros.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func zeros(_ shape: [Int], requiresGrad: Bool = false) -> Tensor {
        Tensor(repeating: 0, shape: shape, requiresGrad: requiresGrad)
    }

    /// All ones.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func ones(_ shape: [Int], requiresGrad: Bool = false) -> Tensor {
        Tensor(repeating: 1, shape: shape, requiresGrad: requiresGrad)
    }

    /// Standard normal samples times `std` plus `mean`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func randn(
        _ shape: [Int], mean: T = 0, std: T = 1, using rng: inout RandomGenerator, requiresGrad: Bool = false
    ) -> Tensor {
        let n = shape.reduce(1, *)
        var d = [T](repeating: 0, count: n)
        for i in 0..<n { d[i] = mean + std * T(rng.normal()) }
        return Tensor(shape: shape, data: d, requiresGrad: requiresGrad)
    }

    /// Uniform samples in [low, high).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func uniform(
        _ shape: [Int], low: T, high: T, using rng: inout RandomGenerator, requiresGrad: Bool = false
    ) -> Tensor {
        let n = shape.reduce(1, *)
        var d = [T](repeating: 0, count: n)
        for i in 0..<n { d[i] = low + (high - low) * T(rng.uniform()) }
        return Tensor(shape: shape, data: d, requiresGrad: requiresGrad)
    }

    /// The same values in another precision (a new leaf).
    public func converted<U: TensorScalar>(to _: U.Type = U.self) -> Tensor<U> {
        Tensor<U>(shape: shape, data: data.map { U($0) })
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let head = data.prefix(8).map { "\($0)" }.joined(separator: ", ")
        return "Tensor<\(T.self)>\(shape)[\(head)\(count > 8 ? ", ..." : "")]"
    }
}

/// The number of scalars of a shape.
@inlinable public func elementCount(_ shape: [Int]) -> Int { shape.reduce(1, *) }

/// Row-major strides of a shape.
public func rowMajorStrides(_ shape: [Int]) -> [Int] {
    var strides = [Int](repeating: 1, count: shape.count)
    var s = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) {
        strides[i] = s
        s *= shape[i]
    }
    return strides
}
