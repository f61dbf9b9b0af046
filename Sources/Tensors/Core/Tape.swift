/// The autodiff tape: every differentiable op records one node (its inputs and a backward closure); `backward()`
/// sweeps the nodes reachable from the loss in reverse topological order, accumulates gradients into the inputs,
/// and releases each node (and so every buffer its closure captured) as soon as it has run.
///
/// A fused kernel (a scan, a chunked form, an FFT convolution) is one node like any other: it computes its outputs
/// itself and registers a closure that maps output gradients to input gradients:
///
///     let y = Tensor(shape: x.shape, data: out)                      // forward, computed by the kernel
///     Tape.record("exp", inputs: [x], outputs: [y]) { dy in        // dy: one gradient per output (nil if unused)
///         [multiply(dy[0]!, out)]                                    // one gradient per input (nil: none)
///     }
///
/// The closure must capture buffers (arrays), never the output tensors themselves.
public enum Tape {
    nonisolated(unsafe) private static var disabledDepth = 0

    /// Whether ops record nodes now (false inside `withoutGradients`).
    public static var isRecording: Bool { disabledDepth == 0 }

    /// Runs `body` without recording: evaluation, generation and optimiser updates.
    public static func withoutGradients<R>(_ body: () throws -> R) rethrows -> R {
        disabledDepth += 1
        defer { disabledDepth -= 1 }
        return try body()
    }

    /// Whether an op over these inputs must record a node (recording is on and some input needs a gradient).
    public static func needsGrad<T>(_ inputs: [Tensor<T>]) -> Bool {
        isRecording && inputs.contains { $0.requiresGrad }
    }

    /// Registers one op. `backward` receives the gradient of each output (nil where no gradient reached it) and
    /// returns the gradient of each input, in order (nil for an input that needs none). Does nothing unless
    /// `needsGrad(inputs)`.
    public static func record<T>(
        _ name: String, inputs: [Tensor<T>], outputs: [Tensor<T>],
        backward: @escaping (_ outputGrads: [[T]?]) -> [[T]?]
    ) {
        guard needsGrad(inputs) else { return }
        let node = TapeNode(name: name, inputs: inputs, outputs: outputs, backward: backward)
        for y in outputs {
            y.node = node
            y.requiresGrad = true
        }
    }

    /// Single-output form of `record`: `backward` maps the output gradient to the input gradients.
    public static func record<T>(
        _ name: String, inputs: [Tensor<T>], output: Tensor<T>, backward: @escaping (_ outputGrad: [T]) -> [[T]?]
    ) {
        record(name, inputs: inputs, outputs: [output]) { grads in backward(grads[0]!) }
    }

    /// Reverse-mode sweep from `root` with seed gradient `seed` (ones if nil). Gradients accumulate into leaves.
    static func backward<T>(from root: Tensor<T>, seed: [T]?) {
        let seedGrad = seed ?? [T](repeating: 1, count: root.count)
        precondition(seedGrad.count == root.count, "backward: seed of \(seedGrad.count) scalars for shape \(root.shape)")
        guard root.requiresGrad else {
            preconditionFailure("backward: the tensor does not depend on anything that requires a gradient")
        }
        root.accumulateGrad(seedGrad)
        guard let rootNode = root.node else { return }
        let order = topologicalOrder(from: rootNode)
        for node in order.reversed() { node.run() }
        for node in order { node.release() }
    }

    /// Releases the graph behind `root` without differentiating it: every node's inputs and captured buffers are
    /// freed, node by node (dropping a deep graph at once would free it by recursion), and no gradient is touched.
    static func discard<T>(from root: Tensor<T>) {
        guard let rootNode = root.node else { return }
        for node in topologicalOrder(from: rootNode) { node.release() }
    }

    /// Nodes reachable from `root`, each after all nodes it depends on (iterative DFS: graphs can be deep).
    private static func topologicalOrder<T>(from root: TapeNode<T>) -> [TapeNode<T>] {
        var order: [TapeNode<T>] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(TapeNode<T>, Int)] = [(root, 0)]
        visited.insert(ObjectIdentifier(root))
        while let (node, next) = stack.popLast() {
            if next < node.inputs.count {
                stack.append((node, next + 1))
                if let child = node.inputs[next].node, visited.insert(ObjectIdentifier(child)).inserted {
                    stack.append((child, 0))
                }
            } else {
                order.append(node)
            }
        }
        return order
    }
}

/// One recorded op: its inputs (held strongly until backward), its outputs (held weakly: no cycles) and its
/// backward closure.
final class TapeNode<T: TensorScalar> {
    let name: String
    private(set) var inputs: [Tensor<T>]
    private var outputs: [WeakTensor<T>]
    private var backward: (([[T]?]) -> [[T]?])?

    init(name: String, inputs: [Tensor<T>], outputs: [Tensor<T>], backward: @escaping ([[T]?]) -> [[T]?]) {
        self.name = name
        self.inputs = inputs
        self.outputs = outputs.map { WeakTensor(tensor: $0) }
        self.backward = backward
    }

    /// Runs the backward closure once and accumulates into the inputs; frees the closure (and the buffers it
    /// captured) at once. The inputs stay until `release`: an upstream node reads its outputs' gradients from them.
    func run() {
        guard let backward else {
            preconditionFailure("backward: '\(name)' was already differentiated; its buffers are released (run the forward pass again)")
        }
        let outputGrads: [[T]?] = outputs.map { weak in
            guard let y = weak.tensor else { return nil }
            defer { y.grad = nil }  // intermediate gradients are freed once consumed
            return y.grad
        }
        if outputGrads.contains(where: { $0 != nil }) {
            let inputGrads = backward(outputGrads)
            precondition(inputGrads.count == inputs.count, "backward of '\(name)' returned \(inputGrads.count) gradients for \(inputs.count) inputs")
            for (x, g) in zip(inputs, inputGrads) where x.requiresGrad {
                if let g { x.accumulateGrad(g) }
            }
        }
        self.backward = nil
    }

    /// Drops the inputs and the closure and detaches the outputs: the graph is gone, intermediates become constants.
    func release() {
        inputs = []
        backward = nil
        for weak in outputs {  // differentiated intermediates become constants
            weak.tensor?.node = nil
            weak.tensor?.requiresGrad = false
        }
        outputs = []
    }
}

struct WeakTensor<T: TensorScalar> {
    weak var tensor: Tensor<T>?
}

extension Tensor {
    /// Reverse-mode differentiation from this tensor. For a scalar loss the seed is 1; for any other tensor pass
    /// `seed` (the cotangent, same count). Gradients accumulate into the leaves' `grad`; the graph is released.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func backward(seed: [T]? = nil) {
        Tape.backward(from: self, seed: seed)
    }

    /// Drops the graph that produced this tensor without a backward pass (a forward pass run only to be measured or
    /// looked at): the buffers the tape kept for it are freed and no gradient changes.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func discardGraph() {
        Tape.discard(from: self)
    }
}
