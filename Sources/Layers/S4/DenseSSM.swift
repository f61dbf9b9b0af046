import ComplexModule

// The S4 (DPLR) system of one channel written out densely in Float64, in the full N-dimensional complex basis
// (both conjugate halves). This is the slow, obviously right form: the reference the Cauchy kernel is tested
// against (dense matrix powers), the C-tilde <-> C conversions (S4 section 3.3, "truncated generating function"),
// and the source of the recurrent step.

/// x with its conjugates appended: [x; conj x].
public func withConjugates(_ x: [Complex64]) -> [Complex64] { x + x.map(\.conjugate) }

/// One channel of a DPLR SSM: A = diag(Lambda, conj Lambda) - p p^*, p = [P; conj P], B = [B; conj B], step dt.
public struct DenseDPLRSystem {
    /// The full N x N state matrix.
    public let a: ComplexMatrix
    /// The full input vector [B; conj B].
    public let b: [Complex64]
    /// The step size.
    public let dt: Double

    /// The full system from the kept halves of Lambda, P, B and the step dt.
    public init(lambda: [Complex64], p: [Complex64], b: [Complex64], dt: Double) {
        let fullP = withConjugates(p)
        a = ComplexMatrix.diagonal(withConjugates(lambda)) - ComplexMatrix.outer(fullP, fullP)
        self.b = withConjugates(b)
        self.dt = dt
    }

    /// Bilinear discretisation: Abar = (I - dt/2 A)^-1 (I + dt/2 A), Bbar = (I - dt/2 A)^-1 dt B.
    public func bilinear() -> DiscreteSSM {
        let n = a.rows
        let half = Complex64(dt / 2)
        let backward = ComplexMatrix.identity(n) - half * a
        let forward = ComplexMatrix.identity(n) + half * a
        let aBar = backward.solve(forward)
        let bBar = backward.solve(b.map { Complex64(dt) * $0 })
        return DiscreteSSM(aBar: aBar, bBar: bBar)
    }
}

/// A discrete linear system x_k = Abar x_{k-1} + Bbar u_k (complex, full basis).
public struct DiscreteSSM {
    /// Abar (N x N) and Bbar (N), full basis.
    public let aBar: ComplexMatrix
    public let bBar: [Complex64]

    /// K_l = Re(C Abar^l Bbar) for l < length (C over the full basis): the kernel by explicit matrix powers.
    public func kernel(c: [Complex64], length: Int) -> [Double] {
        var x = bBar
        var k = [Double](repeating: 0, count: length)
        for l in 0..<length {
            k[l] = zip(c, x).reduce(Complex64.zero) { $0 + $1.0 * $1.1 }.real
            x = aBar.multiplied(by: x)
        }
        return k
    }

    /// C-tilde = C (I - Abar^L) over the kept half, from the kept half of C (S4: learn C-tilde, not C).
    public func cTilde(fromC c: [Complex64], length: Int) -> [Complex64] {
        let full = withConjugates(c)
        let cPower = aBar.power(length).leftMultiplied(by: full)  // C Abar^L
        return Array(zip(full, cPower).map { $0 - $1 }.prefix(c.count))
    }

    /// C from C-tilde: solves C (I - Abar^L) = C-tilde; returns C over the full basis.
    public func c(fromCTilde cTilde: [Complex64], length: Int) -> [Complex64] {
        let n = aBar.rows
        let m = ComplexMatrix.identity(n) - aBar.power(length)
        return m.transposed.solve(withConjugates(cTilde))
    }

    /// C-tilde for length 2L from C-tilde for length L: C (I - Abar^2L) = C-tilde (I + Abar^L).
    public func doubledCTilde(_ cTilde: [Complex64], length: Int) -> [Complex64] {
        let full = withConjugates(cTilde)
        let term = aBar.power(length).leftMultiplied(by: full)
        return Array(zip(full, term).map { $0 + $1 }.prefix(cTilde.count))
    }

    /// The same system over real coordinates s = [Re x; Im x] of the kept half, x_full = [x; conj x] = M s:
    /// Abar_real = M^-1 Abar M, Bbar_real = M^-1 Bbar, C_real = C M with M = [[I, iI], [I, -iI]].
    /// Returns row-major N x N, N and N real arrays.
    public func realForm(c: [Complex64]) -> (a: [Double], b: [Double], c: [Double]) {
        let n = aBar.rows, half = n / 2
        // A M: column j < half is A[:, j] + A[:, j + half]; column j >= half is i (A[:, j - half] - A[:, j]).
        var am = ComplexMatrix(rows: n, columns: n)
        for i in 0..<n {
            for j in 0..<half {
                am[i, j] = aBar[i, j] + aBar[i, j + half]
                am[i, j + half] = Complex64.i * (aBar[i, j] - aBar[i, j + half])
            }
        }
        // M^-1 X: row i < half is (X[i] + X[i + half]) / 2; row i + half is i (X[i + half] - X[i]) / 2.
        var a = [Double](repeating: 0, count: n * n)
        for i in 0..<half {
            for j in 0..<n {
                a[i * n + j] = ((am[i, j] + am[i + half, j]) * Complex64(0.5)).real
                a[(i + half) * n + j] = (Complex64.i * (am[i + half, j] - am[i, j]) * Complex64(0.5)).real
            }
        }
        var b = [Double](repeating: 0, count: n), cr = [Double](repeating: 0, count: n)
        for i in 0..<half {
            b[i] = ((bBar[i] + bBar[i + half]) * Complex64(0.5)).real
            b[i + half] = (Complex64.i * (bBar[i + half] - bBar[i]) * Complex64(0.5)).real
            cr[i] = (c[i] + c[i + half]).real
            cr[i + half] = (Complex64.i * (c[i] - c[i + half])).real
        }
        return (a, b, cr)
    }
}
