import Tensors

/// A finite group given by its elements and multiplication table, for the word problem.
///
/// Permutation groups act on {0, ..., n-1}; an element is the array of images [g(0), ..., g(n-1)] and the product
/// is composition, (a b)(i) = a(b(i)). Elements are numbered in lexicographic order of these arrays (so 0 is the
/// identity). The cyclic group Z_n has elements 0..<n with (a b) = (a + b) mod n.
public struct FiniteGroup: Sendable {
    /// "S3", "S5", "A5", "Z7", ...
    public let name: String
    /// The elements as permutations (for Z_n: the rotation i -> i + g mod n).
    public let permutations: [[Int]]
    /// table[a * order + b] = index of a b.
    public let table: [Int]

    public var order: Int { permutations.count }

    /// The product a b of elements given by index.
    public func multiply(_ a: Int, _ b: Int) -> Int { table[a * order + b] }

    /// S_n (n in 2...6), A_n (n in 3...6) or Z_n (n >= 2), by name ("S5", "a5", "Z60").
    public static func named(_ name: String) throws -> FiniteGroup {
        let upper = name.uppercased()
        guard let kind = upper.first, let n = Int(upper.dropFirst()) else {
            throw SequenceLabError("unknown group '\(name)' (expected S3, S5, A5 or Z_n such as Z5)")
        }
        switch kind {
        case "S" where (2...6).contains(n):
            return FiniteGroup(name: upper, permutations: permutations(of: n))
        case "A" where (3...6).contains(n):
            return FiniteGroup(name: upper, permutations: permutations(of: n).filter { isEven($0) })
        case "Z" where (2...10_000).contains(n):
            let rotations = (0..<n).map { g in (0..<n).map { (($0 + g) % n) } }
            return FiniteGroup(name: upper, cyclic: n, rotations: rotations)
        default:
            throw SequenceLabError("unknown group '\(name)' (expected S_n with n in 2...6, A_n with n in 3...6, or Z_n with n in 2...10000)")
        }
    }

    private init(name: String, permutations: [[Int]]) {
        self.name = name
        self.permutations = permutations
        var index: [[Int]: Int] = [:]
        for (i, p) in permutations.enumerated() { index[p] = i }
        let n = permutations.count
        var table = [Int](repeating: 0, count: n * n)
        for a in 0..<n {
            for b in 0..<n {
                let product = permutations[b].map { permutations[a][$0] }
                table[a * n + b] = index[product]!
            }
        }
        self.table = table
    }

    private init(name: String, cyclic n: Int, rotations: [[Int]]) {
        self.name = name
        permutations = rotations
        var table = [Int](repeating: 0, count: n * n)
        for a in 0..<n { for b in 0..<n { table[a * n + b] = (a + b) % n } }
        self.table = table
    }

    /// All permutations of 0..<n in lexicographic order.
    static func permutations(of n: Int) -> [[Int]] {
        var out: [[Int]] = []
        var p = Array(0..<n)
        while true {
            out.append(p)
            // next permutation in lexicographic order
            guard let i = (0..<(n - 1)).last(where: { p[$0] < p[$0 + 1] }) else { return out }
            let j = ((i + 1)..<n).last(where: { p[$0] > p[i] })!
            p.swapAt(i, j)
            p[(i + 1)...].reverse()
        }
    }

    /// Whether a permutation is even (an even number of cycles of even length).
    static func isEven(_ p: [Int]) -> Bool {
        var seen = [Bool](repeating: false, count: p.count)
        var transpositions = 0
        for start in 0..<p.count where !seen[start] {
            var length = 0
            var i = start
            while !seen[i] {
                seen[i] = true
                i = p[i]
                length += 1
            }
            transpositions += length - 1
        }
        return transpositions % 2 == 0
    }
}
