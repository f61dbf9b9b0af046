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
    public func sigmoid() -> Tensor { map("sigmoid", { stableSigmoid($0) }, derivative: { _, y in y * (1 - y) }) }
    /// log sigmoid(x) = -softplus(-x), computed without overflow.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func logSigmoid() -> Tensor {
        map("logsigmoid", { -stableSoftplus(-$0) }, derivative: { x, _ in stableSigmoid(-x) })
    }
    /// softplus(x) = log(1 + e^x), computed without overflow.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func softplus() -> Tensor {
        map("softplus", { stableSoftplus($0) }, derivative: { x, _ in stableSigmoid(x) })
    }
    /// SiLU (swish): x sigmoid(x).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func silu() -> Tensor {
        map("silu", { $0 * stableSigmoid($0) }, derivative: { x, _ in
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

/// 1 / (1 + e^-x) without overflow for large |x|.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(__always) public func stableSigmoid<T: TensorScalar>(_ x: T) -> T {
    if x >= 0 { return 1 / (1 + T.exp(-x)) }
    let e = T.exp(x)
    return e / (1 + e)
}

/// log(1 + e^x) without overflow for large |x|.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(__always) public func stableSoftplus<T: TensorScalar>(_ x: T) -> T {
    x > 0 ? x + T.log(onePlus: T.exp(-x)) : T.log(onePlus: T.exp(x))
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
