import Foundation
import StetTesting

/// Timing and memory figures for the benchmarks.
enum Measure {
    /// Seconds `body` takes, on the monotonic clock.
    static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    /// CPU seconds (user + system) this process has used.
    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    /// The machine's processor time so far, in clock ticks: all of it, and what the hypervisor
    /// gave to others while this machine wanted it (`steal`, the eighth field of `/proc/stat`'s
    /// `cpu` line). Nil where the kernel does not say.
    static func processorTicks() -> (total: UInt64, stolen: UInt64)? {
        guard let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
            let line = stat.split(separator: "\n").first, line.hasPrefix("cpu ")
        else { return nil }
        let fields = line.split(separator: " ").dropFirst().compactMap { UInt64($0) }
        guard fields.count >= 8 else { return nil }
        // The first eight: `guest` and `guest_nice`, after them, are counted in `user` and `nice` already.
        return (fields.prefix(8).reduce(0, &+), fields[7])
    }

    /// The share of the machine's processor time stolen by the hypervisor between two readings
    /// of `processorTicks`, in percent.
    static func stolenPercent(from start: (total: UInt64, stolen: UInt64)?, to end: (total: UInt64, stolen: UInt64)?) -> Double? {
        guard let start, let end, end.total > start.total, end.stolen >= start.stolen else { return nil }
        return Double(end.stolen - start.stolen) / Double(end.total - start.total) * 100
    }

    /// Peak resident memory of this process in bytes (`VmHWM`).
    static func peakResidentBytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
        else { return 0 }
        return (Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) * 1024
    }

    /// Resident memory of this process now (`VmRSS`).
    static func residentBytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return 0 }
        return (Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) * 1024
    }

    /// Resets the peak so the next reading covers only what follows (Linux `clear_refs` 5).
    static func resetPeak() {
        try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
    }

    /// Runs `openssl` and returns its standard output.
    static func openssl(_ arguments: [String]) throws -> String {
        try run("openssl", arguments, timeout: 120).stdout
    }

    static func row(_ label: String, _ value: String, _ reference: String = "", _ ratio: String = "") {
        // At least one space between columns, however long a cell is.
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }
        print(pad(label, 44) + pad(value, 18) + pad(reference, 18) + ratio)
        // Each figure shows as it is measured, also into a file or a pipe.
        fflush(nil)
    }
}
