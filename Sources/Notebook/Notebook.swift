import Experiments
import Foundation
import Tensors

// The run-time side of a notebook. `cell()` starts a code cell: the first call redirects standard output into a
// temporary file (still echoed to the terminal at every cell boundary) and registers an exit handler; each call
// records where in the captured output its cell begins. At exit the handler reads the notebook's own source
// (#filePath of the first `cell()`), weaves prose, code and outputs into Results/notebooks/NAME/NAME.md and
// removes figures of earlier runs that this run did not write. A run that crashes writes no Markdown.

/// Starts a code cell (see `NotebookSource` for the convention). `line` and `file` locate it in the source.
public func cell(line: Int = #line, file: String = #filePath) {
    Notebook.session(file: file).mark(.cell(line: line))
}

/// Saves `chart` as NAME/`name`.svg next to the notebook's Markdown (atomically) and shows it under the current cell.
public func saveFigure(_ chart: LineChart, name: String, caption: String? = nil, file: String = #filePath) {
    let session = Notebook.session(file: file)
    let fileName = "\(name).svg"
    do {
        try FileManager.default.createDirectory(at: session.outputDirectory, withIntermediateDirectories: true)
        try writeAtomically(Data(chart.svg().utf8), to: session.outputDirectory.appendingPathComponent(fileName))
    } catch {
        FileHandle.standardError.write(Data("notebook: \(error)\n".utf8))
        exit(1)
    }
    session.figuresWritten.insert(fileName)
    session.mark(.figure(file: fileName, caption: caption ?? chart.title))
}

/// The median wall time of `body` in milliseconds over `repeats` runs, after one warm-up run.
public func medianMilliseconds(repeats: Int = 5, _ body: () -> Void) -> Double {
    body()
    var times: [Double] = []
    for _ in 0..<max(repeats, 1) {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
    }
    times.sort()
    return times[times.count / 2]
}

/// The notebook run in progress (one per process).
public enum Notebook {
    nonisolated(unsafe) static var current: NotebookSession?

    static func session(file: String) -> NotebookSession {
        if let current { return current }
        let session = NotebookSession(sourcePath: file)
        current = session
        atexit { Notebook.current?.finish() }
        return session
    }
}

/// Captured standard output, the events marking cells and figures in it, and where the results go.
final class NotebookSession {
    let sourcePath: String
    let name: String
    let outputDirectory: URL
    let started = Date()
    var events: [(offset: Int, event: NotebookEvent)] = []
    var figuresWritten: Set<String> = []
    private let capturePath: String
    private let captureDescriptor: Int32
    private let terminal: Int32
    private var echoed = 0

    /// The source is Notebooks-as-scripts/NAME/main.swift; results go to Results/notebooks/NAME/ of the same
    /// checkout, or to $NOTEBOOK_RESULTS_DIR when set.
    init(sourcePath: String) {
        self.sourcePath = sourcePath
        let folder = URL(fileURLWithPath: sourcePath).deletingLastPathComponent()
        name = folder.lastPathComponent
        if let custom = ProcessInfo.processInfo.environment["NOTEBOOK_RESULTS_DIR"], !custom.isEmpty {
            outputDirectory = URL(fileURLWithPath: custom)
        } else {
            outputDirectory = folder.deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("Results/notebooks/\(name)")
        }
        var template = Array("\(NSTemporaryDirectory())/notebook-\(name)-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            FileHandle.standardError.write(Data("notebook: cannot create a temporary file for the output\n".utf8))
            exit(1)
        }
        capturePath = String(cString: template)
        captureDescriptor = fd
        fflush(stdout)
        terminal = dup(STDOUT_FILENO)
        dup2(fd, STDOUT_FILENO)
    }

    /// Flushes standard output, echoes what is new to the terminal and records `event` at the current offset.
    func mark(_ event: NotebookEvent) {
        let offset = flushAndEcho()
        events.append((offset, event))
    }

    /// The number of bytes captured so far (after echoing the new ones to the terminal).
    @discardableResult
    private func flushAndEcho() -> Int {
        fflush(stdout)
        let end = Int(lseek(captureDescriptor, 0, SEEK_CUR))
        if end > echoed {
            var buffer = [UInt8](repeating: 0, count: end - echoed)
            let count = buffer.withUnsafeMutableBytes { pread(captureDescriptor, $0.baseAddress!, end - echoed, off_t(echoed)) }
            if count > 0 { _ = buffer.withUnsafeBytes { write(terminal, $0.baseAddress!, count) } }
            echoed = end
        }
        return end
    }

    /// Restores standard output, writes NAME.md and removes stale figures.
    func finish() {
        flushAndEcho()
        dup2(terminal, STDOUT_FILENO)
        let captured = FileManager.default.contents(atPath: capturePath) ?? Data()
        close(captureDescriptor)
        unlink(capturePath)
        do {
            let text = try String(contentsOfFile: sourcePath, encoding: .utf8)
            let source = NotebookSource(parsing: text)
            let outputs = NotebookWeaver.outputs(source: source, captured: captured, events: events)
            let markdown = NotebookWeaver.markdown(source: source, outputs: outputs, header: header, footer: footer)
            try FileManager.default.createDirectory(at: outputDirectory, withIntermediateDirectories: true)
            let file = outputDirectory.appendingPathComponent("\(name).md")
            try writeAtomically(Data(markdown.utf8), to: file)
            for stale in (try? FileManager.default.contentsOfDirectory(atPath: outputDirectory.path)) ?? []
            where stale.hasSuffix(".svg") && !figuresWritten.contains(stale) {
                try? FileManager.default.removeItem(at: outputDirectory.appendingPathComponent(stale))
            }
            print("notebook: wrote \(file.path)" + (figuresWritten.isEmpty ? "" : " and \(figuresWritten.count) figure(s)"))
        } catch {
            FileHandle.standardError.write(Data("notebook: \(error)\n".utf8))
        }
        fflush(stdout)
    }

    private var header: String {
        "<!-- Written by `scripts/notebook \(name)` from Notebooks-as-scripts/\(name)/main.swift; edit that file, not this one. -->"
    }

    private var footer: String {
        #if DEBUG
        let build = "debug build (timings are not representative)"
        #else
        let build = "release build"
        #endif
        let seconds = String(format: "%.1f", Date().timeIntervalSince(started))
        let date = ISO8601DateFormatter().string(from: started)
        return "---\n*Run on \(date), \(build), \(ProcessInfo.processInfo.activeProcessorCount) cores, \(seconds) s.*"
    }
}
