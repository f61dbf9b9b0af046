import Foundation

/// A 64-byte-aligned buffer whose memory is recycled: when it is freed its block goes back to a process-wide pool
/// and the next buffer of the same size reuses it. The fused kernels allocate the same large buffers (saved
/// activations, per-worker scratch) on every step; fresh multi-megabyte allocations are mmapped and page-faulted in
/// (and zeroed) on one thread every time, which cost 10-15% of a GAM step at the `long` shape. Not zeroed unless
/// asked: a kernel writes every entry before reading it.
public final class PooledBuffer<T>: @unchecked Sendable {
    /// The first scalar.
    public let pointer: UnsafeMutablePointer<T>
    /// The number of scalars.
    public let count: Int
    private let bytes: Int

    /// A buffer of `count` scalars from the pool (zero-filled if `zeroed`, else holding stale values).
    public init(count: Int, zeroed: Bool = false) {
        self.count = count
        bytes = max(1, count) * MemoryLayout<T>.stride
        let raw = BufferPool.shared.take(bytes)
        if zeroed { memset(raw, 0, bytes) }
        #if DEBUG
        if !zeroed { memset(raw, 0xFF, bytes) }  // NaN for floats: a read before a write shows in the debug tests
        #endif
        pointer = raw.bindMemory(to: T.self, capacity: max(1, count))
    }

    deinit { BufferPool.shared.give(UnsafeMutableRawPointer(pointer), bytes) }
}

/// Free blocks by exact size, up to `limit` bytes in all (beyond it, freed blocks go back to the system).
final class BufferPool: @unchecked Sendable {
    static let shared = BufferPool()
    private let lock = NSLock()
    private var free: [Int: [UnsafeMutableRawPointer]] = [:]
    private var cached = 0
    private let limit = 1 << 30

    func take(_ bytes: Int) -> UnsafeMutableRawPointer {
        lock.lock()
        if var blocks = free[bytes], let block = blocks.popLast() {
            free[bytes] = blocks
            cached -= bytes
            lock.unlock()
            return block
        }
        lock.unlock()
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, 64, bytes) == 0, let block = raw else { fatalError("out of memory (\(bytes) bytes)") }
        return block
    }

    func give(_ block: UnsafeMutableRawPointer, _ bytes: Int) {
        lock.lock()
        if cached + bytes <= limit {
            free[bytes, default: []].append(block)
            cached += bytes
            lock.unlock()
        } else {
            lock.unlock()
            Foundation.free(block)
        }
    }
}

/// An array of `count` scalars whose contents the caller overwrites entirely (no zeroing pass).
@inline(__always)
func overwrittenArray<T>(count: Int) -> [T] {
    [T](unsafeUninitializedCapacity: count) { buffer, initialized in
        #if DEBUG
        if let base = buffer.baseAddress { memset(base, 0xFF, count * MemoryLayout<T>.stride) }  // NaN for floats (see above)
        #endif
        initialized = count
    }
}
