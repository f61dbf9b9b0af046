import Foundation
import Tensors

/// The sbatch settings of a sweep submitted to Slurm (`seqlab sweep SPEC --out DIR --slurm`): from the spec's
/// `"slurm"` object, then the command's flags (a flag wins over the spec). Every value is checked before anything is
/// written or submitted; a malformed one is a one-line error naming it.
///
///     "slurm": {"partition": "cpu", "time": "2:00:00", "cpus_per_task": 4, "mem": "8G", "account": "lab",
///               "qos": "normal", "array_limit": 16, "sbatch_args": ["--constraint=avx512"], "signal_seconds": 120}
///
/// The array task's script asks Slurm for SIGUSR1 `signal_seconds` before the time limit (`--signal=B:USR1@S`) and is
/// requeueable (`--requeue`): on that signal the trainer checkpoints its current step, the task requeues itself, and
/// the requeued task resumes the run (docs/cluster.md).
public struct SlurmSettings: Equatable {
    /// `--partition` (one name or a comma-separated list).
    public var partition: String?
    /// `--time`: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS.
    public var time: String?
    /// `--cpus-per-task`; the task's trainer uses that many threads.
    public var cpusPerTask = 1
    /// `--mem` per node: a number with an optional K, M, G or T.
    public var memory: String?
    /// `--account`.
    public var account: String?
    /// `--qos`.
    public var qos: String?
    /// The array's concurrency limit K (`--array=0-N%K`); nil: Slurm's own limit.
    public var arrayLimit: Int?
    /// Further sbatch arguments, each one `--name` or `--name=value` (not those the script sets itself).
    public var extraArguments: [String] = []
    /// Seconds before the time limit at which the task is told to checkpoint and requeue.
    public var signalSeconds = 120

    /// The keys of the spec's "slurm" object.
    public static let keys = ["partition", "time", "cpus_per_task", "mem", "account", "qos", "array_limit", "sbatch_args",
                              "signal_seconds"]
    /// sbatch arguments the generated script owns.
    static let ownedArguments = ["--array", "--output", "--error", "--open-mode", "--requeue", "--no-requeue", "--signal",
                                 "--cpus-per-task", "-c", "--job-name", "-J", "-o", "-e", "-a"]

    public init() {}

    /// The settings of a spec's "slurm" object (nil: the defaults).
    public init(spec object: Any?, source: String) throws {
        guard let object else { return }
        guard let o = object as? [String: Any] else { throw SequenceLabError("\(source): 'slurm' must be an object") }
        if let stray = o.keys.sorted().first(where: { !Self.keys.contains($0) }) {
            throw SequenceLabError("\(source): unknown slurm key '\(stray)' (keys: \(Self.keys.joined(separator: ", ")))")
        }
        func text(_ key: String) throws -> String? {
            guard let v = o[key] else { return nil }
            if let s = v as? String { return s }
            if let n = v as? NSNumber, key == "time" || key == "mem" { return n.stringValue }
            throw SequenceLabError("\(source): slurm.\(key) must be a string")
        }
        func integer(_ key: String) throws -> Int? {
            guard let v = o[key] else { return nil }
            guard let n = v as? NSNumber, String(cString: n.objCType) != "c", n.doubleValue == n.doubleValue.rounded(),
                  abs(n.doubleValue) < 1e9 else {
                throw SequenceLabError("\(source): slurm.\(key) must be an integer")
            }
            return n.intValue
        }
        partition = try text("partition")
        time = try text("time")
        memory = try text("mem")
        account = try text("account")
        qos = try text("qos")
        cpusPerTask = try integer("cpus_per_task") ?? cpusPerTask
        arrayLimit = try integer("array_limit")
        signalSeconds = try integer("signal_seconds") ?? signalSeconds
        if let args = o["sbatch_args"] {
            guard let list = args as? [String] else { throw SequenceLabError("\(source): slurm.sbatch_args must be a list of strings") }
            extraArguments = list
        }
    }

    /// Checks every setting; the error names the first malformed one.
    public func validate() throws {
        func bad(_ what: String) -> SequenceLabError { SequenceLabError("slurm: \(what)") }
        let name = #"^[A-Za-z0-9_.\-]+(,[A-Za-z0-9_.\-]+)*$"#
        for (key, value) in [("partition", partition), ("account", account), ("qos", qos)] {
            if let value, value.range(of: name, options: .regularExpression) == nil {
                throw bad("\(key) '\(value)' is not a name (letters, digits, '_', '.', '-'; commas between several)")
            }
        }
        if let time {
            let forms = [#"^\d+$"#, #"^\d+:\d{1,2}$"#, #"^\d+:\d{1,2}:\d{1,2}$"#, #"^\d+-\d+$"#, #"^\d+-\d+:\d{1,2}$"#,
                         #"^\d+-\d+:\d{1,2}:\d{1,2}$"#]
            guard time == "UNLIMITED" || time == "INFINITE" || forms.contains(where: { time.range(of: $0, options: .regularExpression) != nil }) else {
                throw bad("time '\(time)' is not minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS")
            }
        }
        if let memory, memory.range(of: #"^\d+[KMGT]?$"#, options: .regularExpression) == nil {
            throw bad("mem '\(memory)' is not a size (a number with an optional K, M, G or T, such as 8G)")
        }
        guard (1...1024).contains(cpusPerTask) else { throw bad("cpus_per_task must be between 1 and 1024, got \(cpusPerTask)") }
        if let arrayLimit, !(1...100_000).contains(arrayLimit) {
            throw bad("array_limit must be between 1 and 100000, got \(arrayLimit)")
        }
        guard (10...86_400).contains(signalSeconds) else {
            throw bad("signal_seconds must be between 10 and 86400, got \(signalSeconds)")
        }
        for argument in extraArguments {
            guard argument.hasPrefix("-"), argument.rangeOfCharacter(from: .newlines) == nil, !argument.contains("'") else {
                throw bad("sbatch argument '\(argument)' must be one option (--name or --name=value, no newline or quote)")
            }
            let option = String(argument.split(separator: "=", maxSplits: 1)[0])
            if Self.ownedArguments.contains(option) {
                throw bad("sbatch argument '\(argument)': the sweep's script sets \(option) itself (use the settings)")
            }
        }
    }

    /// The `#SBATCH` lines these settings add (beside the array, output, signal and requeue lines of the script).
    var directives: [String] {
        var lines = ["--cpus-per-task=\(cpusPerTask)"]
        if let partition { lines.append("--partition=\(partition)") }
        if let time { lines.append("--time=\(time)") }
        if let memory { lines.append("--mem=\(memory)") }
        if let account { lines.append("--account=\(account)") }
        if let qos { lines.append("--qos=\(qos)") }
        return lines + extraArguments
    }
}
