import Tensors

/// The per-(batch, head) loops of the fused recurrent delta-product node (see DeltaProductFused.swift for the math).
/// All inner loops run over one contiguous row of V values.
struct DeltaProductKernel<T: TensorScalar>: @unchecked Sendable {
    let geo: DeltaProductGeometry
    let scale: T
    let segment: Int

    /// Base pointers of the inputs (g optional).
    struct Pointers: @unchecked Sendable {
        let q, k, v, beta: UnsafePointer<T>
        let g: UnsafePointer<T>?
        func with(g: UnsafePointer<T>) -> Pointers { Pointers(q: q, k: k, v: v, beta: beta, g: g) }
    }

    // Per-item offsets and per-token / per-sub-step strides.
    @inline(__always) var qTok: Int { geo.heads * geo.keyDim }
    @inline(__always) var kSub: Int { geo.heads * geo.keyDim }
    @inline(__always) var kTok: Int { geo.householder * kSub }
    @inline(__always) var vSub: Int { geo.heads * geo.valueDim }
    @inline(__always) var vTok: Int { geo.householder * vSub }
    @inline(__always) func base(_ item: Int) -> (b: Int, h: Int) { (item / geo.heads, item % geo.heads) }

    /// Runs item (b, h) over all tokens: S (its [K, V] state, h0 on entry) ends as hT; writes o; saves S before every
    /// segment's first token into `checkpoints` when given.
    @inline(__always)
    func forward(item: Int, io: Pointers, o: UnsafeMutablePointer<T>, S: UnsafeMutablePointer<T>, checkpoints: UnsafeMutablePointer<T>?) {
        let (K, V, NH, L, H) = (geo.keyDim, geo.valueDim, geo.householder, geo.length, geo.heads)
        let (b, h) = base(item)
        let u = UnsafeMutablePointer<T>.allocate(capacity: V); defer { u.deallocate() }
        let qb = io.q + b * L * qTok + h * K, kb = io.k + b * L * kTok + h * K, vb = io.v + b * L * vTok + h * V
        let bb = io.beta + b * L * NH * H + h, gb = io.g.map { $0 + b * L * H + h }, ob = o + b * L * H * V + h * V
        for t in 0..<L {
            if let cp = checkpoints, t % segment == 0 { (cp + (t / segment) * K * V).update(from: S, count: K * V) }
            for j in 0..<NH {
                let kj = kb + t * kTok + j * kSub, vj = vb + t * vTok + j * vSub, bj = bb[(t * NH + j) * H]
                for c in 0..<V { u[c] = 0 }
                if j == 0, let gb {
                    let eg = T.exp(gb[t * H])
                    for d in 0..<K {
                        let row = S + d * V, kd = kj[d]
                        for c in 0..<V { let x = row[c] * eg; row[c] = x; u[c] += kd * x }
                    }
                } else {
                    for d in 0..<K {
                        let row = S + d * V, kd = kj[d]
                        for c in 0..<V { u[c] += kd * row[c] }
                    }
                }
                for c in 0..<V { u[c] = bj * (vj[c] - u[c]) }  // v'
                if j == NH - 1 {
                    let qt = qb + t * qTok, ot = ob + t * H * V
                    for c in 0..<V { ot[c] = 0 }
                    for d in 0..<K {
                        let row = S + d * V, kd = kj[d], qd = scale * qt[d]
                        for c in 0..<V { let x = row[c] + kd * u[c]; row[c] = x; ot[c] += qd * x }
                    }
                } else {
                    for d in 0..<K {
                        let row = S + d * V, kd = kj[d]
                        for c in 0..<V { row[c] += kd * u[c] }
                    }
                }
            }
        }
    }

