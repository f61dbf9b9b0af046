import Tensors

/// Several affine maps of ONE input as one tape node: y_i = x W_i^T + b_i (nn.Linear layout, W_i [out_i, in]) for
/// every map i, the same numbers as calling each `Linear` on x. What the node saves is in the backward: x's gradient
/// dx = sum_i dy_i W_i accumulates in one buffer through the GEMMs' beta (one write of dx, where separate maps write a
/// dx_i each and the tape adds them: 3 more passes over [rows, in] per map), and each bias is added in its GEMM's
/// output pass, not as a broadcast node of its own. Outputs that receive no gradient are skipped.
///     forward:  y_i = x W_i^T (+ b_i)                       [rows, out_i]
///     backward: dx = sum_i dy_i W_i,  dW_i = dy_i^T x,  db_i = column sums of dy_i
/// Used wherever a layer projects the same x several times: attention, FoX, GLA, RetNet, HGRN2, the DeltaNet family.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func linearGroup<T: TensorScalar>(_ x: Tensor<T>, _ maps: [Linear<T>]) -> [Tensor<T>] {
    precondition(!maps.isEmpty, "linearGroup: no maps")
    let inputs = x.shape.last ?? 0
    for m in maps { precondition(m.inputSize == inputs, "linearGroup: input \(x.shape) for a map of \(m.inputSize) inputs") }
    let rows = inputs == 0 ? 0 : x.count / inputs
    let lead = Array(x.shape.dropLast())
    let xData = x.data
    let weights = maps.map(\.weight.data), biases = maps.map { $0.bias?.data }
    let outputs: [Tensor<T>] = maps.indices.map { i in
        let n = maps[i].outputSize
        var out = uninitializedScalars(T.self, count: rows * n)        // every element written (beta 0)
        if rows * n > 0 {
            xData.withUnsafeBufferPointer { xp in weights[i].withUnsafeBufferPointer { wp in out.withUnsafeMutableBufferPointer { op in
                T.gemm(transA: false, transB: true, m: rows, n: n, k: inputs, alpha: 1, a: xp.baseAddress!, lda: inputs,
                       b: wp.baseAddress!, ldb: inputs, beta: 0, c: op.baseAddress!, ldc: n)     // rows > 0 means inputs > 0
                if let b = biases[i] {
                    b.withUnsafeBufferPointer { bp in
                        for r in 0..<rows { let row = op.baseAddress! + r * n; for j in 0..<n { row[j] += bp[j] } }
                    }
                }
            } } }
        }
        return Tensor(shape: lead + [n], data: out)
    }
    let parameters = maps.flatMap { [$0.weight] + ($0.bias.map { [$0] } ?? []) }
    let needX = x.requiresGrad
    let needs = parameters.map(\.requiresGrad)
    Tape.record("linear_group", inputs: [x] + parameters, outputs: outputs) { grads in
        var dx: [T]? = nil
        var parameterGrads: [[T]?] = []
        for (i, map) in maps.enumerated() {
            let n = map.outputSize
            let (needW, needB) = (needs[parameterGrads.count], map.bias != nil && needs[parameterGrads.count + 1])
            guard let dy = grads[i] else {
                parameterGrads.append(nil)
                if map.bias != nil { parameterGrads.append(nil) }
                continue
            }
            var dW: [T]? = needW ? [T](repeating: 0, count: n * inputs) : nil        // dW_i = dy_i^T x   [out_i, in]
            var db: [T]? = needB ? [T](repeating: 0, count: n) : nil                 // db_i = column sums of dy_i
            if rows > 0 && n > 0 && inputs > 0 {
                dy.withUnsafeBufferPointer { gp in xData.withUnsafeBufferPointer { xp in weights[i].withUnsafeBufferPointer { wp in
                    let (g, xs, w) = (gp.baseAddress!, xp.baseAddress!, wp.baseAddress!)
                    if needX {                                                           // dx (+)= dy_i W_i   [rows, in]
                        let first = dx == nil
                        if first { dx = uninitializedScalars(T.self, count: rows * inputs) }
                        dx!.withUnsafeMutableBufferPointer { dp in
                            T.gemm(transA: false, transB: false, m: rows, n: inputs, k: n, alpha: 1, a: g, lda: n,
                                   b: w, ldb: inputs, beta: first ? 0 : 1, c: dp.baseAddress!, ldc: inputs)
                        }
                    }
                    dW?.withUnsafeMutableBufferPointer { dp in
                        T.gemm(transA: true, transB: false, m: n, n: inputs, k: rows, alpha: 1, a: g, lda: n,
                               b: xs, ldb: inputs, beta: 0, c: dp.baseAddress!, ldc: inputs)
                    }
                    db?.withUnsafeMutableBufferPointer { bp in
                        for r in 0..<rows { let row = g + r * n; for j in 0..<n { bp[j] += row[j] } }
                    }
                } } }
            }
            parameterGrads.append(dW)
            if map.bias != nil { parameterGrads.append(db) }
        }
        if needX && dx == nil { dx = [T](repeating: 0, count: rows * inputs) }
        return [dx] + parameterGrads
    }
    return outputs
}
