import Foundation

/// Progress on a terminal: one redrawn line (step, steps/s, loss, accuracy, ETA); nothing when output is a file or
/// pipe (the trainer's plain log lines are enough there).
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

    func finish() {
        if interactive && firstStep != nil { FileHandle.standardOutput.write(Data("\n".utf8)) }
    }
}
