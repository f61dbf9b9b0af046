import XCTest
@testable import Tasks
@testable import Tensors

/// MQAR, selective copying and induction heads: every scored target re-derived from the input tokens alone.
final class RecallTests: XCTestCase {
    func testMQARTargetsAreTheValuesPairedWithTheQueriedKeys() throws {
        let task = try TaskRegistry.make("mqar", seed: 1)
        checkInvariants(task)
        XCTAssertTrue(task.requiresCausalModel)
        XCTAssertEqual(task.head, .tokens)
        XCTAssertEqual(task.inputVocabulary, 257)
        XCTAssertEqual(task.outputClasses, 256)
        var firstGapCount = 0, lastHalfCount = 0
        for split in task.allSplitsForTest {
            for i in 0..<100 {
                let e = split.example(i)
                XCTAssertEqual(e.tokens.count, 64)
                // the prefix k1 v1 ... k4 v4: distinct keys in [1, 128), values in [128, 256)
                var value: [Int: Int] = [:]
                for j in 0..<4 {
                    let k = e.tokens[2 * j], v = e.tokens[2 * j + 1]
                    XCTAssertTrue((1..<128).contains(k) && (128..<256).contains(v))
                    XCTAssertNil(value[k], "key \(k) repeated")
                    value[k] = v
                    XCTAssertEqual(e.targets[2 * j], Example.ignored)
                    XCTAssertEqual(e.targets[2 * j + 1], Example.ignored)
                }
                let scored = e.targets.indices.filter { e.targets[$0] != Example.ignored }
                XCTAssertEqual(scored.count, 4)
                XCTAssertEqual(Set(scored.map { e.tokens[$0] }), Set(value.keys), "each key queried once")
                for t in scored {
                    XCTAssertTrue(t >= 8 && (t - 8) % 2 == 0, "queries sit at even offsets after the prefix")
                    XCTAssertEqual(e.targets[t], value[e.tokens[t]], "target is the queried key's value")
                }
                if scored.contains(8) { firstGapCount += 1 }
                lastHalfCount += scored.filter { $0 >= 36 }.count
            }
        }
        // p(g) ~ (g+1)^(-0.99): gap 0 is by far the most likely, the far half of the query region is rare
        XCTAssertGreaterThan(firstGapCount, 170)  // expected ~215 of 300 (uniform gaps: ~43)
        XCTAssertLessThan(lastHalfCount, 330)  // expected ~244 (uniform gaps: 600)
        try checkDeterminism("mqar")
    }

    func testMQAROptionsAndZoologyConstraints() throws {
        let task = try TaskRegistry.make("mqar", options: Options(["seq_len": "256", "num_pairs": "16", "vocab_size": "8192",
                                                                   "random_non_queries": "false"]), seed: 2)
        let e = task.train.example(0)
        XCTAssertEqual(e.tokens.count, 256)
        XCTAssertEqual(e.targets.filter { $0 != Example.ignored }.count, 16)
        XCTAssertEqual(e.tokens[32...].filter { $0 != 0 }.count, 16, "without random fill only the queries are non-zero")
        assertUserError("must be even") { _ = try TaskRegistry.make("mqar", options: Options(["seq_len": "63"])) }
        assertUserError("needs seq_len >= 80") { _ = try TaskRegistry.make("mqar", options: Options(["num_pairs": "20"])) }
        assertUserError("exceeds the 7 keys") { _ = try TaskRegistry.make("mqar", options: Options(["vocab_size": "16", "num_pairs": "8"])) }
        assertUserError("option seq_len: 'x' is not an integer") { _ = try TaskRegistry.make("mqar", options: Options(["seq_len": "x"])) }
    }

    func testSelectiveCopyTargetsAreTheDataTokensInOrder() throws {
        let task = try TaskRegistry.make("selective_copy", options: Options(["test_lengths": "256"]), seed: 3)
        checkInvariants(task)
        XCTAssertEqual(task.tests.map(\.name), ["test", "test_len256"])
        let (noise, marker) = (16, 17)
        for (split, length) in [(task.train, 128), (task.tests[0], 128), (task.tests[1], 256)] {
            for i in 0..<50 {
                let e = split.example(i)
                XCTAssertEqual(e.tokens.count, length + 16)
                let data = e.tokens[..<length].filter { $0 != noise }
                XCTAssertEqual(data.count, 16)
                XCTAssertTrue(data.allSatisfy { (0..<16).contains($0) })
                XCTAssertEqual(Array(e.tokens[length...]), [Int](repeating: marker, count: 16))
                XCTAssertEqual(Array(e.targets[length...]), data)
                XCTAssertTrue(e.targets[..<length].allSatisfy { $0 == Example.ignored })
            }
        }
        try checkDeterminism("selective_copy")
        assertUserError("num_tokens 200 exceeds seq_len 128") { _ = try TaskRegistry.make("selective_copy", options: Options(["num_tokens": "200"])) }
    }

    func testInductionHeadsTargetIsTheTokenAfterTheFirstTrigger() throws {
        let task = try TaskRegistry.make("induction_heads", seed: 4)
        checkInvariants(task)
        XCTAssertEqual(task.tests.map(\.name), ["test", "test_len256", "test_len512"])
        let trigger = 16
        for (split, length) in [(task.train, 128), (task.tests[1], 256), (task.tests[2], 512)] {
            for i in 0..<50 {
                let e = split.example(i)
                XCTAssertEqual(e.tokens.count, length)
                let triggers = e.tokens.indices.filter { e.tokens[$0] == trigger }
                XCTAssertEqual(triggers.count, 2)
                XCTAssertEqual(triggers.last, length - 1)
                XCTAssertEqual(e.targets.last, e.tokens[triggers[0] + 1])
                XCTAssertEqual(e.targets.dropLast().filter { $0 != Example.ignored }.count, 0, "only the end is scored")
            }
        }
        try checkDeterminism("induction_heads")
        assertUserError("task induction_heads: option test_lengths: '256,x' is not a comma-separated list of integers") { _ = try TaskRegistry.make("induction_heads", options: Options(["test_lengths": "256,x"])) }
    }
}
