import RealModule

// Elementwise ops. One mechanism serves every unary function: `map(name, f, df)` computes y = f(x) and records
// dx = dy * df(x, y); one serves every binary one: `zipBroadcast`. Each op below is one line of math.

extension Tensor {
    /// y = f(x) elementwise, with derivative df(x, y) for the backward pass.
    @inline(__always)
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func map(_ name: String, _ f: (T) -> T, derivative df: @escaping (_ x: T, _ y: T) -> T) -> Tensor {
        var out = [T](repeating: 0, count: count)
        data.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { y in
                for i in 0..<x.count { y[i] = f(x[i]) }
            }
        }
        let result = Tensor(shape: shape, data: out)
        let xData = data
        Tape.record(name, inputs: [self], output: result) { dy in
            var dx = [T](repeating: 0, count: dy.count)
            xData.withUnsafeBufferPointer { x in
                out.withUnsafeBufferPointer { y in
                    dy.withUnsafeBufferPointer { g in
                        dx.withUnsafeMutableBufferPointer { d in
                            for i in 0..<d.count { d[i] = g[i] * df(x[i], y[i]) }
                        }
                    }
                }
            }
            return [dx]
        }
        return result
    }

    /// e^x.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func exp() -> Tensor { map("exp", { T.exp($0) }, derivative: { _, y in y }) }
    /// Natural logarithm (x > 0).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func log() -> Tensor { map("log", { T.log($0) }, derivative: { x, _ in 1 / x }) }
    /// Square root (x > 0).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func sqrt() -> Tensor { map("sqrt", { $0.squareRoot() }, derivative: { _, y in 1 / (2 * y) }) }
    /// 1 / sqrt(x) (x > 0).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func rsqrt() -> Tensor { map("rsqrt", { 1 / $0.squareRoot() }, derivative: { x, y in -y / (2 * x) }) }
    /// x^2.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func square() -> Tensor { map("square", { $0 * $0 }, derivative: { x, _ in 2 * x }) }
    /// x^p for a constant exponent p (x > 0 unless p is an integer).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func pow(_ p: T) -> Tensor {
        map("pow", { T.pow($0, p) }, derivative: { x, _ in p * T.pow(x, p - 1) })
    }
    /// Hyperbolic tangent.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func tanh() -> Tensor { map("tanh", { T.tanh($0) }, derivative: { _, y in 1 - y * y }) }
    /// Logistic sigmoid 1 / (1 + e^-x).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func sigmoid() -> Tensor {
        if T.self == Float.self { return floatActivation(.sigmoid) }
        return map("sigmoid", { stableSigmoid($0) }, derivative: { _, y in y * (1 - y) })
    }
    /// log sigmoid(x) = -softplus(-x), computed without overflow.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func logSigmoid() -> Tensor {
        if T.self == Float.self { return floatActivation(.logSigmoid) }
        return map("logsigmoid", { -stableSoftplus(-$0) }, derivative: { x, _ in stableSigmoid(-x) })
    }
    /// softplus(x) = log(1 + e^x), computed without overflow.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func softplus() -> Tensor {
        if T.self == Float.self { return floatActivation(.softplus) }
        return map("softplus", { stableSoftplus($0) }, derivative: { x, _ in stableSigmoid(x) })
    }
    /// SiLU (swish): x sigmoid(x).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func silu() -> Tensor {
        if T.self == Float.self { return floatActivation(.silu) }
        return map("silu", { $0 * stableSigmoid($0) }, derivative: { x, _ in
            let s = stableSigmoid(x)
            return s * (1 + x * (1 - s))
        })
    }
    /// GELU with the exact Gaussian CDF: x Phi(x) = x (1 + erf(x / sqrt 2)) / 2 (PyTorch's default).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func gelu() -> Tensor {
        map("gelu", { x in x * (1 + T.erf(x * T(0.7071067811865476))) / 2 }, derivative: { x, _ in
            let cdf = (1 + T.erf(x * T(0.7071067811865476))) / 2
            let pdf = T.exp(-x * x / 2) * T(0.3989422804014327)
            return cdf + x * pdf
        })
    }
    /// max(x, 0).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func relu() -> Tensor { map("relu", { Swift.max($0, 0) }, derivative: { x, _ in x > 0 ? 1 : 0 }) }
    /// |x|.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func abs() -> Tensor { map("abs", { Swift.abs($0) }, derivative: { x, _ in x >= 0 ? 1 : -1 }) }

    /// x + c.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func adding(_ c: T) -> Tensor { map("add_scalar", { $0 + c }, derivative: { _, _ in 1 }) }
    /// c x.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func scaled(by c: T) -> Tensor { map("mul_scalar", { $0 * c }, derivative: { _, _ in c }) }
    /// c / x.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func reciprocal(times c: T = 1) -> Tensor {
        map("rdiv_scalar", { c / $0 }, derivative: { x, _ in -c / (x * x) })
    }
}

