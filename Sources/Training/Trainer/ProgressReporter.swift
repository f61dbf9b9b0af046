import Foundation

/// Progress on a terminal: one redrawn line (step, steps/s, loss, accuracy, ETA); when output is a file or pipe, a
/// plain log line per logging window instead.
final class ProgressReporter {
    let total: Int
    let log: (String) -> Void
    private let interactive = isatty(STDOUT_FILENO) != 0
    private let started = Date()
    private var firstStep: Int?
    private var lastDraw = Date.distantPast

    init(total: Int, log: @escaping (String) -> Void) {
        self.total = total
        self.log = log
    }

    func update(step: Int, loss: Double, accuracy: Double) {
        guard interactive else { return }
        if firstStep == nil { firstStep = step - 1 }
        guard Date().timeIntervalSince(lastDraw) > 0.2 || step == total else { return }
        lastDraw = Date()
        let rate = Double(step - firstStep!) / max(1e-9, Date().timeIntervalSince(started))
        let eta = rate > 0 ? Double(total - step) / rate : 0
        let line = String(format: "\r\u{1B}[2Kstep %d/%d  %.2f steps/s  loss %.4f  acc %.3f  ETA %dm%02ds",
                          step, total, rate, loss, accuracy, Int(eta) / 60, Int(eta) % 60)
        FileHandle.standardOutput.write(Data(line.utf8))
    }

    /// A plain line for a log file (nothing on a terminal, where the redrawn line shows the same): the window's mean
    /// loss and accuracy, its speed, and the ETA at that speed.
    func window(step: Int, loss: Double, accuracy: Double, stepsPerSecond: Double) {
        guard !interactive else { return }
        let eta = stepsPerSecond > 0 ? Double(total - step) / stepsPerSecond : 0
        log(String(format: "step %d/%d: loss %.4f acc %.3f, %.2f steps/s, ETA %dm%02ds", step, total, loss, accuracy,
                   stepsPerSecond, Int(eta) / 60, Int(eta) % 60))
    }

    func finish() {
        if interactive && firstStep != nil { FileHandle.standardOutput.write(Data("\n".utf8)) }
    }
}
