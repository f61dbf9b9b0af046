import XCTest
@testable import Tasks
@testable import Tensors

/// The registry: every task is listed with distinct option names, builds from its defaults (generators) or asks for
/// its files (loaders), and keeps the protocol's invariants.
final class TaskRegistryTests: XCTestCase {
    static let generated = ["listops", "pathfinder", "mqar", "selective_copy", "induction_heads", "parity",
                            "modular_arithmetic", "word_problem"]
    static let loaders = ["listops_tsv", "lra_text", "lra_retrieval", "cifar10"]

    func testEveryTaskIsRegisteredWithDistinctOptions() throws {
        XCTAssertEqual(Set(TaskRegistry.names), Set(Self.generated + Self.loaders))
        XCTAssertEqual(TaskRegistry.names.count, Set(TaskRegistry.names).count)
        for f in TaskRegistry.factories {
            XCTAssertFalse(f.summary.isEmpty)
            let names = f.options.map(\.name)
            XCTAssertEqual(names.count, Set(names).count, "\(f.name) lists an option twice")
            for o in f.options { XCTAssertFalse(o.help.isEmpty, "\(f.name).\(o.name) has no help") }
        }
        assertUserError("unknown task 'lisops' (did you mean 'listops'?) (known: listops") { _ = try TaskRegistry.make("lisops") }
        for name in Self.loaders {
            assertUserError("task \(name): set option path") { _ = try TaskRegistry.make(name) }
        }
    }

    func testGeneratedTasksBuildFromDefaultsAndKeepTheInvariants() throws {
        for name in Self.generated where name != "pathfinder" {  // pathfinder: PathfinderTests
            let task = try TaskRegistry.make(name, seed: 0)
            XCTAssertEqual(task.name, name)
            XCTAssertEqual(task.padToken, task.inputVocabulary - 1)
            checkInvariants(task)
            assertUserError("task \(name): option train_size: '0' must be at least 1") {
                _ = try TaskRegistry.make(name, options: Options(["train_size": "0"]))
            }
            let small = try TaskRegistry.make(name, options: Options(["train_size": "3", "val_size": "2", "test_size": "5"]))
            XCTAssertEqual([small.train.count, small.validation.count] + small.tests.map(\.count),
                           [3, 2] + [Int](repeating: 5, count: small.tests.count))
        }
    }
}

extension TaskRegistryTests {
    func testMaterializedSplitsHoldTheSameExamples() throws {
        let task = try TaskRegistry.make("pathfinder", options: Options(["val_size": "6", "contour_length": "6"]), seed: 3)
        let held = task.validation.materialized()
        XCTAssertEqual(held.name, "validation")
        XCTAssertEqual(held.count, 6)
        for i in 0..<6 { XCTAssertEqual(held.example(i), task.validation.example(i)) }
    }

    func testLoaderValidationHoldOutDoesNotDependOnTheSeed() throws {
        let dir = try temporaryDirectory(self)
        try write((0..<20).map { "\($0 % 2)\tdocument \($0)" }.joined(separator: "\n"), to: dir.appendingPathComponent("train.tsv"))
        try write("1\tx\n", to: dir.appendingPathComponent("test.tsv"))
        let a = try TaskRegistry.make("lra_text", options: Options(["path": dir.path]), seed: 1)
        let b = try TaskRegistry.make("lra_text", options: Options(["path": dir.path]), seed: 2)
        XCTAssertEqual(a.validation.count, 2)
        XCTAssertEqual((0..<2).map { a.validation.example($0) }, (0..<2).map { b.validation.example($0) })
    }
}
