// Normalisation over the last axis, each one fused node with a hand-written backward.
//   LayerNorm (Ba et al. 2016): xhat = (x - mean) / sqrt(var + eps),  y = gamma xhat + beta
//   RMSNorm (Zhang & Sennrich 2019): xhat = x / sqrt(mean(x^2) + eps), y = gamma xhat
// Backward with g = dy gamma:  dx = rstd (g - mean(g) - xhat mean(g xhat))  (RMSNorm drops the mean(g) term).

extension Tensor {
    /// LayerNorm over the last axis with optional affine weight `gamma` and bias `beta` (each [D]).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func layerNorm(gamma: Tensor? = nil, beta: Tensor? = nil, eps: T = 1e-5) -> Tensor {
        normalized("layer_norm", centered: true, gamma: gamma, beta: beta, eps: eps)
    }

    /// RMSNorm over the last axis with optional weight `gamma` [D].
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func rmsNorm(gamma: Tensor? = nil, eps: T = 1e-5) -> Tensor {
        normalized("rms_norm", centered: false, gamma: gamma, beta: nil, eps: eps)
    }

    /// One normalisation node: rows of the last axis in parallel, unsafe-pointer loops (specialised for Float and
    /// Double), xhat and 1 / rms kept for the backward pass; gamma and beta gradients summed per worker.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    private func normalized(_ name: String, centered: Bool, gamma: Tensor?, beta: Tensor?, eps: T) -> Tensor {
        precondition(rank >= 1, "\(name): needs rank >= 1, got shape \(shape)")
        let d = shape[rank - 1]
        for p in [gamma, beta].compactMap({ $0 }) {
            precondition(p.shape == [d], "\(name): parameter of shape \(p.shape) for input of shape \(shape) (needs [\(d)])")
        }
        let rows = d == 0 ? 0 : count / d
        var xhat = [T](repeating: 0, count: count)
        var rstd = [T](repeating: 0, count: rows)
        var out = [T](repeating: 0, count: count)
        let ones = [T](repeating: 1, count: d), zeros = [T](repeating: 0, count: d)
        let g = gamma?.data ?? ones, b = beta?.data ?? zeros
        let minimumRows = Swift.max(1, 4096 / Swift.max(1, d))
        data.withUnsafeBufferPointer { xp in g.withUnsafeBufferPointer { gp in b.withUnsafeBufferPointer { bp in
        xhat.withUnsafeMutableBufferPointer { hp in rstd.withUnsafeMutableBufferPointer { sp in out.withUnsafeMutableBufferPointer { op in
            let (x, h, o, rs, gg, bb) = (xp.baseAddress!, hp.baseAddress!, op.baseAddress!, sp.baseAddress!, gp.baseAddress!, bp.baseAddress!)
            Parallel.forEachRange(rows, minimumChunk: minimumRows) { range in
                for r in range {
                    let (xr, hr, or) = (x + r * d, h + r * d, o + r * d)
                    var mean: T = 0
                    if centered {
                        for j in 0..<d { mean += xr[j] }
                        mean /= T(d)
                    }
                    var ss: T = 0
                    for j in 0..<d { let c = xr[j] - mean; ss += c * c }
                    let s = 1 / (ss / T(d) + eps).squareRoot()
                    rs[r] = s
                    for j in 0..<d {
                        let v = (xr[j] - mean) * s
                        hr[j] = v
                        or[j] = v * gg[j] + bb[j]
                    }
                }
            }
        } } } } } }
        let result = Tensor(shape: shape, data: out)
        var inputs = [self]
        if let gamma { inputs.append(gamma) }
        if let beta { inputs.append(beta) }
        Tape.record(name, inputs: inputs, output: result) { dy in
            var dx = [T](repeating: 0, count: rows * d)
            let workers = Swift.max(1, Swift.min(Parallel.threadCount, rows / minimumRows))
            var partial = [T](repeating: 0, count: workers * 2 * d)  // per worker: dGamma [d], dBeta [d]
            let per = (rows + workers - 1) / Swift.max(1, workers)
            dy.withUnsafeBufferPointer { yp in xhat.withUnsafeBufferPointer { hp in rstd.withUnsafeBufferPointer { sp in
            g.withUnsafeBufferPointer { gp in dx.withUnsafeMutableBufferPointer { dp in partial.withUnsafeMutableBufferPointer { pp in
                let (dyp, h, rs, gg, dxp, acc) = (yp.baseAddress!, hp.baseAddress!, sp.baseAddress!, gp.baseAddress!, dp.baseAddress!, pp.baseAddress!)
                Parallel.forEach(workers) { w in
                    let (dGamma, dBeta) = (acc + w * 2 * d, acc + w * 2 * d + d)
                    for r in (w * per)..<Swift.min(rows, (w + 1) * per) {
                        let (dyr, hr, dxr) = (dyp + r * d, h + r * d, dxp + r * d)
                        var meanG: T = 0, meanGX: T = 0
                        for j in 0..<d {
                            let gj = dyr[j] * gg[j]
                            meanG += gj
                            meanGX += gj * hr[j]
                            dGamma[j] += dyr[j] * hr[j]
                            dBeta[j] += dyr[j]
                        }
                        meanG = centered ? meanG / T(d) : 0
                        meanGX /= T(d)
                        for j in 0..<d { dxr[j] = rs[r] * (dyr[j] * gg[j] - meanG - hr[j] * meanGX) }
                    }
                }
            } } } } } }
            var dGamma = [T](repeating: 0, count: d), dBeta = [T](repeating: 0, count: d)
            for w in 0..<workers {
                for j in 0..<d { dGamma[j] += partial[w * 2 * d + j]; dBeta[j] += partial[w * 2 * d + d + j] }
            }
            var grads: [[T]?] = [dx]
            if gamma != nil { grads.append(dGamma) }
            if beta != nil { grads.append(dBeta) }
            return grads
        }
        return result
    }
}
