import Foundation
import Tensors

// Slow, obviously right forms of the S4 family's fused kernels, composed from basic tape ops (so they have
// gradients too): the fast forms are tested against these, outputs and every input gradient. Complex numbers are
// (re, im) pairs of real tensors; cos and sin are `map` ops. Sizes are small (the tests use N <= 16, L <= 40).

/// A complex tensor as a pair of real tensors of the same shape, with broadcasting arithmetic on the tape.
struct ComplexTensor<T: TensorScalar> {
    var re: Tensor<T>
    var im: Tensor<T>

    static func + (a: Self, b: Self) -> Self { Self(re: a.re + b.re, im: a.im + b.im) }
    static func - (a: Self, b: Self) -> Self { Self(re: a.re - b.re, im: a.im - b.im) }
    static func * (a: Self, b: Self) -> Self { Self(re: a.re * b.re - a.im * b.im, im: a.re * b.im + a.im * b.re) }
    static func / (a: Self, b: Self) -> Self {
        let norm = b.re * b.re + b.im * b.im
        return Self(re: (a.re * b.re + a.im * b.im) / norm, im: (a.im * b.re - a.re * b.im) / norm)
    }
    /// Scaling by a real tensor.
    static func * (a: Self, s: Tensor<T>) -> Self { Self(re: a.re * s, im: a.im * s) }
    var conjugate: Self { Self(re: re, im: im * T(-1)) }
    func sum(axis: Int) -> Self { Self(re: re.sum(axis: axis), im: im.sum(axis: axis)) }
    func reshaped(_ shape: [Int]) -> Self { Self(re: re.reshaped(shape), im: im.reshaped(shape)) }
    /// A constant from Float64 values.
    init(constant re: [Double], _ im: [Double], shape: [Int]) {
        self.re = Tensor(shape: shape, data: re.map { T($0) })
        self.im = Tensor(shape: shape, data: im.map { T($0) })
    }
    init(re: Tensor<T>, im: Tensor<T>) {
        self.re = re
        self.im = im
    }
    /// exp(re) (cos(im) + i sin(im)).
    var exp: Self {
        let m = re.exp()
        return Self(re: m * im.map("cos", { T.cos($0) }, derivative: { x, _ in -T.sin(x) }),
                    im: m * im.map("sin", { T.sin($0) }, derivative: { x, _ in T.cos(x) }))
    }
}

/// S4D's kernel by the explicit sum K_l = 2 Re sum_n coef_n z_n^l with tape ops: ZOH powers as exp(dt A l),
/// bilinear powers by repeated multiplication. Same inputs and result as `s4dKernel`.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func referenceS4DKernel<T: TensorScalar>(
    logDt: Tensor<T>, aRe: Tensor<T>, aIm: Tensor<T>, cRe: Tensor<T>, cIm: Tensor<T>, length: Int,
    discretization: Discretization = .zoh
) -> Tensor<T> {
    let (h, modes) = (aRe.shape[0], aRe.shape[1])
    let dt = logDt.exp().reshaped([h, 1])
    let a = ComplexTensor(re: aRe, im: aIm), c = ComplexTensor(re: cRe, im: cIm)
    let w = a * dt  // [H, N/2]
    let one = ComplexTensor<T>(constant: [1], [0], shape: [1, 1]), half = ComplexTensor<T>(constant: [0.5], [0], shape: [1, 1])
    let coef: ComplexTensor<T>, powers: ComplexTensor<T>  // powers [H, N/2, L]
    switch discretization {
    case .zoh:
        coef = c * (w.exp - one) / a
        let l = Tensor<T>(shape: [1, 1, length], data: (0..<length).map { T($0) })
        powers = (w.reshaped([h, modes, 1]) * l).exp
    case .bilinear:
        let q = one - w * half
        coef = c * dt / q
        let z = ((one + w * half) / q).reshaped([h, modes, 1])
        var x = ComplexTensor<T>(constant: [Double](repeating: 1, count: h * modes), [Double](repeating: 0, count: h * modes),
                                 shape: [h, modes, 1])  // z^0
        var columns: [ComplexTensor<T>] = []
        for _ in 0..<length {
            columns.append(x)
            x = x * z
        }
        powers = ComplexTensor(re: Tensor.concatenate(columns.map(\.re), axis: 2), im: Tensor.concatenate(columns.map(\.im), axis: 2))
    }
    let terms = coef.reshaped([h, modes, 1]) * powers
    return terms.re.sum(axis: 1) * T(2)
}

