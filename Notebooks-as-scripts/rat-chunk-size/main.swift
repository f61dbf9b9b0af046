//: # RAT: the chunk size is a dial between an RNN and attention
//:
//: RAT (Wei, Yadav, Pascanu & Gulcehre, *RAT: Bridging RNN Efficiency and Attention Accuracy in Language Modeling*,
//: 2025) cuts the sequence into chunks of C tokens. Inside a chunk a gated linear recurrence summarises keys and
//: values; across chunks, softmax attention reads the chunk summaries:
//:
//:     g_l = sigmoid(a_l + bias),   ṽ_l = g_l ṽ_{l−1} + (1 − g_l) v_l,   k̃ likewise   (from zero at each chunk start)
//:     o_t = softmax attention of q_t over the chunk-end (k̃, ṽ) of the earlier chunks and its own partial (k̃_t, ṽ_t)
//:
//: C = 1 leaves no recurrence: every token is its own chunk, and o_t is causal softmax attention over all (1 − g) k,
//: (1 − g) v. C ≥ L leaves one chunk: no attention, o_t = ṽ_t, a gated linear RNN. In between, a token attends over
//: L/C summaries, and the inference state is one key and one value per finished chunk. The library's pieces are
//: `chunkedGatedRecurrence` and `chunkAttention` (Sources/Layers/RAT) and the `RAT` layer around them.
import Experiments
import Foundation
import Layers
import Notebook
import Tensors

//: ## The two ends of the dial, numerically
//:
//: Float64, batch 2, 2 heads of dimension 4 (D = 8), L = 37 (not a multiple of anything), no rotary embedding.
cell()
var rng = RandomGenerator(seed: 0)
let (batch, length, heads, headDim) = (2, 37, 2, 4)
let width = heads * headDim
let q = Tensor<Double>.randn([batch, length, heads, headDim], using: &rng)
let k = Tensor<Double>.randn([batch, length, width], using: &rng), v = Tensor<Double>.randn([batch, length, width], using: &rng)
let a = Tensor<Double>.randn([batch, length, width], using: &rng), bias = Tensor<Double>.randn([width], using: &rng)
func heads4(_ x: Tensor<Double>) -> Tensor<Double> { x.reshaped([batch, length, heads, headDim]) }  // [B, L, H, E]

Tape.withoutGradients {
    // C = 1: the recurrence is a single step from zero, (1 − g) v, and the attention is causal softmax attention.
    let (v1, k1) = chunkedGatedRecurrence(values: v, keys: k, gateLogits: a, gateBias: bias, chunkSize: 1)
    let oneMinusG = (a + bias).sigmoid() * -1 + 1
    let rat1 = chunkAttention(q: q, k: heads4(k1), v: heads4(v1), chunkSize: 1, ropeBase: nil)
    let attention = scaledDotProductAttention(q: q, k: heads4(oneMinusG * k), v: heads4(oneMinusG * v))
    print(String(format: "C = 1:  RAT vs causal softmax attention on (1-g) k, (1-g) v   rel. error %.1e",
                 GradientCheck.relativeError(rat1.data, attention.data)))

    // C >= L: one chunk, nothing to attend to but the token's own partial state: o_t = ṽ_t, the gated recurrence.
    for chunk in [length, 64] {
        let (vL, kL) = chunkedGatedRecurrence(values: v, keys: k, gateLogits: a, gateBias: bias, chunkSize: chunk)
        let ratL = chunkAttention(q: q, k: heads4(kL), v: heads4(vL), chunkSize: chunk, ropeBase: nil)
        var rnn = [Double](repeating: 0, count: v.count)  // ṽ_l = g ṽ_{l−1} + (1 − g) v_l, written as a plain loop
        for b in 0..<batch {
            var state = [Double](repeating: 0, count: width)
            for t in 0..<length {
                for i in 0..<width {
                    let j = (b * length + t) * width + i
                    let g = 1 / (1 + Foundation.exp(-(a.data[j] + bias.data[i])))
                    state[i] = g * state[i] + (1 - g) * v.data[j]
                    rnn[j] = state[i]
                }
            }
        }
        print(String(format: "C = %d: RAT vs the gated linear recurrence (a plain loop)      rel. error %.1e",
                     chunk, GradientCheck.relativeError(ratL.data, rnn)))
    }
}

