import Foundation

// The cell convention of the notebooks in Notebooks-as-scripts/ (a runnable literate Swift script per notebook):
//
//     //: # A title                  prose: lines that start with `//:` at column 0 are Markdown (the `//:` and one
//     //: Some *Markdown* text.        space are removed; Swift playgrounds use the same markup)
//     cell()                         a code cell: the Swift lines up to the next prose block or `cell()` line;
//     let x = 2                        `cell()` marks where it starts at run time, so what the cell prints is
//     print(x * x)                     shown under its code
//
// A code cell without a `cell()` line (imports, helper functions) is shown without output.

/// One cell of a notebook: Markdown prose, or Swift code with the source lines it spans (1-based, inclusive).
public enum NotebookCell: Equatable, Sendable {
    case prose(String)
    case code(String, lines: ClosedRange<Int>)
}

/// A notebook's source split into cells (see the convention above).
public struct NotebookSource: Equatable, Sendable {
    /// The cells in source order; empty code cells (blank lines only) are dropped.
    public let cells: [NotebookCell]

    /// Splits `text` (the contents of NAME/main.swift) into prose and code cells.
    public init(parsing text: String) {
        var cells: [NotebookCell] = []
        var prose: [String] = []
        var code: [String] = []
        var codeStart = 1
        func flushProse() {
            if !prose.isEmpty { cells.append(.prose(prose.joined(separator: "\n"))) }
            prose = []
        }
        func flushCode() {
            // Leading and trailing blank lines are not part of the cell.
            var first = 0, last = code.count - 1
            while first <= last && code[first].trimmingCharacters(in: .whitespaces).isEmpty { first += 1 }
            while last >= first && code[last].trimmingCharacters(in: .whitespaces).isEmpty { last -= 1 }
            if first <= last {
                cells.append(.code(code[first...last].joined(separator: "\n"), lines: (codeStart + first)...(codeStart + last)))
            }
            code = []
        }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for (index, line) in lines.enumerated() {
            let number = index + 1
            if let markdown = Self.prose(line) {
                flushCode()
                prose.append(markdown)
                codeStart = number + 1
            } else if Self.isCellMarker(line) {
                flushProse()
                flushCode()
                codeStart = number
                code.append(line)
            } else {
                flushProse()
                if code.isEmpty { codeStart = number }
                code.append(line)
            }
        }
        flushProse()
        flushCode()
        self.cells = cells
    }

    /// The Markdown of a prose line (`//:` at column 0, then one optional space), or nil for any other line.
    static func prose(_ line: Substring) -> String? { prose(String(line)) }
    static func prose(_ line: String) -> String? {
        guard line.hasPrefix("//:") else { return nil }
        var rest = line.dropFirst(3)
        if rest.first == " " { rest = rest.dropFirst() }
        return String(rest)
    }

    /// True for the line that starts a code cell at run time: `cell()` at column 0, optionally followed by a comment.
    public static func isCellMarker(_ line: String) -> Bool {
        guard line.hasPrefix("cell()") else { return false }
        let rest = line.dropFirst(6).trimmingCharacters(in: .whitespaces)
        return rest.isEmpty || rest.hasPrefix("//")
    }

    /// The index of the code cell that contains source line `line`, if any.
    public func codeCell(containing line: Int) -> Int? {
        cells.indices.first { i in
            if case .code(_, let lines) = cells[i] { return lines.contains(line) }
            return false
        }
    }
}
