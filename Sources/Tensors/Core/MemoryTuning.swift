#if canImport(Glibc)
import Glibc
#endif

/// Process-wide allocator settings for tensor workloads.
///
/// Every op allocates its output and every tape node its saved buffers: megabytes per op, freed a few ops later.
/// glibc serves blocks above its mmap threshold with fresh mmap'd pages and returns freed heap tops to the kernel,
/// so each large allocation pays page faults plus the kernel's page clearing on first touch (measured: about 30% of
/// an S4D block's forward + backward at the `lra` shape). Raising both thresholds keeps freed memory in the process
/// for reuse (the peak resident size stays what the workload needs).
public enum MemoryTuning {
    /// Raises glibc's mmap and trim thresholds (1 GiB, 4 GiB). Call once at program start; a no-op elsewhere.
    public static func retainFreedMemory() {
        #if canImport(Glibc)
        // mallopt is not in Swift's Glibc module: look it up. M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3 (malloc.h).
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }  // RTLD_DEFAULT
        let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
        _ = mallopt(-3, 1 << 30)
        _ = mallopt(-1, Int32.max)
        #endif
    }
}

/// An array of `count` scalars whose contents are unspecified (no zero fill): for outputs written in full.
@inline(__always)
public func uninitializedArray<T: TensorScalar>(_: T.Type, count: Int) -> [T] {
    [T](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
}
