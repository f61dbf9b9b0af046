//: # The S4 kernel three ways
//:
//: S4 (Gu, Goel & Ré, *Efficiently Modeling Long Sequences with Structured State Spaces*, ICLR 2022) is a linear
//: state-space model x'(t) = A x(t) + B u(t), y(t) = C x(t) per channel, with the HiPPO-LegS matrix A written as
//: *normal plus low rank*, A = V (Λ − P P\*) V\*. The bilinear discretisation with step Δ gives a linear recurrence
//:
//:     x_k = Ā x_{k−1} + B̄ u_k,   y_k = Re(C x_k),   Ā = (I − Δ/2 A)⁻¹ (I + Δ/2 A),   B̄ = (I − Δ/2 A)⁻¹ Δ B,
//:
//: so the whole output is one causal convolution y = K ∗ u with the kernel K_l = Re(C Ā^l B̄). This notebook computes
//: that kernel by **dense matrix powers** (obviously right, O(N² L)) and by S4's **Cauchy kernel with the Woodbury
//: correction** evaluated at the roots of unity plus one inverse FFT (O(N L + L log L), the library's
//: `s4DPLRKernel`); then it computes the output by **FFT convolution** (`fftConvolution`) and by the
//: **recurrence** (S4's step mode), and checks that all of them agree.
import Experiments
import Foundation
import Layers
import Notebook
import Numerics
import Tensors

/// max |a − b| / max |b|: the relative error used throughout.
func relativeError(_ a: [Double], _ b: [Double]) -> Double { GradientCheck.relativeError(a, b) }

//: ## The system
//:
//: HiPPO-LegS with N = 64 states. `NPLRDecomposition` diagonalises its normal part: the N/2 eigenvalues Λ kept
//: (the other half are their conjugates) all have real part −1/2, and P, B are rotated into the eigenbasis. C is
//: random (complex normal, as S4 initialises it) and Δ = 0.01.
cell()
let stateSize = 64, modes = stateSize / 2
let nplr = NPLRDecomposition.legS(stateSize: stateSize)
var rng = RandomGenerator(seed: 0)
let c = (0..<modes).map { _ in Complex64(0.5.squareRoot() * rng.normal(), 0.5.squareRoot() * rng.normal()) }
let dt = 0.01
let system = DenseDPLRSystem(lambda: nplr.lambda, p: nplr.p, b: nplr.b, dt: dt).bilinear()  // Ā, B̄ (N x N, full basis)
print("N = \(stateSize): \(modes) conjugate pairs of modes")
print("Re Λ: \(Set(nplr.lambda.map(\.real)))")
print(String(format: "Im Λ from %.2f to %.2f", nplr.lambda.map(\.imaginary).min()!, nplr.lambda.map(\.imaginary).max()!))
let powerNorms = [1, 10, 100, 1000].map { system.aBar.power($0).maxAbs }
print("max |(Ā^l)_ij| for l = 1, 10, 100, 1000:", powerNorms.map { String(format: "%.3g", $0) }.joined(separator: ", "))

//: Ā is stable: its powers decay (the slowest mode of the bilinear HiPPO system shrinks like 0.99^l at Δ = 0.01),
//: so by l = 1000 the largest entry of Ā^l is below 1e-3. Keep this in mind for C̃ below.
//:
//: ## Way 1: dense matrix powers
//:
//: K_l = Re(C Ā^l B̄), one matrix-vector product per tap: O(N² L).
cell()
func densePowersKernel(length: Int) -> [Double] { system.kernel(c: withConjugates(c), length: length) }
let k16 = densePowersKernel(length: 16)
print("K[0..<8] =", k16.prefix(8).map { String(format: "%+.5f", $0) }.joined(separator: " "))

