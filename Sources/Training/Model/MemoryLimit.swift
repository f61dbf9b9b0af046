import Foundation

/// The memory this process may use, and what sets it: the least of
/// - the machine's physical memory;
/// - the memory limit of every control group the process is in, and of their ancestors (cgroup v2 `memory.max`,
///   cgroup v1 `memory.limit_in_bytes`): what Slurm's `--mem`, `docker run --memory` and systemd's `MemoryMax` set,
///   and what the kernel's out-of-memory killer enforces, with a kill and no message;
/// - the address-space and data-segment limits (`ulimit -v`, `ulimit -d`), past which allocation fails.
/// `ModelMemory` checks its floors against it, so that a run refused on a Slurm node names the job's limit, not the
/// node's memory.
public struct MemoryLimit: Sendable, Equatable, CustomStringConvertible {
    /// Bytes the process may use.
    public var bytes: Double
    /// What sets the limit, for messages: "physical memory", "cgroup memory.max of /path", "ulimit -v".
    public var source: String

    public init(bytes: Double, source: String) {
        (self.bytes, self.source) = (bytes, source)
    }

    /// "25.3 GB (physical memory)".
    public var description: String { "\(ModelMemory.gigabytes(bytes)) (\(source))" }

    /// This process's limit, read once (limits do not change while a run trains).
    public static let process: MemoryLimit = read(root: "/")

    /// The limit as seen from the file-system root `root`, ending in "/" ("/" on a machine; a prepared tree in
    /// tests): the least of the machine's physical memory, the cgroup limits under `root` and (for `root` "/") the
    /// process's rlimits.
    public static func read(root: String) -> MemoryLimit {
        var candidates = [MemoryLimit(bytes: Double(sysconf(Int32(_SC_PHYS_PAGES))) * Double(sysconf(Int32(_SC_PAGESIZE))),
                                      source: "physical memory")]
        candidates += cgroupLimits(root: root)
        if root == "/" {
            for (resource, name) in [(RLIMIT_AS, "ulimit -v"), (RLIMIT_DATA, "ulimit -d")] {
                var limit = rlimit()
                if getrlimit(__rlimit_resource_t(resource.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max {
                    candidates.append(MemoryLimit(bytes: Double(limit.rlim_cur), source: name))
                }
            }
        }
        return candidates.min { $0.bytes < $1.bytes }!
    }

    /// Every memory limit set on the process's control groups or their ancestors, from `root/proc/self/cgroup` and
    /// the cgroup mounts of `root/proc/self/mountinfo` (cgroup2, and cgroup v1 with the memory controller). A mount's
    /// root (a container's cgroup namespace) is stripped from the process's path; a path outside the mount's root
    /// is read from the mount's top. "max" and v1's page-rounded 2^63 are no limit.
    public static func cgroupLimits(root: String) -> [MemoryLimit] {
        func read(_ path: String) -> String? { try? String(contentsOfFile: root + path, encoding: .utf8) }
        guard let membership = read("proc/self/cgroup"), let mounts = read("proc/self/mountinfo") else { return [] }
        var limits: [MemoryLimit] = []
        for line in mounts.split(separator: "\n") {
            // id parent major:minor root mount-point options [optional fields] - type source super-options
            let halves = line.components(separatedBy: " - ")
            guard halves.count == 2 else { continue }
            let fields = halves[0].split(separator: " "), tail = halves[1].split(separator: " ")
            guard fields.count >= 5, tail.count >= 3 else { continue }
            let (mountRoot, mountPoint, type) = (String(fields[3]), String(fields[4]), tail[0])
            let file: String, groupPath: String?
            if type == "cgroup2" {
                file = "memory.max"
                groupPath = membership.split(separator: "\n").first { $0.hasPrefix("0::") }.map { String($0.dropFirst(3)) }
            } else if type == "cgroup", tail[2].split(separator: ",").contains("memory") {
                file = "memory.limit_in_bytes"
                groupPath = membership.split(separator: "\n").lazy.compactMap { entry -> String? in
                    let parts = entry.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
                    return parts.count == 3 && parts[1].split(separator: ",").contains("memory") ? String(parts[2]) : nil
                }.first
            } else {
                continue
            }
            guard var path = groupPath else { continue }
            path = mountRoot == "/" ? path : (path == mountRoot || path.hasPrefix(mountRoot + "/") ? String(path.dropFirst(mountRoot.count)) : "/")
            // the group and each ancestor up to the mount's top
            var components = path.split(separator: "/").map(String.init)
            while true {
                let directory = ([mountPoint] + components).joined(separator: "/")
                if let text = read(String(directory.drop { $0 == "/" }) + "/" + file),
                   let bytes = Double(text.trimmingCharacters(in: .whitespacesAndNewlines)), bytes < 0x1p62 {
                    limits.append(MemoryLimit(bytes: bytes, source: "cgroup \(file) of \(components.isEmpty ? "/" : "/" + components.joined(separator: "/"))"))
                }
                if components.isEmpty { break }
                components.removeLast()
            }
        }
        return limits
    }
}
