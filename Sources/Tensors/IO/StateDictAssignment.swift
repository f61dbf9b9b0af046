extension SafeTensors {
    /// Writes the tensors of this file into `targets` (name, tensor) in their own precision: every target must be
    /// present with its exact shape, and no other tensor may be, except the names in `extra`; otherwise a one-line
    /// error that starts with `owner` and names the tensor, with no target changed. The one loader behind
    /// `seqlab layer` (a layer's state_dict) and `seqlab train --init-from` (a model's).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func assign<T: TensorScalar>(
        to targets: [(name: String, tensor: Tensor<T>)], extra: Set<String> = [], owner: String, shapeNote: String = ""
    ) throws {
        let known = Set(targets.map(\.name)).union(extra)
        if let stray = names.first(where: { !known.contains($0) }) {
            let keys = targets.map(\.name)
            let shown = keys.prefix(12).joined(separator: ", ") + (keys.count > 12 ? ", ... (\(keys.count) in all)" : "")
            throw SequenceLabError("\(owner): unexpected tensor '\(stray)' (its state_dict keys: \(shown))")
        }
        var values: [(Tensor<T>, [T])] = []
        for (name, tensor) in targets {
            guard let stored = arrays[name] else { throw SequenceLabError("\(owner): missing tensor '\(name)' \(tensor.shape)") }
            guard stored.shape == tensor.shape else {
                throw SequenceLabError("\(owner): tensor '\(name)' has shape \(stored.shape), it needs \(tensor.shape)\(shapeNote)")
            }
            values.append((tensor, try self.tensor(name, as: T.self).data))
        }
        for (tensor, data) in values { tensor.data = data }
    }
}
