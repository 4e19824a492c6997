public import Foundation

/// What `/proc` says about a process.
public enum ProcessTable {
    public struct Entry: Equatable, Sendable {
        /// `R`, `S`, `Z` (zombie), …
        public let state: Character
        /// Field 22: when the process started, in clock ticks since boot.
        public let startTime: UInt64
    }

    /// The process `pid`, or nil when there is none. The command name (field 2) may hold spaces
    /// and parentheses, so the fields are split after the last `)`.
    public static func entry(_ pid: Int32) -> Entry? {
        guard pid > 0, let data = FileManager.default.contents(atPath: "/proc/\(pid)/stat") else { return nil }
        let text = String(decoding: data, as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state); field 22 is fields[19].
        guard fields.count > 19, let state = fields[0].first, let start = UInt64(fields[19]) else { return nil }
        return Entry(state: state, startTime: start)
    }

    /// True when `pid` is alive and started at `startTime` (not a reused pid, not a zombie).
    public static func isAlive(_ pid: Int32, startTime: UInt64) -> Bool {
        guard let entry = entry(pid) else { return false }
        return entry.startTime == startTime && entry.state != "Z" && entry.state != "X"
    }

    /// Reaps `pid` if it is this process's exited child; returns how it ended.
    public static func reap(_ pid: Int32) -> String? {
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
        let signal = status & 0x7F
        if signal == 0 { return "exited \((status >> 8) & 0xFF)" }
        return "was killed by signal \(signal)"
    }

    /// The process whose environment holds `STET_INSTANCE=instance`: a replica whose start was
    /// cut short after the spawn and before its pid was recorded.
    public static func find(instance: String) -> (pid: Int32, entry: Entry)? {
        let marker = Array("STET_INSTANCE=\(instance)".utf8)
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return nil }
        for name in names {
            guard let pid = Int32(name), let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { continue }
            for variable in environ.split(separator: 0) where variable.elementsEqual(marker) {
                if let entry = entry(pid), entry.state != "Z" { return (pid, entry) }
            }
        }
        return nil
    }

    public static let signals: [String: Int32] = [
        "SIGTERM": SIGTERM, "SIGINT": SIGINT, "SIGQUIT": SIGQUIT, "SIGHUP": SIGHUP, "SIGKILL": SIGKILL,
        "SIGUSR1": SIGUSR1, "SIGUSR2": SIGUSR2, "SIGWINCH": SIGWINCH,
    ]
}
