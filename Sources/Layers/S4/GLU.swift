import Tensors

// The gated linear unit on the last axis (Dauphin et al., "Language Modeling with Gated Convolutional Networks",
// 2017; PyTorch's F.glu): x = [a, b] split in halves, y = a * sigmoid(b). The S4 block's output activation.
// One fused node: dy -> da = dy s, db = dy a s (1 - s), s = sigmoid(b).

extension Tensor {
    /// GLU over the last axis (even size 2H -> H): a * sigmoid(b) with [a, b] the two halves.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func glu() -> Tensor {
        let width = shape.last ?? 0
        precondition(width % 2 == 0 && width > 0, "glu: the last axis must be even, got shape \(shape)")
        let half = width / 2, rows = count / width
        var out = [T](repeating: 0, count: rows * half)
        var gate = [T](repeating: 0, count: rows * half)
        data.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { y in
                gate.withUnsafeMutableBufferPointer { s in
                    Parallel.forEachRange(rows, minimumChunk: 256) { range in
                        for r in range {
                            for j in 0..<half {
                                let g = 1 / (1 + T.exp(-x[r * width + half + j]))
                                s[r * half + j] = g
                                y[r * half + j] = x[r * width + j] * g
                            }
                        }
                    }
                }
            }
        }
        let result = Tensor(shape: Array(shape.dropLast()) + [half], data: out)
        let xData = data
        Tape.record("glu", inputs: [self], output: result) { dy in
            var dx = [T](repeating: 0, count: rows * width)
            xData.withUnsafeBufferPointer { x in
                gate.withUnsafeBufferPointer { s in
                    dy.withUnsafeBufferPointer { g in
                        dx.withUnsafeMutableBufferPointer { d in
                            Parallel.forEachRange(rows, minimumChunk: 256) { range in
                                for r in range {
                                    for j in 0..<half {
                                        let (sj, gj) = (s[r * half + j], g[r * half + j])
                                        d[r * width + j] = gj * sj
                                        d[r * width + half + j] = gj * x[r * width + j] * sj * (1 - sj)
                                    }
                                }
                            }
                        }
                    }
                }
            }
            return [dx]
        }
        return result
    }
}

/// GLU from basic tape ops (split, sigmoid, multiply): the reference `glu()` is tested against.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func referenceGLU<T: TensorScalar>(_ x: Tensor<T>) -> Tensor<T> {
    let half = x.shape.last! / 2
    let parts = x.split(axis: -1, sizes: [half, half])
    return parts[0] * parts[1].sigmoid()
}
