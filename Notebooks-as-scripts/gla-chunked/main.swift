//: # GLA: the recurrent form, the chunked form, and why secondary chunking is stable
//:
//: Gated linear attention (Yang, Wang, Shen, Panda & Kim, *Gated Linear Attention Transformers with
//: Hardware-Efficient Training*, ICML 2024) keeps a K × V state per head and decays it with a data-dependent gate:
//:
//:     S_t = diag(exp g_t) S_{t−1} + k_tᵀ v_t,    o_t = s q_t S_t,    g_t ∈ (−∞, 0]^K (log-gates)
//:
//: Run token by token this is an RNN: O(L K V) work, but L small sequential steps. The **chunked form** processes C
//: tokens at once with matrix products. Inside a chunk, with G_t = Σ_{u ≤ t} g_u (cumulative, from the chunk start)
//: and Γ = G at the chunk's last row,
//:
//:     O = (s Q ⊙ e^G) S_prev + (A ⊙ M) V,   A_ij = s Σ_d Q_id e^{G_id} K_jd e^{−G_jd},   S_new = e^Γ S_prev + (K ⊙ e^{Γ−G})ᵀ V
//:
//: (M the causal mask). The library's `gatedLinearAttention` (Sources/Layers/LinearAttention) is this form; the
//: recurrence is `gatedLinearAttentionRecurrent`. This notebook checks that they agree, shows what goes wrong
//: with the chunked form as written above when gates are strong, and times both.
import Experiments
import Foundation
import Layers
import Notebook
import Tensors

/// Random GLA inputs q, k, g [1, L, H, K], v [1, L, H, V]; log-gates g = −strength · U(0.5, 1.5).
func inputs<T: TensorScalar>(length: Int, heads: Int, keyDim: Int, valueDim: Int, gateStrength: Double, seed: UInt64,
                             as _: T.Type) -> (q: Tensor<T>, k: Tensor<T>, v: Tensor<T>, g: Tensor<T>) {
    var rng = RandomGenerator(seed: seed)
    let shape = [1, length, heads, keyDim]
    let g = Tensor<T>(shape: shape, data: (0..<(length * heads * keyDim)).map { _ in T(-gateStrength * (0.5 + rng.uniform())) })
    return (Tensor.randn(shape, using: &rng), Tensor.randn(shape, using: &rng), Tensor.randn([1, length, heads, valueDim], using: &rng), g)
}

//: ## The two forms agree, at awkward lengths
//:
//: Float64, 2 heads, K = V = 16, chunk 64 with sub-chunks of 16, gates of moderate strength (mean log-gate −0.5
//: per step); lengths that are not multiples of the chunk or the sub-chunk, including a single token.
cell()
print("     L   output rel. error   final state rel. error")
for length in [1, 7, 16, 63, 64, 65, 200, 333] {
    let x = inputs(length: length, heads: 2, keyDim: 16, valueDim: 16, gateStrength: 0.5, seed: UInt64(length), as: Double.self)
    let (chunked, recurrent) = Tape.withoutGradients {
        (gatedLinearAttention(q: x.q, k: x.k, v: x.v, logGates: x.g, chunkSize: 64),
         gatedLinearAttentionRecurrent(q: x.q, k: x.k, v: x.v, logGates: x.g))
    }
    print(String(format: "%6d   %17.1e   %22.1e", length, GradientCheck.relativeError(chunked.output.data, recurrent.output.data),
                 GradientCheck.relativeError(chunked.finalState.data, recurrent.finalState.data)))
}

