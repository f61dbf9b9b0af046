import Tensors

// RAT's recurrence inside each chunk (Wei et al. 2025, "RAT: Bridging RNN Efficiency and Attention Accuracy",
// eq. 2): per channel, from zero at the first position of every chunk,
//   g_l = sigmoid(a_l + gate_bias),  vt_l = g_l vt_{l-1} + (1 - g_l) v_l,  kt_l = g_l kt_{l-1} + (1 - g_l) k_l,
// where the keys k [B, L, Dk] are tiled to the D channels (channel i reads key channel i mod Dk: the grouped keys of
// the paper, `k.repeat(1, 1, H / G)`), so every head has its own gates.
// Backward (a reverse scan inside each chunk, G_l = dh_l + g_{l+1} G_{l+1}, zero past the chunk's end):
//   dv_l = (1 - g_l) Gv_l,  dk_l = sum over tiles of (1 - g_l) Gk_l,
//   da_l = g_l (1 - g_l) [Gv_l (vt_{l-1} - v_l) + Gk_l (kt_{l-1} - k_l)],  d gate_bias = sum_{b,l} da_l.

/// The chunked gated recurrence of RAT over values v [B, L, D] and keys k [B, L, Dk] (Dk divides D) with gate
/// pre-activations a [B, L, D] and gate bias [D]: returns (vt, kt), both [B, L, D]. One fused tape node; the scan
/// runs over time with the D channels contiguous (vectorised), chunks in parallel.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func chunkedGatedRecurrence<T: TensorScalar>(
    values v: Tensor<T>, keys k: Tensor<T>, gateLogits a: Tensor<T>, gateBias: Tensor<T>, chunkSize: Int
) -> (values: Tensor<T>, keys: Tensor<T>) {
    precondition(v.rank == 3 && a.shape == v.shape, "chunkedGatedRecurrence: values \(v.shape) and gate logits \(a.shape) must be one [B, L, D] shape")
    let (batch, length, width) = (v.shape[0], v.shape[1], v.shape[2])
    precondition(k.rank == 3 && k.shape[0] == batch && k.shape[1] == length && k.shape[2] > 0 && width % k.shape[2] == 0,
                 "chunkedGatedRecurrence: keys \(k.shape) must be [B, L, Dk] with Dk dividing D = \(width)")
    precondition(gateBias.shape == [width], "chunkedGatedRecurrence: gate bias \(gateBias.shape), needs [\(width)]")
    precondition(chunkSize >= 1, "chunkedGatedRecurrence: chunk size \(chunkSize) must be positive")
    let kWidth = k.shape[2], tiles = width / kWidth
    let chunks = (length + chunkSize - 1) / chunkSize
    let vData = v.data, kData = k.data, aData = a.data, biasData = gateBias.data
    var vt: [T] = overwrittenArray(count: v.count)  // [B, L, D]
    var kt: [T] = overwrittenArray(count: v.count)  // [B, L, D]
    let gates = PooledBuffer<T>(count: v.count)  // g [B, L, D], kept for the backward pass

    vData.withUnsafeBufferPointer { vp in kData.withUnsafeBufferPointer { kp in aData.withUnsafeBufferPointer { ap in
    biasData.withUnsafeBufferPointer { bp in vt.withUnsafeMutableBufferPointer { vtp in kt.withUnsafeMutableBufferPointer { ktp in
        let (v, k, a, vt, kt, g, bias) = (vp.baseAddress!, kp.baseAddress!, ap.baseAddress!, vtp.baseAddress!, ktp.baseAddress!, gates.pointer, bp.baseAddress!)
        Parallel.forEachRange(batch * chunks) { items in
            for item in items {
                let (b, c) = (item / chunks, item % chunks)
                let t0 = c * chunkSize, t1 = min(length, t0 + chunkSize)
                for t in t0..<t1 {
                    let row = (b * length + t) * width
                    let (gr, ar, vr, vtr, ktr, kr) = (g + row, a + row, v + row, vt + row, kt + row, k + (b * length + t) * kWidth)
                    for i in 0..<width { gr[i] = FastScalarMath.sigmoid(ar[i] + bias[i]) }
                    if t == t0 {
                        for i in 0..<width { vtr[i] = (1 - gr[i]) * vr[i] }
                        for tile in 0..<tiles {
                            let (gt, kto) = (gr + tile * kWidth, ktr + tile * kWidth)
                            for j in 0..<kWidth { kto[j] = (1 - gt[j]) * kr[j] }
                        }
                    } else {
                        let (pv, pk) = (vtr - width, ktr - width)
                        for i in 0..<width { vtr[i] = gr[i] * pv[i] + (1 - gr[i]) * vr[i] }
                        for tile in 0..<tiles {
                            let (gt, kto, pko) = (gr + tile * kWidth, ktr + tile * kWidth, pk + tile * kWidth)
                            for j in 0..<kWidth { kto[j] = gt[j] * pko[j] + (1 - gt[j]) * kr[j] }
                        }
                    }
                }
            }
        }
    } } } } } }

    let outV = Tensor(shape: v.shape, data: vt), outK = Tensor(shape: v.shape, data: kt)
    Tape.record("rat_chunked_recurrence", inputs: [v, k, a, gateBias], outputs: [outV, outK]) { grads in
        var dv: [T] = overwrittenArray(count: vData.count)
        var dk = [T](repeating: 0, count: kData.count)
        var da: [T] = overwrittenArray(count: vData.count)
        let zeros = [T](repeating: 0, count: grads[0] == nil || grads[1] == nil ? vData.count : 0)
        let dBiasParts: [PooledBuffer<T>] = TokenBlocks.accumulators(TokenBlocks.itemWorkers(count: batch * chunks), width)
        let dvt = grads[0] ?? zeros, dkt = grads[1] ?? zeros
        vData.withUnsafeBufferPointer { vp in kData.withUnsafeBufferPointer { kp in vt.withUnsafeBufferPointer { vtp in
        kt.withUnsafeBufferPointer { ktp in dvt.withUnsafeBufferPointer { gvp in dkt.withUnsafeBufferPointer { gkp in
        dv.withUnsafeMutableBufferPointer { dvp in dk.withUnsafeMutableBufferPointer { dkp in da.withUnsafeMutableBufferPointer { dap in
            let (v, k, vt, kt, g) = (vp.baseAddress!, kp.baseAddress!, vtp.baseAddress!, ktp.baseAddress!, gates.pointer)
            let (dvtIn, dktIn, dv, dk, da) = (gvp.baseAddress!, gkp.baseAddress!, dvp.baseAddress!, dkp.baseAddress!, dap.baseAddress!)
            let workers = TokenBlocks.itemWorkers(count: batch * chunks)
            let scratch: [PooledBuffer<T>] = TokenBlocks.scratch(workers, 2 * width + kWidth)
            TokenBlocks.forEachItem(count: batch * chunks) { worker, item in
                // carries g_{l+1} G_{l+1} of the value and key paths [D] each, and a zero row [Dk]
                let (cv, ck, zero) = (scratch[worker].pointer, scratch[worker].pointer + width, scratch[worker].pointer + 2 * width)
                let db = dBiasParts[worker].pointer
                let (b, c) = (item / chunks, item % chunks)
                let t0 = c * chunkSize, t1 = min(length, t0 + chunkSize)
                for i in 0..<(2 * width + kWidth) { cv[i] = 0 }
                for t in stride(from: t1 - 1, through: t0, by: -1) {
                    let row = (b * length + t) * width, keyRow = (b * length + t) * kWidth
                    let first = t == t0
                    for tile in 0..<tiles {
                        let o = row + tile * kWidth
                        let (gr, gvr, gkr, vr, kr) = (g + o, dvtIn + o, dktIn + o, v + o, k + keyRow)
                        let (dvr, dkr, dar, cvr, ckr, dbr) = (dv + o, dk + keyRow, da + o, cv + tile * kWidth, ck + tile * kWidth, db + tile * kWidth)
                        // the states before this position (zero at the chunk's first position)
                        let (pv, pk): (UnsafePointer<T>, UnsafePointer<T>) = first ? (UnsafePointer(zero), UnsafePointer(zero)) : (vt + o - width, kt + o - width)
                        for j in 0..<kWidth {
                            let gate = gr[j]
                            let gv = gvr[j] + cvr[j], gk = gkr[j] + ckr[j]
                            dvr[j] = (1 - gate) * gv
                            dkr[j] += (1 - gate) * gk
                            let dGate = gate * (1 - gate) * (gv * (pv[j] - vr[j]) + gk * (pk[j] - kr[j]))
                            dar[j] = dGate
                            dbr[j] += dGate
                            cvr[j] = gate * gv
                            ckr[j] = gate * gk
                        }
                    }
                }
            }
        } } } } } } } } }
        let dBias = TokenBlocks.reduce(dBiasParts)
        return [dv, dk, da, dBias]
    }
    return (outV, outK)
}

