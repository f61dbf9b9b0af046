import CKernels
import Dispatch
import Foundation

/// Wall time of `body` in milliseconds.
public func milliseconds(_ body: () -> Void) -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
}

/// The median of a non-empty list.
public func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// Resident memory of this process, from /proc (Linux).
public enum MemoryProbe {
    /// Resets the peak resident set size (VmHWM) to the current one.
    public static func resetPeak() {
        try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
    }
    /// Peak resident set size in MB (VmHWM).
    public static func peakResidentMB() -> Double { field("VmHWM:") }
    /// Current resident set size in MB (VmRSS).
    public static func residentMB() -> Double { field("VmRSS:") }
    /// Bytes allocated and not yet freed, over all threads' arenas (glibc's `mallinfo2`); nil where the allocator
    /// cannot say. Unlike the resident size it falls when memory is freed, so the difference across a computation is
    /// what that computation still holds.
    public static func heapInUseBytes() -> Int? {
        let bytes = sl_heap_in_use_bytes()
        return bytes >= 0 ? Int(bytes) : nil
    }

    private static func field(_ key: String) -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return .nan }
        for line in status.split(separator: "\n") where line.hasPrefix(key) {
            let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? .nan
            return kb / 1024
        }
        return .nan
    }
}