    /// [dq, dk, dv, dbeta, dg (zeros without g), dh0] from the saved inputs and checkpoints.
    func backward(q: [T], k: [T], v: [T], beta: [T], g: [T]?, checkpoints: [T], dO: [T]?, dhT: [T]?) -> [[T]?] {
        var dq = [T](repeating: 0, count: q.count), dk = [T](repeating: 0, count: k.count)
        var dv = [T](repeating: 0, count: v.count), db = [T](repeating: 0, count: beta.count)
        var dg = [T](repeating: 0, count: g?.count ?? 0)
        var dS = dhT ?? [T](repeating: 0, count: geo.items * geo.stateSize)  // becomes dh0
        let dOut = dO ?? [T](repeating: 0, count: geo.batch * geo.length * geo.heads * geo.valueDim)
        let gData = g ?? [T](repeating: 0, count: 1)
        let hasG = g != nil
        q.withUnsafeBufferPointer { qp in k.withUnsafeBufferPointer { kp in v.withUnsafeBufferPointer { vp in
        beta.withUnsafeBufferPointer { bp in gData.withUnsafeBufferPointer { gp in checkpoints.withUnsafeBufferPointer { cp in
        dOut.withUnsafeBufferPointer { dop in dq.withUnsafeMutableBufferPointer { dqp in dk.withUnsafeMutableBufferPointer { dkp in
        dv.withUnsafeMutableBufferPointer { dvp in db.withUnsafeMutableBufferPointer { dbp in dg.withUnsafeMutableBufferPointer { dgp in
        dS.withUnsafeMutableBufferPointer { dsp in
            let io = Pointers(q: qp.baseAddress!, k: kp.baseAddress!, v: vp.baseAddress!, beta: bp.baseAddress!, g: hasG ? gp.baseAddress! : nil)
            let grads = Pointers(q: dqp.baseAddress!, k: dkp.baseAddress!, v: dvp.baseAddress!, beta: dbp.baseAddress!, g: hasG ? dgp.baseAddress! : nil)
            let (cb, dob, dsb) = (cp.baseAddress!, dop.baseAddress!, dsp.baseAddress!)
            let segments = (geo.length + segment - 1) / segment
            Parallel.forEach(geo.items) { item in
                backwardItem(item: item, io: io, grads: grads, dO: dob, checkpoints: cb + item * segments * geo.stateSize,
                             dS: dsb + item * geo.stateSize)
            }
        }}}}}}}}}}}}}
        return [dq, dk, dv, db, hasG ? dg : nil, dS]
    }

