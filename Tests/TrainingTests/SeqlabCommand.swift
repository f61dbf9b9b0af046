import Foundation
import Tensors
import XCTest

/// Runs the seqlab executable built next to the test bundle (`swift build --build-tests` builds it).
enum SeqlabCommand {
    /// The executable's URL.
    static var url: URL {
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        while url.path != "/" && !FileManager.default.isExecutableFile(atPath: url.appendingPathComponent("seqlab").path) {
            url.deleteLastPathComponent()
        }
        return url.appendingPathComponent("seqlab")
    }

    /// Runs `seqlab ARGUMENTS` in `directory` (SEQLAB_THREADS=1), reading its stdout and stderr to the end, and
    /// returns its exit status (the signal number if a signal ended it, as Foundation's Process reports it). With
    /// `timeout`, the process group is killed after that many seconds (`timedOut`). Spawned with posix_spawn and
    /// reaped with waitpid rather than through Foundation's Process: Process.waitUntilExit on Linux can miss a
    /// child's exit and wait forever (seen once in this suite: the child gone, the test process sleeping).
    /// `addressSpace`: the child's `ulimit -v` in bytes (util-linux's prlimit, which execs in place).
    @discardableResult
    static func run(_ arguments: [String], in directory: URL, timeout: TimeInterval? = nil, addressSpace: Int? = nil)
        throws -> (status: Int32, output: String, error: String, timedOut: Bool) {
        var environment = ProcessInfo.processInfo.environment
        environment["SEQLAB_THREADS"] = "1"
        // env -C DIR: the working directory of the child (posix_spawn has no portable chdir action); env execs seqlab
        // in place, so the spawned pid is seqlab's.
        let argv = (addressSpace.map { ["/usr/bin/prlimit", "--as=\($0)", "--"] } ?? [])
            + ["/usr/bin/env", "-C", directory.path, url.path] + arguments
        let envp = environment.map { "\($0.key)=\($0.value)" }
        var out: [Int32] = [0, 0], err: [Int32] = [0, 0]
        guard pipe(&out) == 0, pipe(&err) == 0 else { throw SequenceLabError("SeqlabCommand: pipe failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, out[1], 1)
        posix_spawn_file_actions_adddup2(&actions, err[1], 2)
        for fd in out + err { posix_spawn_file_actions_addclose(&actions, fd) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))  // its own process group, for the timeout
        posix_spawnattr_setpgroup(&attributes, 0)
        var pid: pid_t = 0
        let spawned = withCStrings(argv) { cArgv in withCStrings(envp) { cEnvp in
            posix_spawn(&pid, argv[0], &actions, &attributes, cArgv, cEnvp)
        } }
        close(out[1])
        close(err[1])
        guard spawned == 0 else {
            close(out[0]); close(err[0])
            throw SequenceLabError("SeqlabCommand: posix_spawn failed (\(spawned))")
        }
        let finished = Locked(false), timedOut = Locked(false), child = pid, outRead = out[0]
        if let timeout {
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout) {
                finished.withLock { done in
                    guard !done else { return }
                    timedOut.withLock { $0 = true }
                    kill(-child, SIGKILL)
                    kill(child, SIGKILL)
                }
            }
        }
        let output = Locked(Data())
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            let data = FileHandle(fileDescriptor: outRead, closeOnDealloc: true).readDataToEndOfFile()
            output.withLock { $0 = data }
            done.signal()
        }
        let error = FileHandle(fileDescriptor: err[0], closeOnDealloc: true).readDataToEndOfFile()
        done.wait()
        var status: Int32 = 0
        while waitpid(child, &status, 0) == -1 && errno == EINTR {}
        finished.withLock { $0 = true }
        let signal = status & 0x7f
        return (signal == 0 ? (status >> 8) & 0xff : signal, String(decoding: output.withLock { $0 }, as: UTF8.self),
                String(decoding: error, as: UTF8.self), timedOut.withLock { $0 })
    }

    /// `body` with a NULL-terminated C array of `strings` (valid for the call only).
    private static func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
        let pointers = strings.map { strdup($0) } + [nil]
        defer { for p in pointers { free(p) } }
        return body(pointers)
    }
}
