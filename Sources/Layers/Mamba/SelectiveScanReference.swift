import Tensors

/// The selective scan written the obvious way, from basic tape ops: discretise everything to [B, L, D, N], then
/// step through time one token at a time (mamba's `selective_scan_ref`). Its gradients come from the tape.
/// Slow (L tape nodes per step, O(L^2) gradient traffic through the slices): for tests at small sizes only.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func referenceSelectiveScan<T: TensorScalar>(
    u: Tensor<T>, delta: Tensor<T>, A: Tensor<T>, B: Tensor<T>, C: Tensor<T>,
    D: Tensor<T>? = nil, z: Tensor<T>? = nil, deltaBias: Tensor<T>? = nil,
    deltaSoftplus: Bool = true, negativeEigenvalues: Bool = false
) -> (y: Tensor<T>, finalState: Tensor<T>) {
    let (batch, length, channels, stateSize) = (u.shape[0], u.shape[1], u.shape[2], A.shape[1])
    var dt = deltaBias.map { delta + $0 } ?? delta                                   // [B, L, D]
    if deltaSoftplus { dt = dt.softplus() }
    var dA = (dt.reshaped([batch, length, channels, 1]) * A).exp()                  // [B, L, D, N]
    if negativeEigenvalues { dA = dA * 2 - 1 }
    let dBu = (dt * u).reshaped([batch, length, channels, 1]) * B.reshaped([batch, length, 1, stateSize])  // [B, L, D, N]
    var x = Tensor<T>.zeros([batch, channels, stateSize])                           // [B, D, N]
    var outputs: [Tensor<T>] = []
    for t in 0..<length {
        let at = dA.slice(axis: 1, t..<(t + 1)).reshaped([batch, channels, stateSize])
        let bu = dBu.slice(axis: 1, t..<(t + 1)).reshaped([batch, channels, stateSize])
        x = at * x + bu
        let ct = C.slice(axis: 1, t..<(t + 1)).reshaped([batch, 1, stateSize])
        outputs.append((x * ct).sum(axis: 2).reshaped([batch, 1, channels]))         // [B, 1, D]
    }
    var y = length > 0 ? Tensor.concatenate(outputs, axis: 1) : Tensor<T>.zeros(u.shape)  // [B, L, D]
    if let D { y = y + u * D }
    if let z { y = y * z.silu() }
    return (y, x)
}