//: ## Way 2: the Cauchy kernel, Woodbury, inverse FFT
//:
//: Instead of the taps, S4 evaluates the kernel's *truncated generating function* Σ_{l<L} K_l ω^l at the L roots of
//: unity ω_k = exp(−2πik/L). Because Ā is a resolvent of a diagonal-plus-rank-1 matrix, that sum collapses to
//:
//:     K̂(ω) = 2/(1+ω) [ k₀₀ − k₀₁ k₁₀ / (1 + k₁₁) ],   k_ij(ω) = Σ_n a_n b_n / (g(ω) − Λ_n),   g(ω) = (2/Δ)(1−ω)/(1+ω),
//:
//: with (a, b) ∈ {(C̃, B), (C̃, P), (P\*, B), (P\*, P)}: four **Cauchy** sums (O(N) per node) combined by the
//: **Woodbury** identity for the rank-1 term. One inverse real FFT turns the L node values back into the L taps.
//: The C it uses is C̃ = C (I − Ā^L) (the `(1 − ω^L)` of the truncated sum is folded into C, which is why S4 learns
//: C̃ rather than C). Here C̃ is computed from our C for each length.
cell()
func cauchyKernel<T: TensorScalar>(length: Int, as _: T.Type, correctC: Bool = true) -> [Double] {
    let cTilde = correctC ? system.cTilde(fromC: c, length: length) : c
    func row(_ x: [Double]) -> Tensor<T> { Tensor(shape: [1, modes], data: x.map { T($0) }) }
    let k = Tape.withoutGradients {
        s4DPLRKernel(
            logDt: Tensor<T>(shape: [1], data: [T(Foundation.log(dt))]),
            lambdaRe: row(nplr.lambda.map(\.real)), lambdaIm: row(nplr.lambda.map(\.imaginary)),
            pRe: row(nplr.p.map(\.real)), pIm: row(nplr.p.map(\.imaginary)),
            bRe: row(nplr.b.map(\.real)), bIm: row(nplr.b.map(\.imaginary)),
            cRe: row(cTilde.map(\.real)), cIm: row(cTilde.map(\.imaginary)), length: length)  // [1, L]
    }
    return k.data.map { Double($0) }
}
for length in [16, 64, 1024] {
    let dense = densePowersKernel(length: length)
    print(String(format: "L = %5d   Cauchy vs dense: %.1e   without the C~ correction: %.1e", length,
                 relativeError(cauchyKernel(length: length, as: Double.self), dense),
                 relativeError(cauchyKernel(length: length, as: Double.self, correctC: false), dense)))
}

//: With C̃ the two ways agree to round-off. Without the correction the Cauchy form computes the kernel of a
//: different C: the error is large while Ā^L is not yet negligible (short L) and fades as Ā^L decays (at Δ = 0.01 the
//: slowest mode decays like 0.99^l).
//:
//: ## The output: FFT convolution against the recurrence
//:
//: Given K, y = K ∗ u is one causal convolution: `fftConvolution` zero-pads to 2L and multiplies spectra (FFTW),
//: O(L log L). The recurrence is S4's step mode: N real states (the real coordinates of the conjugate-symmetric
//: complex state), O(N² L).
cell()
let real = system.realForm(c: withConjugates(c))  // Ā, B̄, C over real coordinates (N x N, N, N)
func recurrence(_ u: [Double]) -> [Double] {
    let n = stateSize
    var x = [Double](repeating: 0, count: n), next = x, y = [Double](repeating: 0, count: u.count)
    for (t, ut) in u.enumerated() {
        for i in 0..<n {
            var s = real.b[i] * ut
            for j in 0..<n { s += real.a[i * n + j] * x[j] }
            next[i] = s
        }
        swap(&x, &next)
        y[t] = zip(real.c, x).reduce(0) { $0 + $1.0 * $1.1 }
    }
    return y
}
func convolution(_ u: [Double], kernel: [Double]) -> [Double] {
    Tape.withoutGradients {
        fftConvolution(Tensor(shape: [1, u.count, 1], data: u), kernel: Tensor(shape: [1, kernel.count], data: kernel)).data
    }
}
let u64 = (0..<64).map { _ in rng.normal() }
print(String(format: "L = 64: FFT convolution vs recurrence: %.1e",
             relativeError(convolution(u64, kernel: cauchyKernel(length: 64, as: Double.self)), recurrence(u64))))

