import Foundation
import Tensors

/// `lra_retrieval`: LRA's byte-level document matching (ACL Anthology Network citations, Radev et al. 2013) from
/// the released TSV files `new_aan_pairs.train.tsv`, `new_aan_pairs.eval.tsv`, `new_aan_pairs.test.tsv` (or
/// train.tsv, eval.tsv / val.tsv, test.tsv): no header, one pair per line, `label<TAB>id1<TAB>id2<TAB>text1<TAB>text2`
/// with label 0.0 or 1.0 (does one paper cite the other?). Each document becomes bytes 0-255 (pad 256), truncated to
/// `max_length`; the task's head is the dual-encoder `matching` head (tokens = text1, pairedTokens = text2).
public enum LRARetrievalTask: TaskFactory {
    public static let name = "lra_retrieval"
    public static let summary = "LRA Retrieval: byte-level AAN citation matching of two documents (dual encoder), 2 classes"
    public static let options: [OptionSpec] = [
        .text("path", "", "directory with new_aan_pairs.{train,eval,test}.tsv"),
        .int("max_length", 4000, "truncate each document to this many bytes (LRA: 4000)", min: 1, max: maximumSequenceLength),
    ]

    /// Each document of a pair.
    public static func trainingLength(_ options: OptionValues) -> Int { options.int("max_length") }

    public static func make(options: OptionValues, seed: UInt64) throws -> any SequenceTask {
        let directory = try TaskFiles.directory(options, task: name, expecting: "new_aan_pairs.{train,eval,test}.tsv")
        let maxLength = options.int("max_length")
        let names = [["new_aan_pairs.train.tsv", "train.tsv"],
                     ["new_aan_pairs.eval.tsv", "eval.tsv", "val.tsv"],
                     ["new_aan_pairs.test.tsv", "test.tsv"]]
        let splits = try zip(["train", "validation", "test"], names).map { split, files in
            try read(try TaskFiles.require(files, in: directory, task: name), maxLength: maxLength).dataset(split)
        }
        return BasicTask(name: name, inputVocabulary: 257, outputClasses: 2, head: .matching,
                         train: splits[0], validation: splits[1], tests: [splits[2]])
    }

    static func read(_ url: URL, maxLength: Int) throws -> ByteDocuments {
        var docs = ByteDocuments()
        for (number, line) in TaskFiles.lines(try TaskFiles.read(url, task: name)) {
            if line.isEmpty { continue }
            guard let fields = TaskFiles.fields(line, count: 5) else {
                throw TaskFiles.error(name, url, line: number, "expected label<TAB>id1<TAB>id2<TAB>text1<TAB>text2")
            }
            guard let label = TaskFiles.label(fields[0], classes: 2) else {
                throw TaskFiles.error(name, url, line: number, "label '\(TaskFiles.text(fields[0].prefix(20)))' is not 0 or 1")
            }
            guard !fields[3].isEmpty, !fields[4].isEmpty else { throw TaskFiles.error(name, url, line: number, "empty document") }
            docs.labels.append(label)
            docs.documents.append(Array(fields[3].prefix(maxLength)))
            docs.paired.append(Array(fields[4].prefix(maxLength)))
        }
        guard !docs.labels.isEmpty else { throw SequenceLabError("task \(name): \(url.lastPathComponent) has no examples") }
        return docs
    }
}
