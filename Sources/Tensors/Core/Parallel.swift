import Dispatch
import Foundation

/// Data parallelism over independent work items (batch x heads, channel blocks), on all cores.
public enum Parallel {
    /// The number of worker threads: `SEQLAB_THREADS` if set, else the number of active cores.
    public static let threadCount: Int = {
        if let s = ProcessInfo.processInfo.environment["SEQLAB_THREADS"], let n = Int(s), n > 0 { return n }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Runs `body(i)` for i in 0..<count, spread over the cores, with OpenBLAS single-threaded inside
    /// (no oversubscription). Runs inline when there is one item or one thread.
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        if count <= 1 || threadCount == 1 {
            for i in 0..<count { body(i) }
            return
        }
        BLASThreads.singleThreaded {
            DispatchQueue.concurrentPerform(iterations: count) { body($0) }
        }
    }

    /// Splits 0..<count into about `threadCount * 4` contiguous ranges and runs `body` on each in parallel.
    public static func forEachRange(_ count: Int, minimumChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        let chunks = max(1, min(threadCount * 4, count / max(1, minimumChunk)))
        if chunks == 1 { body(0..<count); return }
        let size = (count + chunks - 1) / chunks
        forEach(chunks) { c in
            let start = c * size
            let end = min(count, start + size)
            if start < end { body(start..<end) }
        }
    }
}