/// The recurrence written with basic tape ops, one time step at a time: the obviously right form that
/// `chunkedGatedRecurrence` is tested against.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func referenceChunkedGatedRecurrence<T: TensorScalar>(
    values v: Tensor<T>, keys k: Tensor<T>, gateLogits a: Tensor<T>, gateBias: Tensor<T>, chunkSize: Int
) -> (values: Tensor<T>, keys: Tensor<T>) {
    let length = v.shape[1]
    let keys = Tensor.concatenate(Array(repeating: k, count: v.shape[2] / k.shape[2]), axis: 2)  // [B, L, D]
    let g = (a + gateBias).sigmoid()
    var hv: Tensor<T>? = nil, hk: Tensor<T>? = nil
    var outV: [Tensor<T>] = [], outK: [Tensor<T>] = []
    for t in 0..<length {
        let gt = g.slice(axis: 1, t..<(t + 1))
        let nv = (1 - gt) * v.slice(axis: 1, t..<(t + 1)), nk = (1 - gt) * keys.slice(axis: 1, t..<(t + 1))
        if t % chunkSize == 0 {
            hv = nv
            hk = nk
        } else {
            hv = gt * hv! + nv
            hk = gt * hk! + nk
        }
        outV.append(hv!)
        outK.append(hk!)
    }
    return (Tensor.concatenate(outV, axis: 1), Tensor.concatenate(outK, axis: 1))
}
