import COpenBLAS
import ComplexModule
import RealModule

// Dense complex linear algebra in Float64 for the S4 family's set-up work: the NPLR decomposition of HiPPO-LegS,
// the dense bilinear discretisation (the reference kernel and the recurrent step), powers Abar^L for C-tilde.
// Sizes are N x N with N = d_state (<= a few hundred): products go to cblas_zgemm, solves to a partial-pivoting LU.

/// A complex number in Float64.
public typealias Complex64 = Complex<Double>

/// A dense row-major complex matrix in Float64.
public struct ComplexMatrix: Equatable {
    /// The extents.
    public let rows: Int
    public let columns: Int
    /// The entries, row-major (entry (i, j) at i * columns + j).
    public var entries: [Complex64]

    /// A matrix of zeros.
    public init(rows: Int, columns: Int) {
        self.rows = rows
        self.columns = columns
        entries = [Complex64](repeating: .zero, count: rows * columns)
    }

    /// A matrix from a generator of its entries.
    public init(rows: Int, columns: Int, _ entry: (Int, Int) -> Complex64) {
        self.init(rows: rows, columns: columns)
        for i in 0..<rows { for j in 0..<columns { entries[i * columns + j] = entry(i, j) } }
    }

    /// The n x n identity.
    public static func identity(_ n: Int) -> ComplexMatrix {
        ComplexMatrix(rows: n, columns: n) { i, j in i == j ? .one : .zero }
    }

    /// A diagonal matrix.
    public static func diagonal(_ d: [Complex64]) -> ComplexMatrix {
        ComplexMatrix(rows: d.count, columns: d.count) { i, j in i == j ? d[i] : .zero }
    }

    /// The outer product u v^* (a rank-1 matrix).
    public static func outer(_ u: [Complex64], _ v: [Complex64]) -> ComplexMatrix {
        ComplexMatrix(rows: u.count, columns: v.count) { i, j in u[i] * v[j].conjugate }
    }

    /// Entry (i, j).
    public subscript(i: Int, j: Int) -> Complex64 {
        get { entries[i * columns + j] }
        set { entries[i * columns + j] = newValue }
    }

    /// The conjugate transpose M^*.
    public var adjoint: ComplexMatrix {
        ComplexMatrix(rows: columns, columns: rows) { i, j in self[j, i].conjugate }
    }

    /// The transpose M^T.
    public var transposed: ComplexMatrix {
        ComplexMatrix(rows: columns, columns: rows) { i, j in self[j, i] }
    }

    /// The largest |m_ij| (Euclidean modulus of each entry).
    public var maxAbs: Double { entries.reduce(0) { Swift.max($0, $1.length) } }

    /// Entrywise sum, difference, and scaling.
    public static func + (a: ComplexMatrix, b: ComplexMatrix) -> ComplexMatrix {
        precondition(a.rows == b.rows && a.columns == b.columns, "ComplexMatrix +: shapes differ")
        var c = a
        for i in 0..<c.entries.count { c.entries[i] = a.entries[i] + b.entries[i] }
        return c
    }

    public static func - (a: ComplexMatrix, b: ComplexMatrix) -> ComplexMatrix {
        precondition(a.rows == b.rows && a.columns == b.columns, "ComplexMatrix -: shapes differ")
        var c = a
        for i in 0..<c.entries.count { c.entries[i] = a.entries[i] - b.entries[i] }
        return c
    }

    public static func * (s: Complex64, a: ComplexMatrix) -> ComplexMatrix {
        var c = a
        for i in 0..<c.entries.count { c.entries[i] = s * a.entries[i] }
        return c
    }

