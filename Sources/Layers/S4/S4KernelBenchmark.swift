import Foundation
import Tensors

/// Kernel-generation timings of the S4 family (`seqlab bench --ssm-kernels`): the Cauchy kernel (S4) and the
/// Vandermonde kernel (S4D) for H = 128 channels and N = 64 at L = 1K, 4K, 16K, forward and forward + backward
/// (Float32, median of `repeats` after a warm-up). Both are O(N L) per channel: the figures should grow about 4x
/// per step.
public enum S4KernelBenchmark {
    /// One row: kernel name, L, forward ms, forward + backward ms.
    public struct Row: Sendable {
        public let kernel: String
        public let length: Int
        public let forwardMilliseconds: Double
        public let forwardBackwardMilliseconds: Double
    }

    /// Times both kernels at each length.
    public static func run(channels: Int = 128, stateSize: Int = 64, lengths: [Int] = [1024, 4096, 16384], repeats: Int = 5) -> [Row] {
        var rows: [Row] = []
        var rng = RandomGenerator(seed: 0)
        let dplr = DPLRSSM<Float>(channels: channels, stateSize: stateSize, tiedSSMs: channels, dtMin: 0.001, dtMax: 0.1,
                                  directions: 1, kernelLength: lengths.max() ?? 1, learningRate: 1e-3, rng: &rng)
        let diagonal = DiagonalSSM<Float>(channels: channels, stateSize: stateSize, tiedSSMs: channels, initialization: .lin,
                                          discretization: .zoh, dtMin: 0.001, dtMax: 0.1, directions: 1, learningRate: 1e-3, rng: &rng)
        for length in lengths {
            // The kernels as `seqlab op` evaluates them, at exactly this length (no truncation of a longer kernel).
            // The kernels as `seqlab op` evaluates them, at exactly this length (no truncation of a longer kernel).
            let modes = stateSize / 2
            let s4: (Bool) -> Tensor<Float> = { _ in
                let (p, b, c) = (complexParts(dplr.p, shape: [channels, modes]), complexParts(dplr.b, shape: [channels, modes]),
                                 complexParts(dplr.c, shape: [channels, modes]))
                return s4DPLRKernel(logDt: dplr.invDt.reshaped([channels]), lambdaRe: dplr.aReal.exp() * -1, lambdaIm: dplr.aImag * -1,
                                    pRe: p.re, pIm: p.im, bRe: b.re, bIm: b.im, cRe: c.re, cIm: c.im, length: length)
            }
            let s4d: (Bool) -> Tensor<Float> = { _ in
                let c = complexParts(diagonal.c, shape: [channels, modes])
                return s4dKernel(logDt: diagonal.logDt, aRe: diagonal.logAReal.exp() * -1, aIm: diagonal.aImag, cRe: c.re, cIm: c.im,
                                 length: length)
            }
            for (name, kernel, parameters) in [("s4_dplr_kernel", s4, dplr.parameters), ("s4d_kernel", s4d, diagonal.parameters)] {
                let seed = [Float](repeating: 1e-2, count: channels * length)
                let backward = {
                    kernel(true).backward(seed: seed)
                    for p in parameters { p.tensor.zeroGrad() }
                }
                backward()
                let fwdBwd = median((0..<repeats).map { _ in milliseconds(backward) })
                let fwd = Tape.withoutGradients { median((0..<repeats).map { _ in milliseconds { _ = kernel(false) } }) }
                rows.append(Row(kernel: name, length: length, forwardMilliseconds: fwd, forwardBackwardMilliseconds: fwdBwd))
            }
        }
        return rows
    }
}