//: ## The naive chunked form, from a few lines
//:
//: Here is the chunked form exactly as written in the introduction, for one head: it forms Q ⊙ e^G and K ⊙ e^{−G}
//: separately and multiplies them. Mathematically e^{G_i} e^{−G_j} = e^{G_i − G_j} ≤ 1 for j ≤ i, but the factors
//: on their own are not bounded: G falls by about (gate strength × C) over a chunk, so e^{−G} reaches e^{C·strength}.
//: Float32 overflows past e^88 and underflows below e^−87 (then 0 · ∞ = NaN); Float64 at about e^±709.
cell()
func naiveChunked<T: TensorScalar>(q: [T], k: [T], v: [T], g: [T], length: Int, keyDim: Int, valueDim: Int, chunk: Int) -> [T] {
    let (kd, vd, scale) = (keyDim, valueDim, 1 / T(keyDim).squareRoot())
    var o = [T](repeating: 0, count: length * vd), S = [T](repeating: 0, count: kd * vd)  // S [K, V]
    for start in stride(from: 0, to: length, by: chunk) {
        let n = min(chunk, length - start)
        var G = [T](repeating: 0, count: n * kd)  // cumulative log-gates from the chunk start [n, K]
        for i in 0..<n { for d in 0..<kd { G[i * kd + d] = (i > 0 ? G[(i - 1) * kd + d] : 0) + g[(start + i) * kd + d] } }
        let qDecayed = (0..<(n * kd)).map { scale * q[start * kd + $0] * T.exp(G[$0]) }   // s Q ⊙ e^G
        let kGrown = (0..<(n * kd)).map { k[start * kd + $0] * T.exp(-G[$0]) }             // K ⊙ e^{−G}
        for i in 0..<n {
            for e in 0..<vd {  // inter-chunk: (s Q ⊙ e^G) S_prev
                var acc: T = 0
                for d in 0..<kd { acc += qDecayed[i * kd + d] * S[d * vd + e] }
                o[(start + i) * vd + e] = acc
            }
            for j in 0...i {  // intra-chunk: A_ij v_j
                var a: T = 0
                for d in 0..<kd { a += qDecayed[i * kd + d] * kGrown[j * kd + d] }
                for e in 0..<vd { o[(start + i) * vd + e] += a * v[(start + j) * vd + e] }
            }
        }
        for d in 0..<kd {  // S = e^Γ S + (K ⊙ e^{Γ−G})ᵀ V
            let gamma = G[(n - 1) * kd + d]
            for e in 0..<vd {
                var s = T.exp(gamma) * S[d * vd + e]
                for j in 0..<n { s += T.exp(gamma) * kGrown[j * kd + d] * v[(start + j) * vd + e] }
                S[d * vd + e] = s
            }
        }
    }
    return o
}
let small = inputs(length: 100, heads: 1, keyDim: 16, valueDim: 16, gateStrength: 0.5, seed: 7, as: Double.self)
let reference = Tape.withoutGradients { gatedLinearAttentionRecurrent(q: small.q, k: small.k, v: small.v, logGates: small.g).output }
let naive = naiveChunked(q: small.q.data, k: small.k.data, v: small.v.data, g: small.g.data, length: 100, keyDim: 16, valueDim: 16, chunk: 64)
print(String(format: "naive chunked vs recurrent, Float64, mean log-gate -0.5: %.1e", GradientCheck.relativeError(naive, reference.data)))

//: Correct at moderate gates. Now the gate strength goes up (L = 256, chunk 64, K = V = 16, one head). The
//: reference is the recurrence in Float64; the contenders are the naive chunked form in Float32 and Float64 and the
//: library's chunked kernel in Float32 (secondary chunking).
cell()
var errors: [String: [(x: Double, y: Double)]] = [:]
print("mean log-gate   naive f32   naive f64   library f32 (sub-chunks)")
for strength in [0.01, 0.1, 0.5, 1, 1.5, 2, 5, 10, 20] {
    let x64 = inputs(length: 256, heads: 1, keyDim: 16, valueDim: 16, gateStrength: strength, seed: 11, as: Double.self)
    let x32 = inputs(length: 256, heads: 1, keyDim: 16, valueDim: 16, gateStrength: strength, seed: 11, as: Float.self)
    let exact = Tape.withoutGradients { gatedLinearAttentionRecurrent(q: x64.q, k: x64.k, v: x64.v, logGates: x64.g).output.data }
    func error<T: TensorScalar>(_ o: [T]) -> Double { GradientCheck.relativeError(o.map { Double($0) }, exact) }
    let naive32 = error(naiveChunked(q: x32.q.data, k: x32.k.data, v: x32.v.data, g: x32.g.data, length: 256, keyDim: 16, valueDim: 16, chunk: 64))
    let naive64 = error(naiveChunked(q: x64.q.data, k: x64.k.data, v: x64.v.data, g: x64.g.data, length: 256, keyDim: 16, valueDim: 16, chunk: 64))
    let library32 = error(Tape.withoutGradients { gatedLinearAttention(q: x32.q, k: x32.k, v: x32.v, logGates: x32.g, chunkSize: 64).output.data })
    print(String(format: "%13.2f   %9.1e   %9.1e   %11.1e", -strength, naive32, naive64, library32))
    for (name, e) in [("naive chunked, f32", naive32), ("naive chunked, f64", naive64), ("sub-chunked (library), f32", library32)] {
        errors[name, default: []].append((strength, e))
    }
}
saveFigure(LineChart(title: "GLA chunked forms vs the recurrence (chunk 64)", xLabel: "gate strength (−mean log-gate)",
                     yLabel: "relative error", logX: true, logY: true,
                     series: errors.keys.sorted().map { LineChart.Series(name: $0, points: errors[$0]!) }),
           name: "error-vs-gate-strength", caption: "Relative error against gate strength; missing points are inf/NaN")

