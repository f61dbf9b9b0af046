import Foundation
import Tensors

/// File access for the loaders: every failure becomes a one-line `SequenceLabError` naming the task and the file.
enum TaskFiles {
    /// The directory given by option `path`, which must exist.
    static func directory(_ options: OptionValues, task: String, expecting contents: String) throws -> URL {
        let path = options.string("path")
        guard !path.isEmpty else {
            throw SequenceLabError("task \(task): set option path to the directory holding \(contents)")
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw SequenceLabError("task \(task): directory \(path) does not exist")
        }
        guard isDirectory.boolValue else {
            throw SequenceLabError("task \(task): \(path) is not a directory (expected one holding \(contents))")
        }
        return URL(fileURLWithPath: path, isDirectory: true)
    }

    /// The first of `names` that exists in `directory`, or nil.
    static func firstExisting(_ names: [String], in directory: URL) -> URL? {
        names.lazy.map { directory.appendingPathComponent($0) }.first { FileManager.default.fileExists(atPath: $0.path) }
    }

    /// The first of `names` that exists in `directory`; an error listing them otherwise.
    static func require(_ names: [String], in directory: URL, task: String) throws -> URL {
        guard let url = firstExisting(names, in: directory) else {
            throw SequenceLabError("task \(task): missing file \(names.joined(separator: " or ")) in \(directory.path)")
        }
        return url
    }

    /// The bytes of a file.
    static func read(_ url: URL, task: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw SequenceLabError("task \(task): cannot read \(url.path)")
        }
        return [UInt8](data)
    }

    /// The lines of a byte buffer split at '\n' (a trailing '\r' is removed; a final empty line is dropped), each
    /// with its 1-based line number.
    static func lines(_ bytes: [UInt8]) -> [(number: Int, bytes: ArraySlice<UInt8>)] {
        var out: [(Int, ArraySlice<UInt8>)] = []
        var start = 0
        var number = 1
        let n = bytes.count
        while start < n {
            var end = start
            while end < n && bytes[end] != 0x0A { end += 1 }
            var stop = end
            if stop > start && bytes[stop - 1] == 0x0D { stop -= 1 }
            out.append((number, bytes[start..<stop]))
            number += 1
            start = end + 1
        }
        return out
    }

    /// The tab-separated fields of a line; the last field takes the rest of the line (tabs included) so that text
    /// columns survive. Returns nil if there are fewer than `count` fields.
    static func fields(_ line: ArraySlice<UInt8>, count: Int) -> [ArraySlice<UInt8>]? {
        var out: [ArraySlice<UInt8>] = []
        var start = line.startIndex
        while out.count < count - 1 {
            guard let tab = line[start...].firstIndex(of: 0x09) else { return nil }
            out.append(line[start..<tab])
            start = tab + 1
        }
        out.append(line[start...])
        return out
    }

    /// A field as text (invalid UTF-8 bytes replaced), for labels and error messages.
    static func text(_ field: ArraySlice<UInt8>) -> String {
        String(decoding: field, as: UTF8.self)
    }

    /// A class label written as an integer or a float with a zero fraction ("1", "1.0"), in 0..<classes.
    static func label(_ field: ArraySlice<UInt8>, classes: Int) -> Int? {
        let s = text(field).trimmingCharacters(in: .whitespaces)
        if let v = Int(s), (0..<classes).contains(v) { return v }
        if let d = Double(s), d.rounded() == d, let v = Int(exactly: d), (0..<classes).contains(v) { return v }
        return nil
    }

    /// A one-line error for a bad line of a file.
    static func error(_ task: String, _ url: URL, line: Int, _ problem: String) -> SequenceLabError {
        SequenceLabError("task \(task): \(url.lastPathComponent) line \(line): \(problem)")
    }
}

extension BasicTask {
    /// Splits `examples` into (kept, held-out) with the held-out part a random `fraction` (at least one example
    /// when there are at least two), for loaders whose data has no validation file. The choice is fixed (it does not
    /// depend on the run's seed), so that runs with different seeds validate on the same examples.
    static func holdOut<T>(_ examples: [T], fraction: Double) -> (kept: [T], heldOut: [T]) {
        guard examples.count >= 2, fraction > 0 else { return (examples, []) }
        let count = min(examples.count - 1, max(1, Int((Double(examples.count) * fraction).rounded())))
        var rng = exampleGenerator(seed: 0x484F_4C44, split: "holdout", index: 0)
        var order = Array(0..<examples.count)
        rng.shuffle(&order)
        let held = Set(order.prefix(count))
        var kept: [T] = []
        var heldOut: [T] = []
        for (i, e) in examples.enumerated() {
            if held.contains(i) { heldOut.append(e) } else { kept.append(e) }
        }
        return (kept, heldOut)
    }
}
