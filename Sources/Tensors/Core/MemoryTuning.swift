import CKernels

/// Process-wide allocator settings for tensor workloads, applied when the library loads (CKernels,
/// `malloc_tuning.c`): every op allocates its output and every tape node its saved buffers, megabytes per op freed a
/// few ops later; glibc's defaults would page-fault each large block in afresh (measured: about 30% of an S4D block's
/// forward + backward at `lra`). The mmap threshold is raised to 1 GiB and trimming turned off, so freed memory is
/// reused; SEQLAB_MALLOC=system keeps glibc's defaults.
public enum MemoryTuning {
    /// What was applied at load, in one line.
    public static var note: String { String(cString: sl_malloc_tuning_note()) }
}

/// An array of `count` scalars whose contents are unspecified (no zero fill): for outputs written in full.
@inline(__always)
@_specialize(where T == Float)
@_specialize(where T == Double)
public func uninitializedArray<T: TensorScalar>(_: T.Type, count: Int) -> [T] {
    [T](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
}
