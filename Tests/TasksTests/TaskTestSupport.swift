import Foundation
import XCTest
@testable import Tasks
@testable import Tensors

/// Checks every task must satisfy on `count` examples of each split: ids within the vocabulary and never the pad
/// token, labels and targets within the classes, the head's fields filled, and example i reproducible.
func checkInvariants(_ task: any SequenceTask, count: Int = 8, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(task.tests.first?.name, "test", "first test split must be 'test'", file: file, line: line)
    XCTAssertTrue((0..<task.inputVocabulary).contains(task.padToken), file: file, line: line)
    let splits = [task.train, task.validation] + task.tests
    XCTAssertEqual(Set(splits.map(\.name)).count, splits.count, "split names must be distinct", file: file, line: line)
    for split in splits {
        XCTAssertGreaterThan(split.count, 0, "\(split.name) is empty", file: file, line: line)
        for i in 0..<min(count, split.count) {
            let e = split.example(i)
            XCTAssertFalse(e.tokens.isEmpty, file: file, line: line)
            for t in e.tokens + e.pairedTokens {
                XCTAssertTrue((0..<task.inputVocabulary).contains(t) && t != task.padToken,
                              "\(task.name)/\(split.name)[\(i)]: token \(t) outside 0..<\(task.inputVocabulary) or pad",
                              file: file, line: line)
            }
            switch task.head {
            case .classification, .matching:
                XCTAssertTrue((0..<task.outputClasses).contains(e.label), "label \(e.label)", file: file, line: line)
                XCTAssertTrue(e.targets.isEmpty, file: file, line: line)
                XCTAssertEqual(task.head == .matching, !e.pairedTokens.isEmpty, file: file, line: line)
            case .tokens:
                XCTAssertEqual(e.targets.count, e.tokens.count, file: file, line: line)
                XCTAssertTrue(e.targets.contains { $0 != Example.ignored }, "no scored position", file: file, line: line)
                for t in e.targets where t != Example.ignored {
                    XCTAssertTrue((0..<task.outputClasses).contains(t), "target \(t)", file: file, line: line)
                }
            }
            XCTAssertEqual(split.example(i), e, "\(split.name)[\(i)] is not reproducible", file: file, line: line)
        }
    }
}

/// Asserts that two generated tasks built with the same seed agree, that another seed differs, and that the splits
/// differ from each other.
func checkDeterminism(_ name: String, options: Options = Options(), count: Int = 4,
                      file: StaticString = #filePath, line: UInt = #line) throws {
    let a = try TaskRegistry.make(name, options: options, seed: 7)
    let b = try TaskRegistry.make(name, options: options, seed: 7)
    let c = try TaskRegistry.make(name, options: options, seed: 8)
    let first = (0..<count).map { a.train.example($0) }
    XCTAssertEqual(first, (0..<count).map { b.train.example($0) }, "same seed, different examples", file: file, line: line)
    XCTAssertNotEqual(first, (0..<count).map { c.train.example($0) }, "different seeds, same examples", file: file, line: line)
    XCTAssertNotEqual(first, (0..<count).map { a.validation.example($0) }, "train and validation agree", file: file, line: line)
    XCTAssertNotEqual(first, (0..<count).map { a.tests[0].example($0) }, "train and test agree", file: file, line: line)
}

/// Asserts that `body` throws a `SequenceLabError` whose one-line message contains `fragment`.
func assertUserError(_ fragment: String, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
    do {
        try body()
        XCTFail("expected an error containing '\(fragment)'", file: file, line: line)
    } catch let e as SequenceLabError {
        XCTAssertTrue(e.message.contains(fragment), "message '\(e.message)' lacks '\(fragment)'", file: file, line: line)
        XCTAssertFalse(e.message.contains("\n"), "message spans several lines", file: file, line: line)
    } catch {
        XCTFail("unexpected error \(error)", file: file, line: line)
    }
}

/// A fresh temporary directory, removed at the end of the test.
func temporaryDirectory(_ test: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("seqlab-tasks-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// Writes UTF-8 text to a file.
func write(_ text: String, to url: URL) throws { try Data(text.utf8).write(to: url) }
