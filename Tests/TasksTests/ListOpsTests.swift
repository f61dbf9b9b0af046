import Foundation
import XCTest
@testable import Tasks
@testable import Tensors

/// ListOps: labels checked by a separate stack evaluator over the token sequence, the LRA length and depth rules,
/// and the TSV loader on files written in LRA's format (parenthesised, header Source<TAB>Target).
final class ListOpsTests: XCTestCase {
    /// Evaluates a token sequence with an explicit stack (the generator evaluates while it recurses), returning the
    /// value, the depth (root = 1) and the largest argument count, or nil if the sequence is not one well-formed tree.
    static func evaluate(_ tokens: [Int]) -> (value: Int, depth: Int, maxArgs: Int)? {
        var stack: [(op: Int, args: [Int])] = []
        var result: Int?
        var maxArgs = 0
        for t in tokens {
            guard result == nil else { return nil }  // tokens after the root closed
            switch t {
            case 0...9:
                if stack.isEmpty { result = t } else { stack[stack.count - 1].args.append(t) }
            case 10...13:
                stack.append((t, []))
            case 14:
                guard let frame = stack.popLast(), frame.args.count >= 2 else { return nil }
                maxArgs = max(maxArgs, frame.args.count)
                let a = frame.args
                let v: Int
                switch frame.op {
                case 10: v = a.reduce(Int.max) { $0 < $1 ? $0 : $1 }
                case 11: v = a.reduce(Int.min) { $0 > $1 ? $0 : $1 }
                case 12:
                    let s = a.sorted()
                    v = Int((Double(s[(s.count - 1) / 2]) + Double(s[s.count / 2])) / 2)  // numpy median, truncated
                default: v = a.reduce(0, +) % 10
                }
                if stack.isEmpty { result = v } else { stack[stack.count - 1].args.append(v) }
            default: return nil
            }
        }
        guard let value = result else { return nil }
        // depth: an operator at nesting level k has its digit children at level k + 1
        var level = 0, deepest = 1
        for t in tokens {
            if (10...13).contains(t) { level += 1; deepest = max(deepest, level) }
            else if t == 14 { level -= 1 }
            else { deepest = max(deepest, level + 1) }
        }
        return (value, deepest, maxArgs)
    }

    func testLabelsMatchAnIndependentEvaluatorAndLengthsFollowTheRules() throws {
        let task = try TaskRegistry.make("listops", seed: 3)
        checkInvariants(task)
        // The task's own defaults (the CPU-sized setting), read from its option specs.
        func option(_ name: String) -> Int { Int(ListOpsTask.options.first { $0.name == name }!.defaultValue)! }
        let (minLength, maxLength, maxDepth, maxArgs) = (option("min_length"), option("max_length"), option("max_depth"), option("max_args"))
        XCTAssertEqual([minLength, maxLength, maxDepth, maxArgs], [20, 100, 5, 5])
        var labels = Set<Int>(), operators = Set<Int>()
        for split in task.allSplitsForTest {
            for i in 0..<150 {
                let e = split.example(i)
                guard let r = Self.evaluate(e.tokens) else { return XCTFail("\(split.name)[\(i)] is not a tree") }
                XCTAssertEqual(r.value, e.label)
                XCTAssertTrue(e.tokens.count > minLength && e.tokens.count < maxLength, "length \(e.tokens.count)")
                XCTAssertLessThanOrEqual(r.depth, maxDepth)
                XCTAssertLessThanOrEqual(r.maxArgs, maxArgs)
                labels.insert(e.label)
                operators.formUnion(e.tokens.filter { (10...13).contains($0) })
            }
        }
        XCTAssertEqual(labels.count, 10, "all ten values occur")
        XCTAssertEqual(operators.count, 4, "all four operators occur")
    }

    func testOperatorsOnHandPickedLists() {
        typealias Op = ListOpsVocabulary.Operator
        XCTAssertEqual(Op.median.apply([1, 2, 3, 4]), 2)   // int(2.5)
        XCTAssertEqual(Op.median.apply([9, 1, 5]), 5)
        XCTAssertEqual(Op.sumModulo.apply([7, 8, 9]), 4)
        XCTAssertEqual(Op.min.apply([3, 0, 5]), 0)
        XCTAssertEqual(Op.max.apply([3, 0, 5]), 5)
        // [MAX 2 [SM 7 8 ] 1 ] = max(2, 5, 1) = 5
        XCTAssertEqual(Self.evaluate([11, 2, 13, 7, 8, 14, 1, 14])?.value, 5)
    }