    /// The product a b (cblas_zgemm).
    public static func * (a: ComplexMatrix, b: ComplexMatrix) -> ComplexMatrix {
        precondition(a.columns == b.rows, "ComplexMatrix *: \(a.rows)x\(a.columns) times \(b.rows)x\(b.columns)")
        var c = ComplexMatrix(rows: a.rows, columns: b.columns)
        var one = Complex64.one, zero = Complex64.zero
        a.entries.withUnsafeBufferPointer { ap in
            b.entries.withUnsafeBufferPointer { bp in
                c.entries.withUnsafeMutableBufferPointer { cp in
                    cblas_zgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(a.rows), Int32(b.columns), Int32(a.columns),
                                &one, ap.baseAddress, Int32(a.columns), bp.baseAddress, Int32(b.columns),
                                &zero, cp.baseAddress, Int32(b.columns))
                }
            }
        }
        return c
    }

    /// The row vector v M (v has `rows` entries).
    public func leftMultiplied(by v: [Complex64]) -> [Complex64] {
        precondition(v.count == rows, "leftMultiplied: vector of \(v.count) for \(rows) rows")
        var out = [Complex64](repeating: .zero, count: columns)
        for i in 0..<rows { for j in 0..<columns { out[j] += v[i] * self[i, j] } }
        return out
    }

    /// The column vector M v (v has `columns` entries).
    public func multiplied(by v: [Complex64]) -> [Complex64] {
        precondition(v.count == columns, "multiplied: vector of \(v.count) for \(columns) columns")
        var out = [Complex64](repeating: .zero, count: rows)
        for i in 0..<rows { for j in 0..<columns { out[i] += self[i, j] * v[j] } }
        return out
    }

    /// M^p for p >= 0 by repeated squaring (square matrices).
    public func power(_ p: Int) -> ComplexMatrix {
        precondition(rows == columns && p >= 0, "power: needs a square matrix and p >= 0")
        var result = ComplexMatrix.identity(rows), base = self, e = p
        var first = true
        while e > 0 {
            if e & 1 == 1 {
                result = first ? base : result * base
                first = false
            }
            e >>= 1
            if e > 0 { base = base * base }
        }
        return result
    }

    /// X with self X = rhs (LU with partial pivoting; self square and non-singular).
    public func solve(_ rhs: ComplexMatrix) -> ComplexMatrix {
        precondition(rows == columns && rhs.rows == rows, "solve: \(rows)x\(columns) with right-hand side \(rhs.rows)x\(rhs.columns)")
        let n = rows, m = rhs.columns
        var a = entries, x = rhs.entries
        for k in 0..<n {
            var pivot = k, best = a[k * n + k].length
            for i in (k + 1)..<max(n, k + 1) where a[i * n + k].length > best {
                pivot = i
                best = a[i * n + k].length
            }
            precondition(best > 0, "solve: singular matrix")
            if pivot != k {
                for j in 0..<n { a.swapAt(k * n + j, pivot * n + j) }
                for j in 0..<m { x.swapAt(k * m + j, pivot * m + j) }
            }
            let inverse = Complex64.one / a[k * n + k]
            for i in (k + 1)..<max(n, k + 1) {
                let f = a[i * n + k] * inverse
                if f.isZero { continue }
                for j in k..<n { a[i * n + j] -= f * a[k * n + j] }
                for j in 0..<m { x[i * m + j] -= f * x[k * m + j] }
            }
        }
        for k in stride(from: n - 1, through: 0, by: -1) {
            let inverse = Complex64.one / a[k * n + k]
            for j in 0..<m {
                var s = x[k * m + j]
                for i in (k + 1)..<max(n, k + 1) { s -= a[k * n + i] * x[i * m + j] }
                x[k * m + j] = s * inverse
            }
        }
        var out = rhs
        out.entries = x
        return out
    }

    /// x with self x = b for one right-hand side.
    public func solve(_ b: [Complex64]) -> [Complex64] {
        solve(ComplexMatrix(rows: b.count, columns: 1) { i, _ in b[i] }).entries
    }
}

/// Eigen-decomposition of a Hermitian matrix (LAPACK zheevd from OpenBLAS, the divide-and-conquer driver that
/// torch.linalg.eigh calls, so that the eigenvectors have its phases: the reference S4's V, hence P and B): eigenvalues
/// ascending, and the unitary matrix whose columns are the matching eigenvectors, so that H = V diag(w) V^*.
public func hermitianEigen(_ h: ComplexMatrix) -> (values: [Double], vectors: ComplexMatrix) {
    precondition(h.rows == h.columns, "hermitianEigen: needs a square matrix")
    var n = Int32(h.rows), lda = n, info: Int32 = 0
    // LAPACK is column-major: pass H^T (entry (i, j) at i + j n).
    var a = [Complex64](repeating: .zero, count: h.rows * h.rows)
    for i in 0..<h.rows { for j in 0..<h.rows { a[i + j * h.rows] = h[i, j] } }
    var w = [Double](repeating: 0, count: h.rows)
    var jobz = Int8(UInt8(ascii: "V")), uplo = Int8(UInt8(ascii: "L"))
    var lwork: Int32 = -1, lrwork: Int32 = -1, liwork: Int32 = -1
    var query = [Complex64](repeating: .zero, count: 1), rquery = [Double](repeating: 0, count: 1), iquery = [Int32](repeating: 0, count: 1)
    zheevd_(&jobz, &uplo, &n, &a, &lda, &w, &query, &lwork, &rquery, &lrwork, &iquery, &liwork, &info)  // workspace query
    (lwork, lrwork, liwork) = (Int32(max(1, Int(query[0].real))), Int32(max(1, Int(rquery[0]))), max(1, iquery[0]))
    var work = [Complex64](repeating: .zero, count: Int(lwork))
    var rwork = [Double](repeating: 0, count: Int(lrwork)), iwork = [Int32](repeating: 0, count: Int(liwork))
    zheevd_(&jobz, &uplo, &n, &a, &lda, &w, &work, &lwork, &rwork, &lrwork, &iwork, &liwork, &info)
    precondition(info == 0, "zheevd failed (info \(info))")
    let vectors = ComplexMatrix(rows: h.rows, columns: h.rows) { i, j in a[i + j * h.rows] }
    return (w, vectors)
}
