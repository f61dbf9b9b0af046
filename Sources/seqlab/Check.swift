import ArgumentParser
import Foundation
import Layers
import Tensors

/// `seqlab check`: Float64 gradient checks of ops and layers, and step == parallel for layers.
struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Gradient checks (Float64 finite differences) and step == parallel; exits non-zero on any failure.")

    @Option(help: "Check one op (see `seqlab list`).") var op: String?
    @Option(help: "Check one layer (see `seqlab list`).") var layer: String?
    @Flag(help: "Check every op and every layer.") var all = false
    @Flag(help: "Probe fewer entries and shorter sequences.") var quick = false

    func run() throws {
        guard op != nil || layer != nil || all else { fail("check: give --op NAME, --layer NAME or --all") }
        let opChecks = CheckCatalog.opChecks
        var results: [CheckResult] = []
        let emit = { (r: CheckResult) in
            print(r.row)
            fflush(stdout)
            results.append(r)
        }
        if let op {
            let matching = opChecks.filter { $0.name == op || $0.name.hasPrefix(op + "_") || $0.name.hasPrefix(op + "==") }
            guard !matching.isEmpty else {
                fail("unknown op check '\(op)' (known: \(opChecks.map(\.name).joined(separator: ", ")))")
            }
            matching.forEach { emit($0.run(quick)) }
        }
        if let layer { reportingErrors { try LayerCheck.run(layer, quick: quick) }.forEach(emit) }
        if all {
            opChecks.forEach { emit($0.run(quick)) }
            for name in LayerRegistry.names { reportingErrors { try LayerCheck.run(name, quick: quick) }.forEach(emit) }
        }
        let failed = results.filter { !$0.passed }.count
        print("\(results.count - failed) passed, \(failed) failed")
        if failed > 0 { throw ExitCode(1) }
    }
}
