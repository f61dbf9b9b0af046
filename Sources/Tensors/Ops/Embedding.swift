// Embedding lookup: y[..., :] = table[index, :]; the gradient scatters back into the rows used.

extension Tensor {
    /// Rows of this table [V, D] picked by `indices` (any leading shape `indexShape`): result [indexShape..., D].
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func embedding(_ indices: [Int], indexShape: [Int]) -> Tensor {
        precondition(rank == 2, "embedding: the table must be [V, D], got \(shape)")
        precondition(elementCount(indexShape) == indices.count, "embedding: \(indices.count) indices for index shape \(indexShape)")
        let (v, d) = (shape[0], shape[1])
        var out = [T](repeating: 0, count: indices.count * d)
        for (i, index) in indices.enumerated() {
            precondition(index >= 0 && index < v, "embedding: index \(index) is outside 0..<\(v)")
            for j in 0..<d { out[i * d + j] = data[index * d + j] }
        }
        let result = Tensor(shape: indexShape + [d], data: out)
        Tape.record("embedding", inputs: [self], output: result) { dy in
            var dTable = [T](repeating: 0, count: v * d)
            for (i, index) in indices.enumerated() {
                for j in 0..<d { dTable[index * d + j] += dy[i * d + j] }
            }
            return [dTable]
        }
        return result
    }
}