    /// Backward of one item; `grads` holds mutable gradient buffers (cast from the same layout as the inputs).
    @inline(__always)
    private func backwardItem(item: Int, io: Pointers, grads: Pointers, dO: UnsafePointer<T>, checkpoints: UnsafePointer<T>,
                              dS: UnsafeMutablePointer<T>) {
        let (K, V, NH, L, H) = (geo.keyDim, geo.valueDim, geo.householder, geo.length, geo.heads)
        let KV = K * V
        let (b, h) = base(item)
        let slots = min(segment, L) * NH
        let P = UnsafeMutablePointer<T>.allocate(capacity: max(1, slots * KV)); defer { P.deallocate() }
        let vpBuf = UnsafeMutablePointer<T>.allocate(capacity: max(1, slots * V)); defer { vpBuf.deallocate() }
        let vmuBuf = UnsafeMutablePointer<T>.allocate(capacity: max(1, slots * V)); defer { vmuBuf.deallocate() }
        let S = UnsafeMutablePointer<T>.allocate(capacity: KV); defer { S.deallocate() }
        let dvp = UnsafeMutablePointer<T>.allocate(capacity: V); defer { dvp.deallocate() }
        let qb = io.q + b * L * qTok + h * K, kb = io.k + b * L * kTok + h * K, vb = io.v + b * L * vTok + h * V
        let bb = io.beta + b * L * NH * H + h, gb = io.g.map { $0 + b * L * H + h }
        let dqb = UnsafeMutablePointer(mutating: grads.q) + b * L * qTok + h * K
        let dkb = UnsafeMutablePointer(mutating: grads.k) + b * L * kTok + h * K
        let dvb = UnsafeMutablePointer(mutating: grads.v) + b * L * vTok + h * V
        let dbb = UnsafeMutablePointer(mutating: grads.beta) + b * L * NH * H + h
        let dgb = grads.g.map { UnsafeMutablePointer(mutating: $0) + b * L * H + h }
        let dob = dO + b * L * H * V + h * V
        let segments = (L + segment - 1) / segment
        for n in stride(from: segments - 1, through: 0, by: -1) {
            let t0 = n * segment, t1 = min(L, t0 + segment)
            // Recompute the sub-step input states P_j, v'_j and v_j - u_j of this segment.
            S.update(from: checkpoints + n * KV, count: KV)
            for t in t0..<t1 {
                for j in 0..<NH {
                    let slot = (t - t0) * NH + j
                    let kj = kb + t * kTok + j * kSub, vj = vb + t * vTok + j * vSub, bj = bb[(t * NH + j) * H]
                    if j == 0, let gb {
                        let eg = T.exp(gb[t * H])
                        for i in 0..<KV { S[i] *= eg }
                    }
                    (P + slot * KV).update(from: S, count: KV)
                    let u = vmuBuf + slot * V, vp = vpBuf + slot * V
                    for c in 0..<V { u[c] = 0 }
                    for d in 0..<K {
                        let row = S + d * V, kd = kj[d]
                        for c in 0..<V { u[c] += kd * row[c] }
                    }
                    for c in 0..<V { let r = vj[c] - u[c]; u[c] = r; vp[c] = bj * r }
                    for d in 0..<K {
                        let row = S + d * V, kd = kj[d]
                        for c in 0..<V { row[c] += kd * vp[c] }
                    }
                }
            }
            // Reverse sweep over the segment's tokens.
            for t in stride(from: t1 - 1, through: t0, by: -1) {
                let qt = qb + t * qTok, dqt = dqb + t * qTok, dot = dob + t * H * V
                let last = (t - t0) * NH + NH - 1
                let Pl = P + last * KV, kl = kb + t * kTok + (NH - 1) * kSub, vpl = vpBuf + last * V
                let vpdo = rowDot(vpl, dot, V)
                for d in 0..<K {
                    let drow = dS + d * V, qd = scale * qt[d]
                    for c in 0..<V { drow[c] += qd * dot[c] }
                    dqt[d] = scale * (rowDot(Pl + d * V, dot, V) + kl[d] * vpdo)
                }
                for j in stride(from: NH - 1, through: 0, by: -1) {
                    let slot = (t - t0) * NH + j
                    let Pj = P + slot * KV, vp = vpBuf + slot * V, vmu = vmuBuf + slot * V
                    let kj = kb + t * kTok + j * kSub, dkj = dkb + t * kTok + j * kSub, dvj = dvb + t * vTok + j * vSub
                    let bIndex = (t * NH + j) * H, bj = bb[bIndex]
                    for c in 0..<V { dvp[c] = 0 }
                    for d in 0..<K {
                        let drow = dS + d * V, kd = kj[d]
                        for c in 0..<V { dvp[c] += kd * drow[c] }
                        dkj[d] = rowDot(drow, vp, V)
                    }
                    dbb[bIndex] = rowDot(dvp, vmu, V)
                    for c in 0..<V {
                        let x = dvp[c]
                        dvj[c] = bj * x
                        dvp[c] = -bj * x  // du
                    }
                    for d in 0..<K {
                        let drow = dS + d * V, kd = kj[d]
                        for c in 0..<V { drow[c] += kd * dvp[c] }
                        dkj[d] += rowDot(Pj + d * V, dvp, V)
                    }
                }
                if let gb, let dgb {
                    let P0 = P + (t - t0) * NH * KV, eg = T.exp(gb[t * H])
                    dgb[t * H] = rowDot(P0, dS, KV)
                    for i in 0..<KV { dS[i] *= eg }
                }
            }
        }
    }
}