extension Tensor {
    /// The Float form of sigmoid, SiLU, softplus and log-sigmoid: one tape node whose forward and backward are plain
    /// loops over the buffers (`FloatActivation`), which vectorise; `map`'s closures were called per element.
    func floatActivation(_ kind: FloatActivation) -> Tensor {
        precondition(T.self == Float.self)
        let n = count, xData = data
        let out = [T](unsafeUninitializedCapacity: n) { buffer, initialized in
            xData.withUnsafeBufferPointer { x in
                kind.forward(UnsafeRawPointer(x.baseAddress!).assumingMemoryBound(to: Float.self),
                             UnsafeMutableRawPointer(buffer.baseAddress!).assumingMemoryBound(to: Float.self), n)
            }
            initialized = n
        }
        let result = Tensor(shape: shape, data: out)
        Tape.record(kind.name, inputs: [self], output: result) { dy in
            let dx = [T](unsafeUninitializedCapacity: n) { buffer, initialized in
                xData.withUnsafeBufferPointer { x in out.withUnsafeBufferPointer { y in dy.withUnsafeBufferPointer { g in
                    kind.backward(UnsafeRawPointer(x.baseAddress!).assumingMemoryBound(to: Float.self),
                                  UnsafeRawPointer(y.baseAddress!).assumingMemoryBound(to: Float.self),
                                  UnsafeRawPointer(g.baseAddress!).assumingMemoryBound(to: Float.self),
                                  UnsafeMutableRawPointer(buffer.baseAddress!).assumingMemoryBound(to: Float.self), n)
                } } }
                initialized = n
            }
            return [dx]
        }
        return result
    }
}

/// The sigmoid family in Float, as loops over buffers (no closures, no libm calls: they vectorise). The same math
/// as the generic forms: sigmoid s = 1 / (1 + e^-x) (ds = s (1 - s)), SiLU x s (d = s (1 + x (1 - s))), softplus
/// log(1 + e^x) (d = s), log-sigmoid -softplus(-x) (d = sigmoid(-x)).
enum FloatActivation {
    case sigmoid, silu, softplus, logSigmoid

    var name: String {
        switch self {
        case .sigmoid: return "sigmoid"
        case .silu: return "silu"
        case .softplus: return "softplus"
        case .logSigmoid: return "logsigmoid"
        }
    }

    func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        switch self {
        case .sigmoid: for i in 0..<n { y[i] = stableSigmoid(x[i]) }
        case .silu: for i in 0..<n { y[i] = x[i] * stableSigmoid(x[i]) }
        case .softplus: for i in 0..<n { y[i] = stableSoftplus(x[i]) }
        case .logSigmoid: for i in 0..<n { y[i] = -stableSoftplus(-x[i]) }
        }
    }

    func backward(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ n: Int) {
        switch self {
        case .sigmoid: for i in 0..<n { dx[i] = dy[i] * (y[i] * (1 - y[i])) }
        case .silu:
            for i in 0..<n {
                let s = stableSigmoid(x[i])
                dx[i] = dy[i] * (s * (1 + x[i] * (1 - s)))
            }
        case .softplus: for i in 0..<n { dx[i] = dy[i] * stableSigmoid(x[i]) }
        case .logSigmoid: for i in 0..<n { dx[i] = dy[i] * stableSigmoid(-x[i]) }
        }
    }
}

/// 1 / (1 + e^-x) without overflow for large |x|. Float: from e^-|x| by `vectorExp` and a select (no libm call,
/// no branch: the loops of `map` vectorise); Double: libm.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(__always) public func stableSigmoid<T: TensorScalar>(_ x: T) -> T {
    if T.self == Float.self {
        let v = unsafeBitCast(x, to: Float.self)
        let e = expOfNegativeMagnitude(v), r = 1 / (1 + e)
        return unsafeBitCast(v >= 0 ? r : e * r, to: T.self)
    }
    if x >= 0 { return 1 / (1 + T.exp(-x)) }
    let e = T.exp(x)
    return e / (1 + e)
}

/// log(1 + e^x) without overflow for large |x|. Float: max(x, 0) + log1pUnit(e^-|x|) without libm calls; Double: libm.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(__always) public func stableSoftplus<T: TensorScalar>(_ x: T) -> T {
    if T.self == Float.self {
        let v = unsafeBitCast(x, to: Float.self)
        return unsafeBitCast(Swift.max(v, 0) + log1pUnit(expOfNegativeMagnitude(v)), to: T.self)
    }
    return x > 0 ? x + T.log(onePlus: T.exp(-x)) : T.log(onePlus: T.exp(x))
}

