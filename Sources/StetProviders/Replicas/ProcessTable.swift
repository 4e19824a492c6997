public import Foundation
import StetCore

/// What `/proc` says about a process.
public enum ProcessTable {
    public struct Entry: Equatable, Sendable {
        /// `R`, `S`, `Z` (zombie), …
        public let state: Character
        /// Field 22: when the process started, in clock ticks since boot.
        public let startTime: UInt64
        /// Field 20: the threads of its thread group not yet reaped, the first thread among
        /// them: a zombie whose count is above 1 is a first thread that ended while others run.
        public var threads: UInt64 = 1

        /// Whether the process still runs, as its pidfd says it: a thread of it has not ended.
        /// A zombie first thread with other threads left is not a process that ended (its
        /// threads still serve, and hold its port), and its pidfd is not readable yet.
        public var runs: Bool { state != "Z" && state != "X" || state == "Z" && threads > 1 }
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
        var threads: UInt64 = 1
        while index < stat.count {
            while index < stat.count, stat[index] == UInt8(ascii: " ") { index += 1 }
            guard index < stat.count else { break }
            field += 1
            var end = index
            while end < stat.count, stat[end] != UInt8(ascii: " "), stat[end] != UInt8(ascii: "\n") { end += 1 }
            if field == 3 {
                guard end - index == 1 else { return nil }
                state = stat[index]
            } else if field == 20 {
                guard let value = number(stat[index..<end]) else { return nil }
                threads = value
            } else if field == 22 {
                guard let value = number(stat[index..<end]), let state, state < 0x80 else { return nil }
                return Entry(state: Character(Unicode.Scalar(state)), startTime: value, threads: threads)
            }
            index = end + 1
        }
        return nil
    }

    /// The decimal digits of `digits` as a number; nil when empty, not digits, or beyond 2^64.
    private static func number(_ digits: Slice<UnsafeBufferPointer<UInt8>>) -> UInt64? {
        guard !digits.isEmpty else { return nil }
        var value: UInt64 = 0
        for digit in digits {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(digit) else { return nil }
            let (times, overflow) = value.multipliedReportingOverflow(by: 10)
            let (sum, carry) = times.addingReportingOverflow(UInt64(digit - UInt8(ascii: "0")))
            guard !overflow, !carry else { return nil }
            value = sum
        }
        return value
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

    /// True when `pid` is alive and started at `startTime`: not a reused pid, not a process that
    /// ended (`Entry.runs`, what the process's pidfd says too).
    public static func isAlive(_ pid: Int32, startTime: UInt64) -> Bool {
        guard let entry = entry(pid) else { return false }
        return entry.startTime == startTime && entry.runs
    }

    /// Sends `signal` to a replica: to its process group when it leads one (a replica is started
    /// in a session of its own, so what it started goes too), and to the process itself. Never
    /// to pid 1 or below, whatever a record says: `kill(-1)` reaches every process Stet may
    /// signal, `kill(0)` Stet's own group. Returns the targets signalled (negative: a group).
    @discardableResult
    public static func signalReplica(_ pid: Int32, _ signal: Int32) -> [Int32] {
        guard pid > 1 else { return [] }
        var targets: [Int32] = []
        if getpgid(pid) == pid, kill(-pid, signal) == 0 { targets.append(-pid) }
        if kill(pid, signal) == 0 { targets.append(pid) }
        return targets
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
                if let entry = entry(pid), entry.runs { return (pid, entry) }
            }
        }
        return nil
    }

    public static let signals: [String: Int32] = [
        "SIGTERM": SIGTERM, "SIGINT": SIGINT, "SIGQUIT": SIGQUIT, "SIGHUP": SIGHUP, "SIGKILL": SIGKILL,
        "SIGUSR1": SIGUSR1, "SIGUSR2": SIGUSR2, "SIGWINCH": SIGWINCH,
    ]
}
