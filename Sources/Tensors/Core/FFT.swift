import CFFTW
import Foundation

let singlePrecisionPlans = RealFFTPlanCache<Float>()
let doublePrecisionPlans = RealFFTPlanCache<Double>()

/// FFTW plans for batches of real FFTs, created once per (length, batch count) and cached.
///
/// `forward` maps `howMany` contiguous real rows of length n to `howMany` contiguous rows of n/2 + 1 complex
/// numbers (interleaved re, im); `inverse` maps them back, unnormalised (divide by n). Plans are made with
/// FFTW_MEASURE on 64-byte-aligned scratch; callers pass buffers from `AlignedBuffer` so that FFTW's new-array
/// execute sees the same alignment. Planning is serialised by a lock; executing is thread-safe.
public final class RealFFTPlanCache<T: TensorScalar>: @unchecked Sendable {
    private struct Key: Hashable { let n: Int; let howMany: Int; let forward: Bool }
    private var plans: [Key: OpaquePointer] = [:]
    private let lock = NSLock()

    init() {}

    private var isSingle: Bool { T.self == Float.self }

    private func plan(_ key: Key) -> OpaquePointer {
        lock.lock()
        defer { lock.unlock() }
        if let p = plans[key] { return p }
        let n = key.n, complexCount = n / 2 + 1
        let real = AlignedBuffer<T>(count: n * key.howMany)
        let spectrum = AlignedBuffer<T>(count: 2 * complexCount * key.howMany)
        var dims = [Int32(n)]
        let flags = UInt32(FFTW_MEASURE)
        let p: OpaquePointer?
        if isSingle {
            let r = UnsafeMutableRawPointer(real.pointer).assumingMemoryBound(to: Float.self)
            let c = UnsafeMutableRawPointer(spectrum.pointer).assumingMemoryBound(to: fftwf_complex.self)
            p = key.forward
                ? fftwf_plan_many_dft_r2c(1, &dims, Int32(key.howMany), r, nil, 1, Int32(n), c, nil, 1, Int32(complexCount), flags)
                : fftwf_plan_many_dft_c2r(1, &dims, Int32(key.howMany), c, nil, 1, Int32(complexCount), r, nil, 1, Int32(n), flags)
        } else {
            let r = UnsafeMutableRawPointer(real.pointer).assumingMemoryBound(to: Double.self)
            let c = UnsafeMutableRawPointer(spectrum.pointer).assumingMemoryBound(to: fftw_complex.self)
            p = key.forward
                ? fftw_plan_many_dft_r2c(1, &dims, Int32(key.howMany), r, nil, 1, Int32(n), c, nil, 1, Int32(complexCount), flags)
                : fftw_plan_many_dft_c2r(1, &dims, Int32(key.howMany), c, nil, 1, Int32(complexCount), r, nil, 1, Int32(n), flags)
        }
        guard let made = p else { fatalError("FFTW could not plan a length-\(n) transform") }
        plans[key] = made
        return made
    }

    /// Real rows [howMany, n] -> complex rows [howMany, n/2 + 1] (interleaved re, im).
    /// FFTW may overwrite `input` only for c2r; r2c leaves it intact.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forward(n: Int, howMany: Int, input: UnsafeMutablePointer<T>, output: UnsafeMutablePointer<T>) {
        let p = plan(Key(n: n, howMany: howMany, forward: true))
        if isSingle {
            fftwf_execute_dft_r2c(p, UnsafeMutableRawPointer(input).assumingMemoryBound(to: Float.self), UnsafeMutableRawPointer(output).assumingMemoryBound(to: fftwf_complex.self))
        } else {
            fftw_execute_dft_r2c(p, UnsafeMutableRawPointer(input).assumingMemoryBound(to: Double.self), UnsafeMutableRawPointer(output).assumingMemoryBound(to: fftw_complex.self))
        }
    }

    /// Complex rows [howMany, n/2 + 1] -> real rows [howMany, n], unnormalised. Destroys `input`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverse(n: Int, howMany: Int, input: UnsafeMutablePointer<T>, output: UnsafeMutablePointer<T>) {
        let p = plan(Key(n: n, howMany: howMany, forward: false))
        if isSingle {
            fftwf_execute_dft_c2r(p, UnsafeMutableRawPointer(input).assumingMemoryBound(to: fftwf_complex.self), UnsafeMutableRawPointer(output).assumingMemoryBound(to: Float.self))
        } else {
            fftw_execute_dft_c2r(p, UnsafeMutableRawPointer(input).assumingMemoryBound(to: fftw_complex.self), UnsafeMutableRawPointer(output).assumingMemoryBound(to: Double.self))
        }
    }
}

/// A zero-initialised, 64-byte-aligned scratch buffer, freed when it goes out of scope.
public final class AlignedBuffer<T>: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<T>
    public let count: Int

    /// `zeroed: false` skips the zero fill, for buffers that are written in full before being read.
    public init(count: Int, zeroed: Bool = true) {
        self.count = count
        var raw: UnsafeMutableRawPointer?
        let bytes = max(1, count) * MemoryLayout<T>.stride
        guard posix_memalign(&raw, 64, bytes) == 0, let r = raw else { fatalError("out of memory (\(bytes) bytes)") }
        if zeroed { memset(r, 0, bytes) }
        pointer = r.bindMemory(to: T.self, capacity: max(1, count))
    }

    deinit { free(pointer) }
}