//: ## Agreement and cost against the length
//:
//: For each L: the relative error of the Cauchy kernel (Float64 and Float32, the training precision) against dense
//: powers, of the FFT convolution against the recurrence, and the median time of each (ms, one channel, one thread
//: of work; the C̃ set-up is excluded since S4 keeps C̃ as its parameter).
cell()
var timings: [String: [(x: Double, y: Double)]] = [:]
print("     L   K: Cauchy64  Cauchy32   y: FFT-vs-rec   ms: dense  Cauchy64  Cauchy32   FFT conv  recurrence")
for length in [256, 1024, 4096, 16384] {
    let dense = densePowersKernel(length: length)
    let k64 = cauchyKernel(length: length, as: Double.self), k32 = cauchyKernel(length: length, as: Float.self)
    let u = (0..<length).map { _ in rng.normal() }
    let yConv = convolution(u, kernel: k64), yRec = recurrence(u)
    let repeats = length >= 4096 ? 3 : 7
    let tDense = medianMilliseconds(repeats: 1) { _ = densePowersKernel(length: length) }
    let tCauchy64 = medianMilliseconds(repeats: repeats) { _ = cauchyKernel(length: length, as: Double.self, correctC: false) }
    let tCauchy32 = medianMilliseconds(repeats: repeats) { _ = cauchyKernel(length: length, as: Float.self, correctC: false) }
    let tConv = medianMilliseconds(repeats: repeats) { _ = convolution(u, kernel: k64) }
    let tRec = medianMilliseconds(repeats: 1) { _ = recurrence(u) }
    print(String(format: "%6d   %9.1e %9.1e   %14.1e   %9.2f %9.3f %9.3f %10.3f %11.2f", length,
                 relativeError(k64, dense), relativeError(k32, dense), relativeError(yConv, yRec),
                 tDense, tCauchy64, tCauchy32, tConv, tRec))
    for (name, t) in [("K: dense powers", tDense), ("K: Cauchy + iFFT", tCauchy64),
                      ("y: FFT conv", tConv), ("y: recurrence", tRec)] {
        timings[name, default: []].append((Double(length), t))
    }
}
saveFigure(LineChart(title: "S4, one channel, N = 64", xLabel: "sequence length L", yLabel: "ms", logX: true, logY: true,
                     series: timings.keys.sorted().map { LineChart.Series(name: $0, points: timings[$0]!) }),
           name: "time-vs-length", caption: "Time of each way against L (log-log)")

//: Dense powers and the recurrence grow like N² L; the Cauchy kernel like N L, and the FFT convolution like L log L
//: (small constants: FFTW). The Float32 kernel agrees with the Float64 dense one to about single precision relative
//: to the kernel's largest tap.
//:
//: ## What the kernel looks like
//:
//: Δ sets the time scale HiPPO remembers: the kernel of the same A, B, C for three step sizes.
cell()
var kernels: [LineChart.Series] = []
for step in [0.003, 0.01, 0.03] {
    let s = DenseDPLRSystem(lambda: nplr.lambda, p: nplr.p, b: nplr.b, dt: step).bilinear()
    let k = s.kernel(c: withConjugates(c), length: 4096)
    kernels.append(LineChart.Series(name: "Δ = \(step)", points: k.prefix(512).enumerated().map { (Double($0.offset), $0.element) }))
    // The memory: the number of taps that hold 90% of sum |K_l|.
    let total = k.reduce(0) { $0 + abs($1) }
    var running = 0.0
    let memory = k.firstIndex { running += abs($0); return running >= 0.9 * total }!
    print(String(format: "Δ = %.3f: max |K_l| = %.3f, 90%% of sum |K_l| within the first %4d taps (1/Δ = %.0f)",
                 step, k.map(abs).max()!, memory + 1, 1 / step))
}
saveFigure(LineChart(title: "S4 kernel K_l (HiPPO-LegS, N = 64)", xLabel: "l", yLabel: "K_l", series: kernels),
           name: "kernel", caption: "The kernel for three step sizes")

//: A smaller Δ stretches the same kernel over more taps: the memory of an S4 channel is proportional to 1/Δ steps
//: (here 90% of the kernel's mass lies within about 2.5/Δ taps), which is why S4 samples log Δ per channel over a
//: range of time scales.
