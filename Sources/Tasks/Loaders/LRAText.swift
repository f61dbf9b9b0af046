import Foundation
import Tensors

/// Byte-level documents held in memory; examples are built on demand (tokens = bytes 0-255).
struct ByteDocuments: Sendable {
    var labels: [Int] = []
    var documents: [[UInt8]] = []
    var paired: [[UInt8]] = []

    func subset(_ indices: [Int]) -> ByteDocuments {
        ByteDocuments(labels: indices.map { labels[$0] }, documents: indices.map { documents[$0] },
                      paired: paired.isEmpty ? [] : indices.map { paired[$0] })
    }

    func dataset(_ name: String) -> Dataset {
        let docs = self
        return Dataset(name: name, count: labels.count) { i in
            Example(tokens: docs.documents[i].map { Int($0) }, label: docs.labels[i],
                    pairedTokens: docs.paired.isEmpty ? [] : docs.paired[i].map { Int($0) })
        }
    }
}

/// The three splits of a loader whose validation file is optional: without one, a fixed random `fraction` of the
/// training data is held out.
func textSplits(train: ByteDocuments, validation: ByteDocuments?, test: ByteDocuments,
                fraction: Double) -> (Dataset, Dataset, Dataset) {
    if let validation { return (train.dataset("train"), validation.dataset("validation"), test.dataset("test")) }
    let (kept, held) = BasicTask.holdOut(Array(0..<train.labels.count), fraction: fraction)
    return (train.subset(kept).dataset("train"), train.subset(held).dataset("validation"), test.dataset("test"))
}

/// `lra_text`: LRA's byte-level text classification (IMDB reviews, Maas et al. 2011) from TSV files you provide:
/// one example per line, `label<TAB>text` (label 0 or 1, also written 0.0 / 1.0; the text is the rest of the line),
/// an optional header line `label<TAB>text`. Files in `path`: train.tsv, test.tsv and optionally val.tsv (or
/// dev.tsv); without one, `val_fraction` of train.tsv is held out. Tokens are the UTF-8 bytes (0-255, pad 256),
/// truncated to `max_length`.
public enum LRATextTask: TaskFactory {
    public static let name = "lra_text"
    public static let summary = "LRA Text: byte-level IMDB sentiment from label<TAB>text files, 2 classes"
    public static let options: [OptionSpec] = [
        .text("path", "", "directory with train.tsv, test.tsv and optionally val.tsv"),
        .int("max_length", 4096, "truncate documents to this many bytes", min: 1, max: maximumSequenceLength),
        .int("classes", 2, "number of classes (labels 0..<classes)", min: 2, max: 1 << 20),
        .number("val_fraction", 0.1, "share of train.tsv held out for validation when there is no val.tsv", min: 0, below: 1),
    ]

    public static func trainingLength(_ options: OptionValues) -> Int { options.int("max_length") }

    public static func make(options: OptionValues, seed: UInt64) throws -> any SequenceTask {
        let directory = try TaskFiles.directory(options, task: name, expecting: "train.tsv and test.tsv")
        let maxLength = options.int("max_length"), classes = options.int("classes"), fraction = options.double("val_fraction")
        func load(_ url: URL) throws -> ByteDocuments { try read(url, maxLength: maxLength, classes: classes) }
        let train = try load(try TaskFiles.require(["train.tsv"], in: directory, task: name))
        let test = try load(try TaskFiles.require(["test.tsv"], in: directory, task: name))
        let validation = try TaskFiles.firstExisting(["val.tsv", "dev.tsv"], in: directory).map(load)
        let (tr, va, te) = textSplits(train: train, validation: validation, test: test, fraction: fraction)
        return BasicTask(name: name, inputVocabulary: 257, outputClasses: classes, head: .classification,
                         train: tr, validation: va, tests: [te])
    }

    static func read(_ url: URL, maxLength: Int, classes: Int) throws -> ByteDocuments {
        var docs = ByteDocuments()
        for (number, line) in TaskFiles.lines(try TaskFiles.read(url, task: name)) {
            if line.isEmpty { continue }
            guard let fields = TaskFiles.fields(line, count: 2) else {
                throw TaskFiles.error(name, url, line: number, "expected label<TAB>text")
            }
            guard let label = TaskFiles.label(fields[0], classes: classes) else {
                if number == 1 && TaskFiles.text(fields[0]).lowercased() == "label" { continue }  // header
                throw TaskFiles.error(name, url, line: number, "label '\(TaskFiles.text(fields[0].prefix(20)))' is not a class 0-\(classes - 1)")
            }
            guard !fields[1].isEmpty else { throw TaskFiles.error(name, url, line: number, "empty text") }
            docs.labels.append(label)
            docs.documents.append(Array(fields[1].prefix(maxLength)))
        }
        guard !docs.labels.isEmpty else { throw SequenceLabError("task \(name): \(url.lastPathComponent) has no examples") }
        return docs
    }
}