//: Both ends hold to round-off. In between, the layer's step mode (a partial state plus a cache of chunk ends)
//: reproduces the parallel form for every C; its state grows by one key and one value per finished chunk:
//: 2 D (⌊L/C⌋ + 1) scalars per sequence, against 2 D L for attention's KV cache and 2 D for the RNN.
cell()
print(" C     step vs parallel   state at L = 37 (scalars)")
for chunk in [1, 4, 16, 37] {
    let layer = RAT<Double>(dModel: 16, heads: 2, groups: 1, chunkSize: chunk, ropeBase: 10_000, rng: &rng)
    let x = Tensor<Double>.randn([2, 37, 16], using: &rng)
    let (parallel, stepped) = Tape.withoutGradients { (layer(x), layer.stepThrough(x)) }
    print(String(format: "%2d   %17.1e   %26d", chunk, GradientCheck.relativeError(stepped.data, parallel.data),
                 layer.stateSize(sequenceLength: 37)))
}

//: ## The cost of each setting
//:
//: Training cost: the RAT layer's forward + backward in Float32 at d_model 128, 4 heads, batch 1, L = 4096, for chunk
//: sizes from 1 (attention) to 4096 (RNN); and the inference state at that length.
cell()
var timePoints: [(x: Double, y: Double)] = [], tradeOff: [(x: Double, y: Double)] = []
print("    C   fwd+bwd ms   state (scalars)   summaries the last token reads")
let trainLength = 4096
for chunk in [1, 4, 16, 64, 256, 1024, 4096] {
    var layerRng = RandomGenerator(seed: 1)
    let layer = RAT<Float>(dModel: 128, heads: 4, groups: 2, chunkSize: chunk, ropeBase: 10_000, rng: &layerRng)
    let x = Tensor<Float>.randn([1, trainLength, 128], using: &layerRng).requiringGrad()
    let ms = medianMilliseconds(repeats: chunk == 1 ? 1 : 3) {
        layer(x).sum().backward()
        for p in layer.parameters { p.tensor.zeroGrad() }
        x.zeroGrad()
    }
    let state = layer.stateSize(sequenceLength: trainLength)
    print(String(format: "%5d   %10.1f   %15d   %31d", chunk, ms, state, (trainLength - 1) / chunk + 1))
    timePoints.append((Double(chunk), ms))
    tradeOff.append((Double(state), ms))
}
saveFigure(LineChart(title: "RAT forward + backward, L = 4096, d_model 128", xLabel: "chunk size C", yLabel: "ms",
                     logX: true, logY: true, series: [LineChart.Series(name: "RAT", points: timePoints)]),
           name: "time-vs-chunk", caption: "Training time against the chunk size (log-log)")
saveFigure(LineChart(title: "RAT at L = 4096: time against inference state", xLabel: "state (scalars per sequence)",
                     yLabel: "fwd + bwd ms", logX: true, logY: true, series: [LineChart.Series(name: "C = 1 ... 4096", points: tradeOff)]),
           name: "time-vs-state", caption: "The trade-off: training time against inference state size (log-log)")

//: The attention part costs O(L · L/C · E) and the recurrence O(L D): small chunks pay for attention over many
//: summaries, and the time falls with C until the token-wise work (projections, recurrence) dominates, where the
//: curve flattens. The state falls like 1/C all the way. The RAT paper's choice, C = 16, sits where most of the
//: attention cost is gone while a token still attends over L/16 summaries of the past.
