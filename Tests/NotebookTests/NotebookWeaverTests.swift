import Foundation
import XCTest
@testable import Notebook

/// The notebook convention end to end without a process: source -> cells -> outputs per cell -> Markdown.
final class NotebookWeaverTests: XCTestCase {
    let source = """
        //: # Title
        //:
        //: Some *prose*.
        import Foundation

        func square(_ x: Int) -> Int { x * x }

        //: ## Second
        cell()
        let a = square(3)
        print(a)
        cell()  // a second cell without prose in between
        print("b")
        // an ordinary comment stays code
        //:tight prose
        """

    func testSplitsProseAndCodeCellsWithTheirLines() {
        let cells = NotebookSource(parsing: source).cells
        XCTAssertEqual(cells, [
            .prose("# Title\n\nSome *prose*."),
            .code("import Foundation\n\nfunc square(_ x: Int) -> Int { x * x }", lines: 4...6),
            .prose("## Second"),
            .code("cell()\nlet a = square(3)\nprint(a)", lines: 9...11),
            .code("cell()  // a second cell without prose in between\nprint(\"b\")\n// an ordinary comment stays code", lines: 12...14),
            .prose("tight prose"),
        ])
        XCTAssertTrue(NotebookSource.isCellMarker("cell()"))
        XCTAssertTrue(NotebookSource.isCellMarker("cell()   // note"))
        XCTAssertFalse(NotebookSource.isCellMarker("  cell()"), "only at column 0")
        XCTAssertFalse(NotebookSource.isCellMarker("cell(); print(1)"))
        XCTAssertFalse(NotebookSource.isCellMarker("cellular()"))
    }

    func testAttributesCapturedOutputToTheCellThatPrintedIt() {
        let parsed = NotebookSource(parsing: source)
        let captured = Data("early\n9\nb\nlate\n".utf8)
        // "early" before any cell() goes to the first code cell; "9" to the cell of line 9; a figure saved after "b";
        // "late" stays with the cell of line 12. An unknown line keeps the current cell.
        let events: [(offset: Int, event: NotebookEvent)] = [
            (6, .cell(line: 9)), (8, .cell(line: 12)), (10, .figure(file: "f.svg", caption: "A figure")), (10, .cell(line: 999)),
        ]
        let outputs = NotebookWeaver.outputs(source: parsed, captured: captured, events: events)
        XCTAssertEqual(outputs[1], [.text("early\n")])
        XCTAssertEqual(outputs[3], [.text("9\n")])
        XCTAssertEqual(outputs[4], [.text("b\n"), .figure(file: "f.svg", caption: "A figure"), .text("late\n")])
        XCTAssertNil(outputs[0])
    }

    func testWeavesMarkdownWithCodeOutputsAndFigures() {
        let parsed = NotebookSource(parsing: source)
        let markdown = NotebookWeaver.markdown(
            source: parsed,
            outputs: [3: [.text("9\n")], 4: [.text("b\n\n"), .figure(file: "f.svg", caption: "A figure")]],
            header: "<!-- header -->", footer: "footer")
        XCTAssertEqual(markdown, """
            <!-- header -->

            # Title

            Some *prose*.

            ```swift
            import Foundation

            func square(_ x: Int) -> Int { x * x }
            ```

            ## Second

            ```swift
            let a = square(3)
            print(a)
            ```

            ```text
            9
            ```

            ```swift
            print("b")
            // an ordinary comment stays code
            ```

            ```text
            b
            ```

            ![A figure](f.svg)

            tight prose

            footer

            """)
    }

    /// Every committed notebook parses into prose and code cells, starts with a title and marks its code cells.
    func testCommittedNotebooksFollowTheConvention() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let folder = root.appendingPathComponent("Notebooks-as-scripts")
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter {
            FileManager.default.fileExists(atPath: folder.appendingPathComponent("\($0)/main.swift").path)
        }
        XCTAssertGreaterThanOrEqual(names.count, 4, "\(names)")
        for name in names {
            let text = try String(contentsOf: folder.appendingPathComponent("\(name)/main.swift"), encoding: .utf8)
            let cells = NotebookSource(parsing: text).cells
            guard case .prose(let first)? = cells.first else { return XCTFail("\(name): starts with a code cell") }
            XCTAssertTrue(first.hasPrefix("# "), "\(name): the first prose cell is the title")
            let marked = cells.filter { if case .code(let code, _) = $0 { return code.hasPrefix("cell()") } else { return false } }
            XCTAssertGreaterThanOrEqual(marked.count, 3, "\(name): code cells with cell()")
        }
    }
}
