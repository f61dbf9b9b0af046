import Tensors

/// LayerNorm of single rows, for the fused GAM nodes (Ba et al. 2016, eps 1e-5 as PyTorch):
///   xhat = (x - mean) / sqrt(var + eps),  y = gamma xhat + beta;
///   backward with g = dy gamma:  dx = rstd (g - mean(g) - xhat mean(g xhat)),  dgamma += dy xhat,  dbeta += dy.
enum RowLayerNorm {
    static let eps = 1e-5

    /// Normalises one row of `n`: writes xhat and y = gamma xhat + beta, returns rstd.
    @inline(__always)
    static func forward<T: TensorScalar>(
        _ x: UnsafePointer<T>, _ n: Int, gamma: UnsafePointer<T>, beta: UnsafePointer<T>,
        xhat: UnsafeMutablePointer<T>, y: UnsafeMutablePointer<T>
    ) -> T {
        let mean = RowReduce.sum(x, n) / T(n)
        for i in 0..<n { xhat[i] = x[i] - mean }
        let rstd = 1 / (RowReduce.dot(xhat, xhat, n) / T(n) + T(eps)).squareRoot()
        for i in 0..<n {
            xhat[i] *= rstd
            y[i] = gamma[i] * xhat[i] + beta[i]
        }
        return rstd
    }

    /// dx += LN^T dy for one row (scratch: n scalars); accumulates dgamma and dbeta.
    @inline(__always)
    static func backward<T: TensorScalar>(
        _ dy: UnsafePointer<T>, _ n: Int, xhat: UnsafePointer<T>, rstd: T, gamma: UnsafePointer<T>,
        dx: UnsafeMutablePointer<T>, dGamma: UnsafeMutablePointer<T>, dBeta: UnsafeMutablePointer<T>, scratch g: UnsafeMutablePointer<T>
    ) {
        for i in 0..<n {
            g[i] = dy[i] * gamma[i]
            dGamma[i] += dy[i] * xhat[i]
            dBeta[i] += dy[i]
        }
        let meanG = RowReduce.sum(g, n) / T(n), meanGX = RowReduce.dot(g, xhat, n) / T(n)
        for i in 0..<n { dx[i] += rstd * (g[i] - meanG - xhat[i] * meanGX) }
    }
}
