import Dispatch
import Foundation
import StetCore
import StetEngine

/// What `stet apply` shows while its actions run, so no output is silent for more than a few
/// seconds. On a terminal: a live line per running action with its elapsed time and what it
/// last reported (a backup's percent, files and bytes; a wait's last check), rewritten in place
/// every second; an action that ends is printed above them for good. Elsewhere (CI logs): one
/// line when an action starts, one when it ends, and `still running: ACTION (Ns)` every 10 s
/// while it runs. Events come from the threads that run the actions; one lock orders the
/// output.
final class ApplyProgress: @unchecked Sendable {
    private let out = Terminal.standardOutput
    /// Live lines rewritten in place: standard output is a terminal that can move its cursor.
    let live: Bool
    /// Seconds between `still running` lines when not live.
    static let notice: UInt64 = 10

    private struct Running {
        let id: String
        let started: UInt64
        var detail: String?
        var noticed: UInt64
    }

    private let lock = NSLock()
    private var running: [Running] = []
    /// Live lines on the screen now, below the permanent output.
    private var drawn = 0
    private var timer: (any DispatchSourceTimer)?

    init() {
        live = isatty(1) == 1 && ProcessInfo.processInfo.environment["TERM"] != "dumb"
    }

    /// Starts the clock that refreshes live lines (every second) or writes `still running`
    /// lines: on a dispatch queue of its own, so actions that hold Swift's threads do not stop it.
    func start() {
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "stet-progress"))
        timer.schedule(deadline: .now() + 1, repeating: 1)
        timer.setEventHandler { [self] in tick() }
        timer.resume()
        lock.withLock { self.timer = timer }
    }

    /// Stops the clock and clears the live lines.
    func stop() {
        lock.withLock {
            timer?.cancel()
            timer = nil
            running = []
            redraw(permanent: [])
        }
    }

    func handle(_ event: Applier.Event) {
        let now = DispatchTime.now().uptimeNanoseconds
        lock.withLock {
            switch event {
            case .started(let action):
                running.append(Running(id: action.id, started: now, detail: nil, noticed: now))
                redraw(permanent: live ? [] : ["\(out.dim("start"))  \(action.id)"])
            case .running(let action, let detail):
                guard let index = running.firstIndex(where: { $0.id == action.id }) else { return }
                running[index].detail = detail
            case .ended(let action, let outcome, let seconds):
                running.removeAll { $0.id == action.id }
                let mark = outcome.ok ? out.green("ok") : out.red("failed")
                redraw(permanent: [
                    "\(mark)  \(action.id)  \(outcome.ok ? outcome.detail : outcome.error ?? "")" + String(format: "  (%.1f s)", seconds),
                ])
            }
        }
    }

    private func tick() {
        let now = DispatchTime.now().uptimeNanoseconds
        lock.withLock {
            guard timer != nil else { return }
            if live { return redraw(permanent: []) }
            var notices: [String] = []
            for index in running.indices where now >= running[index].noticed + Self.notice * 1_000_000_000 {
                running[index].noticed = now
                notices.append("still running: \(running[index].id) (\(Self.elapsed(running[index].started, now)))"
                    + (running[index].detail.map { ": \($0)" } ?? ""))
            }
            if !notices.isEmpty { redraw(permanent: notices) }
        }
    }

    /// Writes `permanent` lines; on a terminal, first clears the live lines and then draws them
    /// again below, each cut to the terminal's width so none wraps (a wrapped line would leave
    /// the next rewind short). Called with the lock held.
    private func redraw(permanent: [String]) {
        guard live else {
            for line in permanent { out.line(line) }
            return
        }
        let now = DispatchTime.now().uptimeNanoseconds
        let width = max(out.columns - 1, 20)
        var text = out.rewind(drawn)
        for line in permanent { text += TextEscaping.escape(line) + "\n" }
        for action in running {
            let line = TextEscaping.escape("  \(action.id)  \(Self.elapsed(action.started, now))" + (action.detail.map { "  \($0)" } ?? ""))
            text += String(line.prefix(width)) + "\n"
        }
        drawn = running.count
        out.write(text)
    }

    static func elapsed(_ started: UInt64, _ now: UInt64) -> String { "\(now >= started ? (now - started) / 1_000_000_000 : 0)s" }
}
