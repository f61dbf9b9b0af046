import Foundation
import XCTest
@testable import Tasks
@testable import Tensors

/// LRA Text, LRA Retrieval and CIFAR-10 loaders on small files written in exactly the released formats: contents
/// round-trip, and missing or corrupt files give one-line errors.
final class LoaderTests: XCTestCase {
    func testLRATextReadsLabelTabTextAsBytes() throws {
        let dir = try temporaryDirectory(self)
        let train = [(1, "A gripping film.\tTabs\tstay in the text."), (0, "Dull; \u{e9}t\u{e9} mis-sold."), (1, "ok"), (0, "no"), (1, "yes")]
        try write("label\ttext\n" + train.map { "\($0.0)\t\($0.1)" }.joined(separator: "\n") + "\n", to: dir.appendingPathComponent("train.tsv"))
        try write("1.0\tgreat\r\n0.0\tbad\r\n", to: dir.appendingPathComponent("test.tsv"))
        let task = try TaskRegistry.make("lra_text", options: Options(["path": dir.path, "val_fraction": "0.2"]), seed: 1)
        checkInvariants(task)
        XCTAssertEqual(task.inputVocabulary, 257)
        XCTAssertEqual(task.train.count, 4)
        XCTAssertEqual(task.validation.count, 1)
        let all = (0..<4).map { task.train.example($0) } + [task.validation.example(0)]
        XCTAssertEqual(Set(all.map { $0.tokens }), Set(train.map { Array($0.1.utf8).map { Int($0) } }), "UTF-8 bytes, tabs kept")
        for e in all { XCTAssertEqual(e.label, train.first { Array($0.1.utf8).map { Int($0) } == e.tokens }!.0) }
        XCTAssertEqual(task.tests[0].example(0), Example(tokens: Array("great".utf8).map { Int($0) }, label: 1))
        XCTAssertEqual(task.tests[0].example(1).label, 0)

        // a validation file wins over the hold-out; truncation
        try write("0\tvalidation text\n", to: dir.appendingPathComponent("val.tsv"))
        let withVal = try TaskRegistry.make("lra_text", options: Options(["path": dir.path, "max_length": "3"]), seed: 1)
        XCTAssertEqual(withVal.train.count, 5)
        XCTAssertEqual(withVal.validation.example(0).tokens, Array("val".utf8).map { Int($0) })

        try write("1\tfine\n2\tthree classes?\n", to: dir.appendingPathComponent("test.tsv"))
        assertUserError("test.tsv line 2: label '2' is not a class 0-1") { _ = try TaskRegistry.make("lra_text", options: Options(["path": dir.path])) }
        try write("1 no tab here\n", to: dir.appendingPathComponent("test.tsv"))
        assertUserError("test.tsv line 1: expected label<TAB>text") { _ = try TaskRegistry.make("lra_text", options: Options(["path": dir.path])) }
        try write("", to: dir.appendingPathComponent("test.tsv"))
        assertUserError("test.tsv has no examples") { _ = try TaskRegistry.make("lra_text", options: Options(["path": dir.path])) }
        try FileManager.default.removeItem(at: dir.appendingPathComponent("train.tsv"))
        assertUserError("missing file train.tsv") { _ = try TaskRegistry.make("lra_text", options: Options(["path": dir.path])) }
        assertUserError("set option path") { _ = try TaskRegistry.make("lra_text") }
        assertUserError("is not a directory") {
            _ = try TaskRegistry.make("lra_text", options: Options(["path": dir.appendingPathComponent("val.tsv").path]))
        }
    }

    func testLRARetrievalReadsFiveColumnPairs() throws {
        let dir = try temporaryDirectory(self)
        func row(_ label: String, _ a: String, _ b: String) -> String { "\(label)\tacl-\(a.count)\tacl-\(b.count)\t\(a)\t\(b)" }
        let rows = [("1.0", "first paper text", "cited paper"), ("0.0", "another one", "unrelated\twith a tab")]
        for file in ["new_aan_pairs.train.tsv", "new_aan_pairs.eval.tsv", "new_aan_pairs.test.tsv"] {
            try write(rows.map { row($0.0, $0.1, $0.2) }.joined(separator: "\n") + "\n", to: dir.appendingPathComponent(file))
        }
        let task = try TaskRegistry.make("lra_retrieval", options: Options(["path": dir.path]), seed: 1)
        checkInvariants(task)
        XCTAssertEqual(task.head, .matching)
        for split in task.allSplitsForTest {
            XCTAssertEqual(split.count, 2)
            for (i, r) in rows.enumerated() {
                let e = split.example(i)
                XCTAssertEqual(e.label, r.0 == "1.0" ? 1 : 0)
                XCTAssertEqual(e.tokens, Array(r.1.utf8).map { Int($0) })
                XCTAssertEqual(e.pairedTokens, Array(r.2.utf8).map { Int($0) })
            }
        }
        let short = try TaskRegistry.make("lra_retrieval", options: Options(["path": dir.path, "max_length": "5"]), seed: 1)
        XCTAssertEqual(short.train.example(0).tokens.count, 5)
        XCTAssertEqual(short.train.example(0).pairedTokens.count, 5)

        let test = dir.appendingPathComponent("new_aan_pairs.test.tsv")
        try write("1.0\tid1\tid2\tonly four fields\n", to: test)
        assertUserError("new_aan_pairs.test.tsv line 1: expected label<TAB>id1") { _ = try TaskRegistry.make("lra_retrieval", options: Options(["path": dir.path])) }
        try write("0.5\tid1\tid2\ta\tb\n", to: test)
        assertUserError("label '0.5' is not 0 or 1") { _ = try TaskRegistry.make("lra_retrieval", options: Options(["path": dir.path])) }
        try FileManager.default.removeItem(at: test)
        assertUserError("missing file new_aan_pairs.test.tsv or test.tsv") { _ = try TaskRegistry.make("lra_retrieval", options: Options(["path": dir.path])) }
    }