/// e^-|x| for Float by `vectorExp`, exactly 0 below -87.
@inline(__always) func expOfNegativeMagnitude(_ x: Float) -> Float {
    let v = -Swift.abs(x)
    return v < -87 ? 0 : vectorExp(v)
}

/// log(1 + e) for Float e in [0, 1]: 2 atanh(s) with s = e / (2 + e) in [0, 1/3], series to s^13 (relative error
/// about 1e-8; exact near e = 0, where the series starts at 2 s ~ e). No libm call, so loops over it vectorise.
@inline(__always) public func log1pUnit(_ e: Float) -> Float {
    let s = e / (2 + e)
    let s2 = s * s
    var p: Float = 1 / 13
    p = p * s2 + 1 / 11
    p = p * s2 + 1 / 9
    p = p * s2 + 1 / 7
    p = p * s2 + 1 / 5
    p = p * s2 + 1 / 3
    p = p * s2 + 1
    return 2 * s * p
}

// MARK: - Binary ops with broadcasting

extension Tensor {
    /// z = f(a, b) with NumPy broadcasting; `grads(a, b, z)` gives (dz/da, dz/db) per element.
    @inline(__always)
    func zipBroadcast(
        _ name: String, _ other: Tensor, _ f: (T, T) -> T, grads: @escaping (T, T, T) -> (T, T)
    ) -> Tensor {
        let outShape = broadcastShape(shape, other.shape, op: name)
        let aStrides = broadcastStrides(shape, to: outShape)
        let bStrides = broadcastStrides(other.shape, to: outShape)
        var out = [T](repeating: 0, count: elementCount(outShape))
        let inner = outShape.last ?? 1
        let sa = aStrides.last ?? 0, sb = bStrides.last ?? 0
        data.withUnsafeBufferPointer { a in
            other.data.withUnsafeBufferPointer { b in
                out.withUnsafeMutableBufferPointer { z in
                    if shape == other.shape {
                        for i in 0..<z.count { z[i] = f(a[i], b[i]) }
                    } else {
                        forEachRow(outShape, aStrides, bStrides) { o, ia, ib in
                            for j in 0..<inner { z[o + j] = f(a[ia + j * sa], b[ib + j * sb]) }
                        }
                    }
                }
            }
        }
        let result = Tensor(shape: outShape, data: out)
        let (aData, bData, aShape, bShape) = (data, other.data, shape, other.shape)
        Tape.record(name, inputs: [self, other], output: result) { dz in
            let aFull = broadcastData(aData, from: aShape, to: outShape)
            let bFull = broadcastData(bData, from: bShape, to: outShape)
            var da = [T](repeating: 0, count: dz.count)
            var db = [T](repeating: 0, count: dz.count)
            for i in 0..<dz.count {
                let (ga, gb) = grads(aFull[i], bFull[i], out[i])
                da[i] = dz[i] * ga
                db[i] = dz[i] * gb
            }
            return [sumToShape(da, from: outShape, to: aShape), sumToShape(db, from: outShape, to: bShape)]
        }
        return result
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func + (a: Tensor, b: Tensor) -> Tensor { a.zipBroadcast("add", b, +) { _, _, _ in (1, 1) } }
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func - (a: Tensor, b: Tensor) -> Tensor { a.zipBroadcast("sub", b, -) { _, _, _ in (1, -1) } }
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func * (a: Tensor, b: Tensor) -> Tensor { a.zipBroadcast("mul", b, *) { x, y, _ in (y, x) } }
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func / (a: Tensor, b: Tensor) -> Tensor {
        a.zipBroadcast("div", b, /) { _, y, z in (1 / y, -z / y) }
    }
    /// Elementwise maximum (gradient to the larger; ties go to the first operand).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func maximum(_ b: Tensor) -> Tensor {
        zipBroadcast("maximum", b, { Swift.max($0, $1) }) { x, y, _ in x >= y ? (1, 0) : (0, 1) }
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func + (a: Tensor, c: T) -> Tensor { a.adding(c) }
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func - (a: Tensor, c: T) -> Tensor { a.adding(-c) }
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func * (a: Tensor, c: T) -> Tensor { a.scaled(by: c) }
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func / (a: Tensor, c: T) -> Tensor { a.scaled(by: 1 / c) }
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func + (c: T, a: Tensor) -> Tensor { a.adding(c) }
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func - (c: T, a: Tensor) -> Tensor { a.scaled(by: -1).adding(c) }
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func * (c: T, a: Tensor) -> Tensor { a.scaled(by: c) }
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func / (c: T, a: Tensor) -> Tensor { a.reciprocal(times: c) }
    public static prefix func - (a: Tensor) -> Tensor { a.scaled(by: -1) }
}
