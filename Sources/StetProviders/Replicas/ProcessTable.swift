public import Foundation
import StetCore

/// What `/proc` says about a process.
public enum ProcessTable {
    public struct Entry: Equatable, Sendable {
        /// `R`, `S`, `Z` (zombie), …
        public let state: Character
        /// Field 22: when the process started, in clock ticks since boot.
        public let startTime: UInt64
    }

    /// The process `pid`, or nil when there is none. The command name (field 2) may hold spaces
    /// and parentheses, so the fields are split after the last `)`. Read with one `read` into a
    /// buffer on the stack and parsed as bytes: the loop asks this of every replica in every
    /// pass, and on the way from a replica's exit to its replacement.
    public static func entry(_ pid: Int32) -> Entry? {
        guard pid > 0 else { return nil }
        let fd = "/proc/\(pid)/stat".withCString { open($0, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 4096) { buffer -> Entry? in
            var length = 0
            while length < buffer.count {
                let count = read(fd, buffer.baseAddress! + length, buffer.count - length)
                if count < 0, errno == EINTR { continue }
                guard count > 0 else { break }
                length += count
            }
            return parse(UnsafeBufferPointer(rebasing: buffer[..<length]))
        }
    }

    /// The state and start time in the text of `/proc/PID/stat`.
    static func parse(_ stat: UnsafeBufferPointer<UInt8>) -> Entry? {
        guard let close = stat.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        // After ")": " S ppid …"; the state is field 3, the start time field 22.
        var field = 2
        var index = close + 1
        var state: UInt8?
        while index < stat.count {
            while index < stat.count, stat[index] == UInt8(ascii: " ") { index += 1 }
            guard index < stat.count else { break }
            field += 1
            var end = index
            while end < stat.count, stat[end] != UInt8(ascii: " "), stat[end] != UInt8(ascii: "\n") { end += 1 }
            if field == 3 {
                guard end - index == 1 else { return nil }
                state = stat[index]
            } else if field == 22 {
                var value: UInt64 = 0
                guard end > index else { return nil }
                for digit in stat[index..<end] {
                    guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(digit) else { return nil }
                    let (times, overflow) = value.multipliedReportingOverflow(by: 10)
                    let (sum, carry) = times.addingReportingOverflow(UInt64(digit - UInt8(ascii: "0")))
                    guard !overflow, !carry else { return nil }
                    value = sum
                }
                guard let state, state < 0x80 else { return nil }
                return Entry(state: Character(Unicode.Scalar(state)), startTime: value)
            }
            index = end + 1
        }
        return nil
    }

    /// How long ago a process started at `startTime` (clock ticks after boot, field 22) did, on
    /// the boot clock: unlike a wall-clock date, a step of the wall clock does not change it. Nil
    /// when the kernel's tick rate is unknown or the start time lies ahead (another boot's).
    public static func age(startTime: UInt64) -> Double? {
        let ticks = sysconf(Int32(_SC_CLK_TCK))
        guard ticks > 0, startTime > 0 else { return nil }
        let started = Double(startTime) / Double(ticks)
        let now = Double(BootClock.now()) / 1e9
        guard now >= started else { return nil }
        return now - started
    }

    /// When a process recorded as started at `recorded` started, for the start period: the
    /// recorded date, unless it lies ahead of `now` (the wall clock was stepped back since), when
    /// the boot clock says how long ago it was (`age`). A step back therefore does not keep a
    /// replica "starting", and unchecked, for the length of the step.
    public static func startDate(startTime: UInt64, recorded: Date, now: Date) -> Date {
        guard recorded > now.addingTimeInterval(1) else { return recorded }
        return age(startTime: startTime).map { now.addingTimeInterval(-$0) } ?? now
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