    func testLRASettingsAndValidation() throws {
        // LRA's own configuration generates (lengths 500 < L < 2000, depth 10, 10 arguments)
        let lra = try TaskRegistry.make("listops", options: Options([
            "min_length": "500", "max_length": "2000", "max_depth": "10", "max_args": "10", "train_size": "4"]), seed: 1)
        for i in 0..<4 {
            let e = lra.train.example(i)
            XCTAssertTrue(e.tokens.count > 500 && e.tokens.count < 2000)
            XCTAssertEqual(Self.evaluate(e.tokens)?.value, e.label)
        }
        assertUserError("never exceed") {
            _ = try TaskRegistry.make("listops", options: Options(["max_depth": "2", "max_args": "3", "min_length": "30"]))
        }
        assertUserError("must exceed") { _ = try TaskRegistry.make("listops", options: Options(["min_length": "50", "max_length": "50"])) }
        assertUserError("unknown option 'depth'") { _ = try TaskRegistry.make("listops", options: Options(["depth": "3"])) }
        try checkDeterminism("listops")
    }

    /// LRA's to_string: an operator node with values v0..vn-1 is (((op v0) v1) ... ]) with every pair parenthesised.
    static func lraString(_ tokens: [Int]) -> String {
        var i = 0
        func node() -> String {
            let t = tokens[i]
            i += 1
            if t < 10 { return String(t) }
            var s = "( \(ListOpsVocabulary.word(of: t)) \(node()) )"
            while tokens[i] != ListOpsVocabulary.close { s = "( \(s) \(node()) )" }
            i += 1
            return "( \(s) ] )"
        }
        return node()
    }

    func testTSVLoaderRoundTripsLRAFiles() throws {
        XCTAssertEqual(Self.lraString([11, 2, 9, 14]), "( ( ( [MAX 2 ) 9 ) ] )")
        let source = try TaskRegistry.make("listops", options: Options(["train_size": "20", "val_size": "5", "test_size": "7"]), seed: 5)
        let dir = try temporaryDirectory(self)
        for (split, file) in [(source.train, "basic_train.tsv"), (source.validation, "basic_val.tsv"), (source.tests[0], "basic_test.tsv")] {
            let rows = (0..<split.count).map { i -> String in
                let e = split.example(i)
                return "\(Self.lraString(e.tokens))\t\(e.label)"
            }
            try write((["Source\tTarget"] + rows).joined(separator: "\n") + "\n", to: dir.appendingPathComponent(file))
        }
        let loaded = try TaskRegistry.make("listops_tsv", options: Options(["path": dir.path]))
        checkInvariants(loaded)
        for (a, b) in [(source.train, loaded.train), (source.validation, loaded.validation), (source.tests[0], loaded.tests[0])] {
            XCTAssertEqual(a.count, b.count)
            for i in 0..<a.count { XCTAssertEqual(a.example(i), b.example(i)) }
        }
        XCTAssertEqual(loaded.inputVocabulary, source.inputVocabulary)

        // truncation, then corrupt files: each a one-line error naming the file
        let short = try TaskRegistry.make("listops_tsv", options: Options(["path": dir.path, "max_length": "10"]))
        XCTAssertEqual(short.train.example(0).tokens, Array(source.train.example(0).tokens.prefix(10)))
        let test = dir.appendingPathComponent("basic_test.tsv")
        try write("Input\tOutput\n( [MAX 1 2 ] )\t2\n", to: test)
        assertUserError("basic_test.tsv line 1: expected a header") { _ = try TaskRegistry.make("listops_tsv", options: Options(["path": dir.path])) }
        try write("Source\tTarget\n( ( [MAX 1 ) 2 [FOO ] )\t2\n", to: test)
        assertUserError("line 2: unknown ListOps word '[FOO'") { _ = try TaskRegistry.make("listops_tsv", options: Options(["path": dir.path])) }
        try write("Source\tTarget\n( ( [MAX 1 ) 2 ] )\t12\n", to: test)
        assertUserError("target '12'") { _ = try TaskRegistry.make("listops_tsv", options: Options(["path": dir.path])) }
        try FileManager.default.removeItem(at: test)
        assertUserError("missing file basic_test.tsv") { _ = try TaskRegistry.make("listops_tsv", options: Options(["path": dir.path])) }
        assertUserError("set option path") { _ = try TaskRegistry.make("listops_tsv") }
        assertUserError("does not exist") { _ = try TaskRegistry.make("listops_tsv", options: Options(["path": dir.path + "/nope"])) }
    }
}

extension SequenceTask {
    var allSplitsForTest: [Dataset] { [train, validation] + tests }
}