//: (`inf` marks an overflow: an infinite or NaN output.) The naive form breaks once the gates' total decay over a chunk
//: passes the exponent range: in Float32 at a mean log-gate around −88/64 ≈ −1.4, in Float64 around −709/64 ≈ −11.
//: The library never forms e^{−G}. It splits each chunk into sub-chunks of c = 16 tokens and, for sub-chunk I
//: against the rows before it, takes its exponents relative to r = G at I's first row:
//:
//:     A_{I,<I} = s (Q_I ⊙ e^{G_I − r}) (K_{<I} ⊙ e^{r − G_{<I}})ᵀ
//:
//: Since G only falls, G_I − r ≤ 0 and r − G_{<I} ≤ 0: every factor is at most 1, so nothing overflows whatever the
//: gates; and within a sub-chunk the 16 × 16 block takes e^{G_i − G_j} directly, in log space. The products stay
//: GEMMs (the point of the chunked form), and the error stays at Float32 round-off at every gate strength.
//:
//: ## Time against length
//:
//: Forward pass, Float32, the default GLA layer's head shape (4 heads, K = 16, V = 32): the recurrence (one small
//: step of tape ops per token) against the chunked kernel (GEMMs over chunks of 64, both cores over heads).
cell()
var times: [String: [(x: Double, y: Double)]] = [:]
print("     L   recurrent ms   chunked ms   ratio")
for length in [256, 1024, 4096, 16384] {
    let x = inputs(length: length, heads: 4, keyDim: 16, valueDim: 32, gateStrength: 0.1, seed: 3, as: Float.self)
    let repeats = length >= 4096 ? 3 : 5
    let tRecurrent = medianMilliseconds(repeats: repeats) {
        _ = Tape.withoutGradients { gatedLinearAttentionRecurrent(q: x.q, k: x.k, v: x.v, logGates: x.g) }
    }
    let tChunked = medianMilliseconds(repeats: repeats) {
        _ = Tape.withoutGradients { gatedLinearAttention(q: x.q, k: x.k, v: x.v, logGates: x.g) }
    }
    print(String(format: "%6d   %12.2f   %10.3f   %5.1fx", length, tRecurrent, tChunked, tRecurrent / tChunked))
    times["recurrent", default: []].append((Double(length), tRecurrent))
    times["chunked (C = 64, c = 16)", default: []].append((Double(length), tChunked))
}
saveFigure(LineChart(title: "GLA forward, 4 heads, K = 16, V = 32", xLabel: "sequence length L", yLabel: "ms",
                     logX: true, logY: true, series: times.keys.sorted().map { LineChart.Series(name: $0, points: times[$0]!) }),
           name: "time-vs-length", caption: "Forward time of both forms against L (log-log)")

//: Both grow roughly linearly in L (the state work is O(L K V) either way); the chunked form does it in a few large
//: products per chunk instead of L tiny sequential steps, plus O(L C K) for the intra-chunk scores, and is several
//: times faster at every length (the ratio varies between runs on this shared 2-core machine).
