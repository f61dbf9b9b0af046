import Foundation
import Training
import XCTest

/// `MemoryLimit`: the floors of `ModelMemory` are checked against what the process may use, the least of physical
/// memory, its control groups' limits (a Slurm job's `--mem`, a container's `--memory`) and `ulimit -v`; a run
/// refused on a Slurm node names the job's limit, not the node's memory.
final class MemoryLimitTests: XCTestCase {
    private var root: URL!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("memory-limit-\(UUID().uuidString)")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: root)
    }

    private func write(_ text: String, _ path: String) throws {
        let url = root.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: url, atomically: true, encoding: .utf8)
    }

    /// A Slurm job under cgroup v2: the limit is set on the job's group, an ancestor of the task's; "max" is none.
    func testASlurmJobsLimitIsFoundOnAnAncestorGroup() throws {
        try write("0::/system.slice/slurmstepd.scope/job_42/step_0/user/task_0\n", "proc/self/cgroup")
        try write("25 1 0:22 / /sys rw - sysfs sysfs rw\n30 25 0:26 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate\n",
                  "proc/self/mountinfo")
        let group = "sys/fs/cgroup/system.slice/slurmstepd.scope/job_42"
        try write("4294967296\n", "\(group)/memory.max")
        try write("max\n", "\(group)/step_0/memory.max")
        try write("max\n", "\(group)/step_0/user/task_0/memory.max")
        try write("max\n", "sys/fs/cgroup/memory.max")
        let limits = MemoryLimit.cgroupLimits(root: root.path + "/")
        XCTAssertEqual(limits, [MemoryLimit(bytes: 4294967296, source: "cgroup memory.max of /system.slice/slurmstepd.scope/job_42")])
        let limit = MemoryLimit.read(root: root.path + "/")
        XCTAssertEqual(limit.bytes, 4294967296)
        XCTAssertEqual(limit.description, "4.3 GB (cgroup memory.max of /system.slice/slurmstepd.scope/job_42)")
    }

    /// A container under cgroup v1: its group is the mount's root (a cgroup namespace), so the limit is read at the
    /// mount's top; v1's "no limit" (2^63 rounded to pages) is none, and other controllers' mounts are not read.
    func testAContainersV1LimitIsReadAtItsMountsTop() throws {
        try write("5:cpu:/docker/abc\n4:memory:/docker/abc\n0::/\n", "proc/self/cgroup")
        try write("""
            32 31 0:29 /docker/abc /sys/fs/cgroup/cpu ro - cgroup cgroup rw,cpu
            35 31 0:32 /docker/abc /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory
            41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw

            """, "proc/self/mountinfo")
        try write("2147483648\n", "sys/fs/cgroup/memory/memory.limit_in_bytes")
        try write("1000\n", "sys/fs/cgroup/cpu/memory.limit_in_bytes")
        XCTAssertEqual(MemoryLimit.cgroupLimits(root: root.path + "/"), [MemoryLimit(bytes: 2147483648, source: "cgroup memory.limit_in_bytes of /")])
        try write("9223372036854771712\n", "sys/fs/cgroup/memory/memory.limit_in_bytes")
        XCTAssertEqual(MemoryLimit.cgroupLimits(root: root.path + "/"), [])
        XCTAssertEqual(MemoryLimit.read(root: root.path + "/").source, "physical memory")
        // nothing readable: no cgroup limit
        try FileManager.default.removeItem(at: root.appendingPathComponent("proc"))
        XCTAssertEqual(MemoryLimit.cgroupLimits(root: root.path + "/"), [])
    }

    /// `seqlab train` under `ulimit -v 2 GB` (prlimit): a model whose floor fits the machine but not the limit
    /// (attention, d_model 1024 x 64 layers: 2.7e8 parameters, 4.3 GB kept) is refused in one line naming the limit.
    func testARunAboveItsAddressSpaceLimitIsRefusedNamingTheLimit() throws {
        guard FileManager.default.isExecutableFile(atPath: SeqlabCommand.url.path) else { throw XCTSkip("seqlab binary not built") }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/prlimit") else { throw XCTSkip("no prlimit") }
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let r = try SeqlabCommand.run(["train", "--task", "mqar", "--layer", "attention", "--d-model", "1024", "--n-layers", "64",
                                       "--max-steps", "1", "--out", "run"], in: root, timeout: 120, addressSpace: 2_000_000_000)
        XCTAssertEqual(r.status, 1, String(r.error.prefix(300)))
        XCTAssertTrue(r.error.hasPrefix("error: model: attention, d_model 1024, n_layers 64 has at least"), String(r.error.prefix(300)))
        XCTAssertTrue(r.error.hasSuffix("and this process may use 2.0 GB (ulimit -v)\n"), String(r.error.prefix(300)))
        XCTAssertEqual(r.error.split(separator: "\n").count, 1, String(r.error.prefix(300)))
    }
}
