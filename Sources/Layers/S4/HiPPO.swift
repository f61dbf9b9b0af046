import ComplexModule
import Foundation

// Initialisations of the S4 family's state matrix (REFERENCE.md section 1):
// HiPPO-LegS and its normal-plus-low-rank (NPLR) form for S4 (Gu et al., "Efficiently Modeling Long Sequences with
// Structured State Spaces", ICLR 2022, section 3 and appendix C), and the diagonal S4D initialisations (Gu et al.,
// "On the Parameterization and Initialization of Diagonal State Space Models", NeurIPS 2022, section 4).

/// HiPPO-LegS: the state matrix that projects a signal's history onto scaled Legendre polynomials.
public enum HiPPO {
    /// A_nk = -sqrt(2n+1) sqrt(2k+1) if n > k; -(n+1) if n = k; 0 if n < k.  B_n = sqrt(2n+1).
    public static func legS(_ n: Int) -> (a: [[Double]], b: [Double]) {
        var a = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)
        for i in 0..<n {
            for k in 0..<n {
                if i > k { a[i][k] = -(Double(2 * i + 1) * Double(2 * k + 1)).squareRoot() }
                if i == k { a[i][k] = -Double(i + 1) }
            }
        }
        return (a, (0..<n).map { Double(2 * $0 + 1).squareRoot() })
    }

    /// The rank-1 correction P_n = sqrt(n + 1/2): A + P P^T = S - I/2 with S skew-symmetric.
    public static func legSRankCorrection(_ n: Int) -> [Double] { (0..<n).map { (Double($0) + 0.5).squareRoot() } }
}

/// The NPLR form of HiPPO-LegS with conjugate symmetry: A = V (Lambda - P P^*) V^*, keeping the N/2 eigenvalues
/// with negative imaginary part (the other half are their conjugates).
///
/// A + P P^T = S - I/2 with S skew-symmetric, so its eigenvalues are -1/2 + i w with w the eigenvalues of the
/// Hermitian matrix -i S (LAPACK zheevd, Float64, as s4.py's torch.linalg.eigh: the same eigenvector phases, hence
/// the same P and B; other phases would be an equivalent basis, but B's clipped imaginary part depends on them).
/// Then P <- V^* P and B <- V^* B.
public struct NPLRDecomposition {
    /// The N/2 eigenvalues Lambda (Re = -1/2, Im < 0, ascending imaginary parts).
    public let lambda: [Complex64]
    /// V^* P over the kept half.
    public let p: [Complex64]
    /// V^* B over the kept half.
    public let b: [Complex64]
    /// The kept eigenvectors: N x N/2 (the other half are their conjugates).
    public let vectors: ComplexMatrix

    /// The decomposition for state size `n` (even).
    public static func legS(stateSize n: Int) -> NPLRDecomposition {
        precondition(n >= 2 && n % 2 == 0, "NPLR: the state size must be even and >= 2, got \(n)")
        let (a, b) = HiPPO.legS(n)
        let p = HiPPO.legSRankCorrection(n)
        // S = A + P P^T + I/2 (skew-symmetric); the Hermitian matrix -i S.
        let hermitian = ComplexMatrix(rows: n, columns: n) { i, j in
            let s = a[i][j] + p[i] * p[j] + (i == j ? 0.5 : 0)
            return Complex64(0, -s)
        }
        let (w, v) = hermitianEigen(hermitian)
        let half = n / 2
        let kept = ComplexMatrix(rows: n, columns: half) { i, j in v[i, j] }  // ascending: the negative w first
        let lambda = (0..<half).map { Complex64(-0.5, w[$0]) }
        // V^* x for a real vector x, over the kept columns.
        func project(_ x: [Double]) -> [Complex64] {
            (0..<half).map { j in (0..<n).reduce(Complex64.zero) { $0 + kept[$1, j].conjugate * Complex64(x[$1]) } }
        }
        return NPLRDecomposition(lambda: lambda, p: project(p), b: project(b), vectors: kept)
    }
}

/// The diagonal initialisations of S4D (the N/2 modes of a conjugate-symmetric state of size N), with the positive
/// imaginary parts s4d.py stores (A = -exp(log_A_real) + i A_imag, A_imag = pi n); the paper writes the conjugate
/// system, which has the same kernel distribution (C ~ CN(0, 1) is conjugation invariant).
public enum S4DInitialization: String, CaseIterable, Sendable {
    /// S4D-Lin: A_n = -1/2 + i pi n (s4d.py).
    case lin
    /// S4D-Inv: A_n = -1/2 + i (N/pi) (N/(2n+1) - 1) (s4.py's dplr(init='inv'), in s4d.py's sign convention).
    case inv
    /// S4D-Real: A_n = -(n+1) (also Mamba's).
    case real

    /// The N/2 diagonal entries A_n for state size n.
    public func diagonal(stateSize n: Int) -> [Complex64] {
        (0..<(n / 2)).map { k in
            let m = Double(k)
            switch self {
            case .lin: return Complex64(-0.5, Double.pi * m)
            case .inv: return Complex64(-0.5, (Double(n) / Double.pi) * (Double(n) / (2 * m + 1) - 1))
            case .real: return Complex64(-(m + 1), 0)
            }
        }
    }
}

/// How the continuous SSM becomes a discrete one with step dt.
public enum Discretization: String, CaseIterable, Sendable {
    /// Zero-order hold: Abar = exp(dt A), Bbar = (exp(dt A) - 1) / A B.
    case zoh
    /// Bilinear (Tustin): Abar = (I - dt/2 A)^-1 (I + dt/2 A), Bbar = (I - dt/2 A)^-1 dt B.
    case bilinear
}