/// S4's kernel with tape ops: the four Cauchy sums over both conjugate halves at every node (pole-free form),
/// the Woodbury combination, and the inverse real DFT as a product with cos/sin matrices.
/// Same inputs and result as `s4DPLRKernel`.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func referenceS4DPLRKernel<T: TensorScalar>(
    logDt: Tensor<T>, lambdaRe: Tensor<T>, lambdaIm: Tensor<T>, pRe: Tensor<T>, pIm: Tensor<T>,
    bRe: Tensor<T>, bIm: Tensor<T>, cRe: Tensor<T>, cIm: Tensor<T>, length: Int
) -> Tensor<T> {
    let (h, modes) = (lambdaRe.shape[0], lambdaRe.shape[1])
    let bins = length / 2 + 1
    let shape3 = [h, 1, modes]
    func complex(_ re: Tensor<T>, _ im: Tensor<T>) -> ComplexTensor<T> { ComplexTensor(re: re, im: im).reshaped(shape3) }
    let dt = logDt.exp().reshaped([h, 1, 1])
    let mu = complex(lambdaRe, lambdaIm) * dt
    let (p, b, c) = (complex(pRe, pIm), complex(bRe, bIm), complex(cRe, cIm))
    // Nodes alpha = 1 - w, beta = (1 + w)/2 at w_k = exp(-2 pi i k / L), as [1, bins, 1] constants.
    let theta = (0..<bins).map { 2 * Double.pi * Double($0) / Double(length) }
    let alpha = ComplexTensor<T>(constant: theta.map { 1 - Foundation.cos($0) }, theta.map { Foundation.sin($0) }, shape: [1, bins, 1])
    let beta = ComplexTensor<T>(constant: theta.map { (1 + Foundation.cos($0)) / 2 }, theta.map { -Foundation.sin($0) / 2 }, shape: [1, bins, 1])
    let one = ComplexTensor<T>(constant: [1], [0], shape: [1, 1, 1])
    let g = one / (alpha - beta * mu), gConj = one / (alpha - beta * mu.conjugate)  // [H, bins, N/2]
    func cauchy(_ x: ComplexTensor<T>) -> ComplexTensor<T> {  // sum over both halves of dt x_n / (alpha - beta mu_n)
        let coefficient = x * dt
        return (coefficient * g + coefficient.conjugate * gConj).sum(axis: 2)  // [H, bins]
    }
    let r00 = cauchy(c * b), r01 = cauchy(c * p), r10 = cauchy(p.conjugate * b), r11 = cauchy(p.conjugate * p)
    let beta2 = beta.reshaped([1, bins])
    let khat = r00 - beta2 * r01 * r10 / (ComplexTensor<T>(constant: [1], [0], shape: [1, 1]) + beta2 * r11)
    // K_l = (1/L) sum_k c_k (Re Khat_k cos(2 pi k l / L) - Im Khat_k sin(2 pi k l / L)), c_k = 1 at k = 0, L/2, else 2.
    var cosine = [T](repeating: 0, count: bins * length), sine = cosine
    for k in 0..<bins {
        let weight = (k == 0 || 2 * k == length ? 1.0 : 2.0) / Double(length)
        for l in 0..<length {
            let angle = 2 * Double.pi * Double(k * l % length) / Double(length)
            cosine[k * length + l] = T(weight * Foundation.cos(angle))
            sine[k * length + l] = T(weight * Foundation.sin(angle))
        }
    }
    return khat.re.matmul(Tensor(shape: [bins, length], data: cosine)) - khat.im.matmul(Tensor(shape: [bins, length], data: sine))
}

/// The two-sided convolution from basic tape ops (a Toeplitz product per channel):
/// y[b, t, h] = sum_{s <= t} K[h, t - s] u[b, s, h] + sum_{s > t} K1[h, s - t - 1] u[b, s, h] + D[h] u[b, t, h].
@_specialize(where T == Float)
@_specialize(where T == Double)
public func referenceBidirectionalConvolution<T: TensorScalar>(
    _ u: Tensor<T>, kernel k: Tensor<T>, anticausalKernel k1: Tensor<T>, skip d: Tensor<T>?
) -> Tensor<T> {
    let (length, channels) = (u.shape[1], u.shape[2])
    var index = [Int](repeating: 0, count: length * length)
    for t in 0..<length { for s in 0..<length { index[t * length + s] = s <= t ? t - s : length + (s - t - 1) } }
    let both = Tensor.concatenate([k, k1], axis: 1)  // [H, 2L]
    let rows = (0..<channels).map { h in
        both.slice(axis: 0, h..<(h + 1)).reshaped([2 * length, 1])
            .embedding(index, indexShape: [length, length]).reshaped([1, length, length])
    }
    let toeplitz = Tensor.concatenate(rows, axis: 0)   // [H, L, L]
    var y = toeplitz.matmul(u.permuted([2, 1, 0])).permuted([2, 1, 0])  // [B, L, H]
    if let d { y = y + u * d }
    return y
}
