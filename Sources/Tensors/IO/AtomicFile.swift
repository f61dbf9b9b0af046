import Foundation

/// An error writing a file: one line naming the path and the reason.
public struct FileWriteError: Error, CustomStringConvertible {
    public let description: String
}

/// Writes `data` so that readers see either the old file or the whole new one, never a part: to
/// `<path>.tmp-<pid>` in the same directory, synced to disk, then renamed over `url`. On failure the temporary
/// file is removed and the old file is untouched. Checkpoints, results and outputs all go through this.
public func writeAtomically(_ data: Data, to url: URL) throws {
    let path = url.path
    guard !path.isEmpty, !url.hasDirectoryPath else { throw FileWriteError(description: "'\(path)' does not name a file") }
    var status = stat()
    if lstat(path, &status) == 0, (status.st_mode & S_IFMT) != S_IFREG {
        throw FileWriteError(description: "\(path) exists and is not a regular file; refusing to replace it")
    }
    let tmp = "\(path).tmp-\(ProcessInfo.processInfo.processIdentifier)"
    do {
        guard FileManager.default.createFile(atPath: tmp, contents: nil) else {
            throw FileWriteError(description: "\(path): cannot create temporary file \(tmp)")
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: tmp))
        defer { try? handle.close() }
        try handle.write(contentsOf: data)
        try handle.synchronize()
    } catch {
        try? FileManager.default.removeItem(atPath: tmp)
        if let e = error as? FileWriteError { throw e }
        throw FileWriteError(description: "\(path): cannot write (\((error as NSError).localizedDescription))")
    }
    guard rename(tmp, path) == 0 else {
        let message = String(cString: strerror(errno))
        try? FileManager.default.removeItem(atPath: tmp)
        throw FileWriteError(description: "\(path): cannot rename \(tmp) over it (\(message))")
    }
}
