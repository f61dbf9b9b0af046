import Tensors

/// The smallest real recurrent layer: a diagonal linear recurrence per channel (an LRU/S4D-Real in miniature),
/// kept as the worked example of how to add a layer and as the harnesses' own test subject.
///
///     h_t = a * h_{t-1} + b * x_t,   a = sigmoid(a_logit) in (0, 1)         (diagonal over D channels)
///     y_t = (c * h_t + d * x_t) W_out
///
/// The scan over t is one fused tape node (`diagonalScan`) with a hand-written backward pass. The entry points carry
/// `@_specialize(where T == Float)`: a layer reached through `any SequenceLayer<Float>` otherwise runs unspecialised
/// generic code (about 10x slower); every layer does the same.
public final class DiagonalRecurrence<T: TensorScalar>: SequenceLayer {
    public typealias Scalar = T
    public let dModel: Int
    public let aLogit, b, c, d: Tensor<T>
    public let output: Linear<T>

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public init(dModel: Int, rng: inout RandomGenerator) {
        self.dModel = dModel
        // a in (0.5, 0.95): a spread of memory lengths.
        aLogit = Tensor((0..<dModel).map { i in T.log(1 / (1 / (0.5 + 0.45 * T(i + 1) / T(dModel)) - 1)) }, requiresGrad: true)
        b = Tensor.randn([dModel], std: 1, using: &rng, requiresGrad: true)
        c = Tensor.randn([dModel], std: 1, using: &rng, requiresGrad: true)
        d = Tensor.randn([dModel], std: 1, using: &rng, requiresGrad: true)
        output = Linear(inputSize: dModel, outputSize: dModel, bias: false, rng: &rng)
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func callAsFunction(_ x: Tensor<T>) -> Tensor<T> {
        let h = diagonalScan(x * b, decay: aLogit.sigmoid())  // [B, L, D]
        return output(h * c + x * d)
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func initialState(batchSize: Int) -> Tensor<T> { Tensor.zeros([batchSize, dModel]) }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func step(_ x: Tensor<T>, state h: inout Tensor<T>) -> Tensor<T> {
        h = aLogit.sigmoid() * h + b * x
        return output(h * c + x * d)
    }

    public var parameters: [NamedParameter<T>] {
        [NamedParameter("a_logit", aLogit, tags: .ssm), NamedParameter("b", b), NamedParameter("c", c),
         NamedParameter("d", d)] + output.parameters("out_proj")
    }

    /// Per token and channel: b x (1), the scan h_t = a h_{t-1} + b x_t (2, none at t = 0) and c h + d x (3); then the
    /// output linear (2 B L D^2). sigmoid(a_logit), a parameter transform, is not counted.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func work(batch: Int, length: Int) -> LayerWork? {
        let rows = batch * length
        return .elementwise(rows * dModel, flops: 4) + .elementwise(batch * max(length - 1, 0) * dModel, flops: 2)
            + .linear(rows: rows, inputs: dModel, outputs: dModel, bias: output.bias != nil)
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func stateSize(sequenceLength: Int) -> Int { dModel }
}

extension Tensor {
    /// A rank-1 tensor of the given scalars.
    convenience init(_ values: [T], requiresGrad: Bool = false) {
        self.init(shape: [values.count], data: values, requiresGrad: requiresGrad)
    }
}

/// h_t = a * h_{t-1} + x_t over t for x [B, L, D], a [D], h_0 = 0: one fused node.
/// Backward (a reverse scan): G_t = dh_t + a * G_{t+1};  dx_t = G_t;  da = sum_{b,t} G_t * h_{t-1}.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func diagonalScan<T: TensorScalar>(_ x: Tensor<T>, decay a: Tensor<T>) -> Tensor<T> {
    precondition(x.rank == 3 && a.shape == [x.shape[2]], "diagonalScan: x \(x.shape) with decay \(a.shape) (needs [B, L, D] and [D])")
    let (batch, length, width) = (x.shape[0], x.shape[1], x.shape[2])
    var h = x.data
    let decay = a.data
    for bi in 0..<batch {
        for t in 1..<max(length, 1) {
            let row = (bi * length + t) * width, prev = row - width
            for i in 0..<width { h[row + i] += decay[i] * h[prev + i] }  // [D], contiguous
        }
    }
    let result = Tensor(shape: x.shape, data: h)
    Tape.record("diagonal_scan", inputs: [x, a], output: result) { dh in
        var g = dh
        var da = [T](repeating: 0, count: width)
        for bi in 0..<batch {
            for t in stride(from: length - 1, through: 0, by: -1) {
                let row = (bi * length + t) * width
                if t + 1 < length { for i in 0..<width { g[row + i] += decay[i] * g[row + width + i] } }
                if t > 0 { for i in 0..<width { da[i] += g[row + i] * h[row - width + i] } }
            }
        }
        return [g, da]
    }
    return result
}

/// Registry entry for `diagonal`.
public enum DiagonalRecurrenceFactory: LayerFactory {
    public static let name = "diagonal"
    public static let plotColor = "#C4B000"
    public static let summary = "diagonal linear recurrence h_t = a h_{t-1} + b x_t (worked example, harness test layer)"
    public static let options: [LayerOptionSpec] = []
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func make<T: TensorScalar>(dModel: Int, options: OptionValues, context: LayerContext,
                                             rng: inout RandomGenerator) throws -> any SequenceLayer<T> {
        DiagonalRecurrence<T>(dModel: dModel, rng: &rng)
    }
}
