import Tensors

/// Sampling helpers written out here (rather than the standard library's `shuffled(using:)`, whose algorithm may
/// change between Swift versions) so that a seed gives the same data on every toolchain.
extension RandomGenerator {
    /// Uniform integer in `range` (both ends included), like Python's `random.randint(a, b)`.
    mutating func int(in range: ClosedRange<Int>) -> Int {
        range.lowerBound + int(below: range.upperBound - range.lowerBound + 1)
    }

    /// A uniformly random element of a non-empty collection.
    mutating func element<C: RandomAccessCollection>(of items: C) -> C.Element where C.Index == Int {
        items[items.startIndex + int(below: items.count)]
    }

    /// Fisher-Yates shuffle in place.
    mutating func shuffle<T>(_ items: inout [T]) {
        var i = items.count - 1
        while i > 0 {
            let j = int(below: i + 1)
            items.swapAt(i, j)
            i -= 1
        }
    }

    /// `k` distinct values from `0..<n` in random order (a partial Fisher-Yates shuffle; O(k) memory when k << n).
    mutating func distinct(_ k: Int, below n: Int) -> [Int] {
        precondition(k <= n, "cannot draw \(k) distinct values below \(n)")
        var swapped: [Int: Int] = [:]
        var out: [Int] = []
        out.reserveCapacity(k)
        for i in 0..<k {
            let j = i + int(below: n - i)
            let vj = swapped[j] ?? j
            swapped[j] = swapped[i] ?? i
            out.append(vj)
        }
        return out
    }

    /// An index drawn with probability proportional to `weights[i]` (non-negative, positive sum).
    mutating func index(weightedBy weights: [Double]) -> Int {
        let total = weights.reduce(0, +)
        precondition(total > 0, "weights must have a positive sum")
        var u = uniform() * total
        for (i, w) in weights.enumerated() where w > 0 {
            u -= w
            if u < 0 { return i }
        }
        return weights.lastIndex(where: { $0 > 0 })!
    }
}
