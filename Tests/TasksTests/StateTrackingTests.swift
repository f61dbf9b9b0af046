import XCTest
@testable import Tasks
@testable import Tensors

/// Parity, modular arithmetic and group word problems: labels recomputed independently (counting ones, a
/// recursive-descent evaluator, multiplying permutation arrays), lengths per split.
final class StateTrackingTests: XCTestCase {
    func testParityCountsOnesAndTestsAreLonger() throws {
        let task = try TaskRegistry.make("parity", seed: 1)
        checkInvariants(task)
        XCTAssertEqual(task.classificationPooling, .last)
        XCTAssertEqual(task.tests.map(\.name), ["test", "test_len80", "test_len160"])
        var lengths = Set<Int>(), labels = [0, 0]
        for split in [task.train, task.validation, task.tests[0]] {
            for i in 0..<200 {
                let e = split.example(i)
                XCTAssertTrue((3...40).contains(e.tokens.count))
                lengths.insert(e.tokens.count)
                XCTAssertEqual(e.label, e.tokens.filter { $0 == 1 }.count % 2)
                labels[e.label] += 1
            }
        }
        XCTAssertEqual(lengths, Set(3...40), "every training length occurs")
        XCTAssertTrue(labels.allSatisfy { $0 > 200 })
        for (split, n) in [(task.tests[1], 80), (task.tests[2], 160)] {
            for i in 0..<50 {
                let e = split.example(i)
                XCTAssertEqual(e.tokens.count, n)
                XCTAssertEqual(e.label, e.tokens.reduce(0, ^))
            }
        }
        try checkDeterminism("parity")
        assertUserError("min_length 50 exceeds max_length 40") { _ = try TaskRegistry.make("parity", options: Options(["min_length": "50"])) }
        assertUserError("option test_lengths: '80,80' lists a value twice") { _ = try TaskRegistry.make("parity", options: Options(["test_lengths": "80,80"])) }
    }

    /// expression := term (('+' | '-') term)*, term := digit ('*' digit)*, evaluated over the integers, then mod 5.
    static func evaluate(_ tokens: ArraySlice<Int>) -> Int? {
        var i = tokens.startIndex
        func digit() -> Int? {
            guard i < tokens.endIndex, (0...4).contains(tokens[i]) else { return nil }
            defer { i += 1 }
            return tokens[i]
        }
        func term() -> Int? {
            guard var value = digit() else { return nil }
            while i < tokens.endIndex && tokens[i] == 7 {
                i += 1
                guard let d = digit() else { return nil }
                value *= d
            }
            return value
        }
        guard var value = term() else { return nil }
        while i < tokens.endIndex {
            let op = tokens[i]
            i += 1
            guard op == 5 || op == 6, let t = term() else { return nil }
            value += op == 5 ? t : -t
        }
        return ((value % 5) + 5) % 5
    }

    func testModularArithmeticMatchesARecursiveDescentEvaluator() throws {
        XCTAssertEqual(Self.evaluate([1, 5, 2, 7, 3]), 2)                  // 1 + 2 * 3 = 7 = 2
        XCTAssertEqual(Self.evaluate([1, 6, 1, 6, 1]), 4)                  // 1 - 1 - 1 = -1 = 4
        XCTAssertEqual(Self.evaluate([0, 7, 1, 5, 4, 7, 3, 6, 2]), 0)      // 0 * 1 + 4 * 3 - 2 = 10 = 0
        let task = try TaskRegistry.make("modular_arithmetic", seed: 2)
        checkInvariants(task)
        XCTAssertEqual(task.classificationPooling, .last)
        var labels = Set<Int>()
        for (split, lengths) in [(task.train, 3...41), (task.tests[0], 3...41), (task.tests[1], 80...80), (task.tests[2], 160...160)] {
            for i in 0..<150 {
                let e = split.example(i)
                XCTAssertTrue(lengths.contains(e.tokens.count), "length \(e.tokens.count)")
                XCTAssertEqual(e.tokens.count % 2, 0, "odd expression + '='")
                XCTAssertEqual(e.tokens.last, 8)
                XCTAssertEqual(Self.evaluate(e.tokens.dropLast()), e.label)
                labels.insert(e.label)
            }
        }
        XCTAssertEqual(labels, Set(0...4))
        try checkDeterminism("modular_arithmetic")
    }

    /// S_n by recursive insertion (not the generator's next-permutation), sorted lexicographically.
    static func permutations(_ n: Int) -> [[Int]] {
        guard n > 0 else { return [[]] }
        var out: [[Int]] = []
        for p in permutations(n - 1) {
            for slot in 0...p.count {
                var q = p
                q.insert(n - 1, at: slot)
                out.append(q)
            }
        }
        return out.sorted { $0.lexicographicallyPrecedes($1) }
    }

    /// Parity by counting inversions (the generator counts cycles).
    static func isEven(_ p: [Int]) -> Bool {
        var inversions = 0
        for i in 0..<p.count { for j in (i + 1)..<p.count where p[i] > p[j] { inversions += 1 } }
        return inversions % 2 == 0
    }

    func testGroupsHaveTheRightElementsAndOrders() throws {
        for (name, order) in [("S3", 6), ("S5", 120), ("A5", 60), ("Z7", 7), ("a4", 12)] {
            let g = try FiniteGroup.named(name)
            XCTAssertEqual(g.order, order, name)
        }
        XCTAssertEqual(try FiniteGroup.named("S5").permutations, Self.permutations(5))
        XCTAssertEqual(try FiniteGroup.named("A5").permutations, Self.permutations(5).filter(Self.isEven))
        let z = try FiniteGroup.named("Z5")
        XCTAssertEqual(z.multiply(3, 4), 2)
        assertUserError("unknown group 'Q8'") { _ = try FiniteGroup.named("Q8") }
        assertUserError("option group: unknown group 'S9'") { _ = try TaskRegistry.make("word_problem", options: Options(["group": "S9"])) }
    }

    func testWordProblemTargetsAreRunningProductsOfPermutations() throws {
        for group in ["S3", "S5", "A5"] {
            let task = try TaskRegistry.make("word_problem", options: Options(["group": group]), seed: 3)
            checkInvariants(task)
            XCTAssertTrue(task.requiresCausalModel)
            let n = group == "S3" ? 3 : 5
            let elements = group == "A5" ? Self.permutations(5).filter(Self.isEven) : Self.permutations(n)
            XCTAssertEqual(task.outputClasses, elements.count)
            for (split, lengths) in [(task.train, 32...128), (task.tests[1], 256...256), (task.tests[2], 512...512)] {
                for i in 0..<(group == "S3" ? 20 : 6) {
                    let e = split.example(i)
                    XCTAssertTrue(lengths.contains(e.tokens.count))
                    var product = Array(0..<n)  // identity; p_t = p_{t-1} g_t, (a b)(i) = a(b(i))
                    for (t, g) in e.tokens.enumerated() {
                        product = elements[g].map { product[$0] }
                        XCTAssertEqual(elements[e.targets[t]], product, "\(group) \(split.name)[\(i)] position \(t)")
                    }
                }
            }
        }
        let cyclic = try TaskRegistry.make("word_problem", options: Options(["group": "Z5", "max_length": "40", "min_length": "40"]), seed: 4)
        let e = cyclic.train.example(0)
        XCTAssertEqual(e.tokens.count, 40)
        var sum = 0
        for (t, g) in e.tokens.enumerated() {
            sum = (sum + g) % 5
            XCTAssertEqual(e.targets[t], sum)
        }
        try checkDeterminism("word_problem")
    }
}
