import Foundation

/// Something a code cell produced: printed text, or a figure saved next to the Markdown.
public enum NotebookOutput: Equatable, Sendable {
    case text(String)
    /// An SVG file (name relative to the Markdown) and its caption.
    case figure(file: String, caption: String)
}

/// A mark in the captured standard output: where a code cell began (its `cell()` source line) or a figure was saved.
public enum NotebookEvent: Equatable, Sendable {
    case cell(line: Int)
    case figure(file: String, caption: String)
}

/// Turns a notebook's source, its captured standard output and the run's events into Markdown: prose as it is,
/// each code cell in a ```swift block followed by what it printed (a ```text block) and its figures.
public enum NotebookWeaver {
    /// The outputs of each code cell, by cell index: the captured bytes between one `cell()` event and the next go
    /// to the code cell holding that `cell()` line; figures go where they were saved. Output before the first
    /// `cell()` goes to the first code cell.
    public static func outputs(
        source: NotebookSource, captured: Data, events: [(offset: Int, event: NotebookEvent)]
    ) -> [Int: [NotebookOutput]] {
        let firstCode = source.cells.indices.first { if case .code = source.cells[$0] { return true } else { return false } }
        var result: [Int: [NotebookOutput]] = [:]
        var current = firstCode
        var start = 0
        func emitText(upTo end: Int) {
            let end = min(max(end, start), captured.count)
            if end > start, let cell = current {
                let text = String(decoding: captured[start..<end], as: UTF8.self)
                if case .text(let previous)? = result[cell]?.last {
                    result[cell]!.removeLast()
                    result[cell]!.append(.text(previous + text))
                } else {
                    result[cell, default: []].append(.text(text))
                }
            }
            start = max(start, end)
        }
        for (offset, event) in events.sorted(by: { $0.offset < $1.offset }) {
            emitText(upTo: offset)
            switch event {
            case .cell(let line):
                current = source.codeCell(containing: line) ?? current
            case .figure(let file, let caption):
                if let cell = current { result[cell, default: []].append(.figure(file: file, caption: caption)) }
            }
        }
        emitText(upTo: captured.count)
        return result
    }

    /// The Markdown document: optional header, the cells with their outputs, optional footer.
    public static func markdown(
        source: NotebookSource, outputs: [Int: [NotebookOutput]], header: String? = nil, footer: String? = nil
    ) -> String {
        var parts: [String] = []
        if let header { parts.append(header) }
        for (index, cell) in source.cells.enumerated() {
            switch cell {
            case .prose(let text):
                parts.append(text)
            case .code(let code, _):
                let shown = code.split(separator: "\n", omittingEmptySubsequences: false)
                    .filter { !NotebookSource.isCellMarker(String($0)) }.joined(separator: "\n")
                    .trimmingCharacters(in: .newlines)
                if !shown.isEmpty { parts.append("```swift\n\(shown)\n```") }
                for output in outputs[index] ?? [] {
                    switch output {
                    case .text(let text):
                        let trimmed = text.trimmingCharacters(in: .newlines)
                        if !trimmed.isEmpty { parts.append("```text\n\(trimmed)\n```") }
                    case .figure(let file, let caption):
                        parts.append("![\(caption)](\(file))")
                    }
                }
            }
        }
        if let footer { parts.append(footer) }
        return parts.joined(separator: "\n\n") + "\n"
    }
}