    /// `count` random CIFAR-10 records (label byte + R, G, B planes).
    static func records(_ count: Int, seed: UInt64) -> [UInt8] {
        var rng = RandomGenerator(seed: seed)
        var bytes: [UInt8] = []
        for _ in 0..<count {
            bytes.append(UInt8(rng.int(below: 10)))
            bytes += (0..<3072).map { _ in UInt8(rng.int(below: 256)) }
        }
        return bytes
    }

    func testCIFAR10ConvertsBinaryBatchesToGrayscaleSequences() throws {
        let root = try temporaryDirectory(self)
        let dir = root.appendingPathComponent("cifar-10-batches-bin")  // the archive's own folder is found too
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let batches = [Self.records(6, seed: 1), Self.records(4, seed: 2)]
        for (k, b) in batches.enumerated() { try Data(b).write(to: dir.appendingPathComponent("data_batch_\(k + 1).bin")) }
        let testBytes = Self.records(3, seed: 3)
        try Data(testBytes).write(to: dir.appendingPathComponent("test_batch.bin"))
        let task = try TaskRegistry.make("cifar10", options: Options(["path": root.path, "val_fraction": "0.2"]), seed: 5)
        checkInvariants(task)
        XCTAssertEqual(task.train.count, 8)
        XCTAssertEqual(task.validation.count, 2)
        XCTAssertEqual(task.tests[0].count, 3)

        /// record r of a buffer as the expected example (grayscale within half a level of the float formula)
        func check(_ e: Example, record r: Int, of bytes: [UInt8]) -> Bool {
            let base = r * 3073
            guard e.label == Int(bytes[base]), e.tokens.count == 1024 else { return false }
            for i in 0..<1024 {
                let gray = 0.2989 * Double(bytes[base + 1 + i]) + 0.5870 * Double(bytes[base + 1025 + i]) + 0.1140 * Double(bytes[base + 2049 + i])
                if abs(Double(e.tokens[i]) - gray) > 0.5 + 1e-6 { return false }
            }
            return true
        }
        for r in 0..<3 { XCTAssertTrue(check(task.tests[0].example(r), record: r, of: testBytes), "test record \(r)") }
        let trainBytes = batches[0] + batches[1]
        var found = Set<Int>()
        for e in (0..<8).map({ task.train.example($0) }) + (0..<2).map({ task.validation.example($0) }) {
            guard let r = (0..<10).first(where: { check(e, record: $0, of: trainBytes) }) else { return XCTFail("unmatched example") }
            found.insert(r)
        }
        XCTAssertEqual(found, Set(0..<10), "train and validation partition the training records")

        try Data(testBytes.dropLast()).write(to: dir.appendingPathComponent("test_batch.bin"))
        assertUserError("test_batch.bin has 9218 bytes, not a whole number of 3073-byte") {
            _ = try TaskRegistry.make("cifar10", options: Options(["path": dir.path]))
        }
        var badLabel = testBytes
        badLabel[3073] = 12
        try Data(badLabel).write(to: dir.appendingPathComponent("test_batch.bin"))
        assertUserError("record 1: label 12 is not 0-9") { _ = try TaskRegistry.make("cifar10", options: Options(["path": dir.path])) }
        try FileManager.default.removeItem(at: dir.appendingPathComponent("test_batch.bin"))
        assertUserError("missing file test_batch.bin") { _ = try TaskRegistry.make("cifar10", options: Options(["path": dir.path])) }
        let empty = try temporaryDirectory(self)
        assertUserError("no data_batch_*.bin") { _ = try TaskRegistry.make("cifar10", options: Options(["path": empty.path])) }
    }
}
