import Foundation
import Tensors

/// `listops_tsv`: LRA's released ListOps files (`basic_train.tsv`, `basic_val.tsv`, `basic_test.tsv`, written by
/// lra_benchmarks/data/listops.py): a header naming the columns `Source` and `Target`, then one row per example,
/// e.g. `( ( ( [MAX 2 ) 9 ) ] )<TAB>9`. Parentheses are dropped; the other words map to `ListOpsVocabulary` ids.
public enum ListOpsTSVTask: TaskFactory {
    public static let name = "listops_tsv"
    public static let summary = "ListOps from LRA's released TSV files (basic_{train,val,test}.tsv), 10 classes"
    public static let options: [OptionSpec] = [
        .text("path", "", "directory with basic_train.tsv, basic_val.tsv, basic_test.tsv"),
        .int("max_length", 2000, "truncate longer sequences to this many tokens (LRA: 2000)", min: 1, max: maximumSequenceLength),
    ]

    static let files = [("train", "basic_train.tsv"), ("validation", "basic_val.tsv"), ("test", "basic_test.tsv")]

    public static func trainingLength(_ options: OptionValues) -> Int { options.int("max_length") }

    public static func make(options: OptionValues, seed: UInt64) throws -> any SequenceTask {
        let directory = try TaskFiles.directory(options, task: name, expecting: "basic_train.tsv, basic_val.tsv, basic_test.tsv")
        let maxLength = options.int("max_length")
        var splits: [Dataset] = []
        for (split, file) in files {
            let url = try TaskFiles.require([file], in: directory, task: name)
            splits.append(Dataset(name: split, examples: try read(url, maxLength: maxLength)))
        }
        return BasicTask(
            name: name, inputVocabulary: ListOpsVocabulary.size, outputClasses: 10, head: .classification,
            train: splits[0], validation: splits[1], tests: [splits[2]])
    }

    /// The examples of one file.
    static func read(_ url: URL, maxLength: Int) throws -> [Example] {
        let lines = TaskFiles.lines(try TaskFiles.read(url, task: name))
        guard let header = lines.first else { throw SequenceLabError("task \(name): \(url.lastPathComponent) is empty") }
        let columns = TaskFiles.text(header.bytes).split(separator: "\t", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        guard let source = columns.firstIndex(of: "Source"), let target = columns.firstIndex(of: "Target") else {
            throw TaskFiles.error(name, url, line: 1, "expected a header with columns Source and Target, found '\(columns.joined(separator: "\\t"))'")
        }
        var examples: [Example] = []
        for (number, bytes) in lines.dropFirst() {
            if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            let fields = TaskFiles.text(bytes).split(separator: "\t", omittingEmptySubsequences: false)
            guard fields.count == columns.count else {
                throw TaskFiles.error(name, url, line: number, "expected \(columns.count) tab-separated fields, found \(fields.count)")
            }
            guard let label = TaskFiles.label(ArraySlice(fields[target].utf8), classes: 10) else {
                throw TaskFiles.error(name, url, line: number, "target '\(fields[target])' is not a class 0-9")
            }
            var tokens: [Int] = []
            for word in fields[source].split(whereSeparator: { $0 == " " || $0 == "(" || $0 == ")" }) {
                guard let id = ListOpsVocabulary.id(of: word) else {
                    throw TaskFiles.error(name, url, line: number, "unknown ListOps word '\(word)'")
                }
                tokens.append(id)
            }
            guard !tokens.isEmpty else { throw TaskFiles.error(name, url, line: number, "empty source") }
            examples.append(Example(tokens: Array(tokens.prefix(maxLength)), label: label))
        }
        guard !examples.isEmpty else { throw SequenceLabError("task \(name): \(url.lastPathComponent) has no examples") }
        return examples
    }
}
