// Normalisation over the last axis, each one fused node with a hand-written backward.
//   LayerNorm (Ba et al. 2016): xhat = (x - mean) / sqrt(var + eps),  y = gamma xhat + beta
//   RMSNorm (Zhang & Sennrich 2019): xhat = x / sqrt(mean(x^2) + eps), y = gamma xhat
// Backward with g = dy gamma:  dx = rstd (g - mean(g) - xhat mean(g xhat))  (RMSNorm drops the mean(g) term).

extension Tensor {
    /// LayerNorm over the last axis with optional affine weight `gamma` and bias `beta` (each [D]).
    public func layerNorm(gamma: Tensor? = nil, beta: Tensor? = nil, eps: T = 1e-5) -> Tensor {
        normalized("layer_norm", centered: true, gamma: gamma, beta: beta, eps: eps)
    }

    /// RMSNorm over the last axis with optional weight `gamma` [D].
    public func rmsNorm(gamma: Tensor? = nil, eps: T = 1e-5) -> Tensor {
        normalized("rms_norm", centered: false, gamma: gamma, beta: nil, eps: eps)
    }

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
        let g = gamma?.data, b = beta?.data
        for r in 0..<rows {
            var mean: T = 0
            if centered {
                for j in 0..<d { mean += data[r * d + j] }
                mean /= T(d)
            }
            var ss: T = 0
            for j in 0..<d {
                let c = data[r * d + j] - mean
                ss += c * c
            }
            let s = 1 / (ss / T(d) + eps).squareRoot()
            rstd[r] = s
            for j in 0..<d {
                let h = (data[r * d + j] - mean) * s
                xhat[r * d + j] = h
                out[r * d + j] = h * (g?[j] ?? 1) + (b?[j] ?? 0)
            }
        }
        let result = Tensor(shape: shape, data: out)
        var inputs = [self]
        if let gamma { inputs.append(gamma) }
        if let beta { inputs.append(beta) }
        Tape.record(name, inputs: inputs, output: result) { dy in
            var dx = [T](repeating: 0, count: rows * d)
            var dGamma = [T](repeating: 0, count: d), dBeta = [T](repeating: 0, count: d)
            var gRow = [T](repeating: 0, count: d)
            for r in 0..<rows {
                var meanG: T = 0, meanGX: T = 0
                for j in 0..<d {
                    let gj = dy[r * d + j] * (g?[j] ?? 1)
                    gRow[j] = gj
                    meanG += gj
                    meanGX += gj * xhat[r * d + j]
                    dGamma[j] += dy[r * d + j] * xhat[r * d + j]
                    dBeta[j] += dy[r * d + j]
                }
                meanG = centered ? meanG / T(d) : 0
                meanGX /= T(d)
                for j in 0..<d { dx[r * d + j] = rstd[r] * (gRow[j] - meanG - xhat[r * d + j] * meanGX) }
            }
            var grads: [[T]?] = [dx]
            if gamma != nil { grads.append(dGamma) }
            if beta != nil { grads.append(dBeta) }
            return grads
        }
        return result
    }
}
