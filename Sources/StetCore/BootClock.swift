import Glibc

/// Nanoseconds on `CLOCK_BOOTTIME`: monotonic (a wall clock stepped back does not move it) and,
/// unlike `CLOCK_MONOTONIC`, still counting while the machine is suspended, as etcd's lease
/// clocks on other hosts do. A host resumed after a suspend longer than its lease sees its lease
/// as gone at once.
public enum BootClock {
    public static func now() -> UInt64 {
        var time = timespec()
        guard clock_gettime(CLOCK_BOOTTIME, &time) == 0 else { return 0 }
        return UInt64(clamping: time.tv_sec) &* 1_000_000_000 &+ UInt64(clamping: time.tv_nsec)
    }
}

/// A moment on `BootClock`, with the boot it belongs to (`/proc/sys/kernel/random/boot_id`):
/// durations measured between two of them ignore the wall clock's jumps, and are unknown across
/// a reboot. Kept in state files (an alert's `for:`), so the boot is part of it.
public struct BootInstant: Codable, Hashable, Sendable {
    public var boot: String
    public var nanoseconds: UInt64

    public init(boot: String, nanoseconds: UInt64) {
        self.boot = boot
        self.nanoseconds = nanoseconds
    }

    public static func now() -> BootInstant { BootInstant(boot: currentBoot, nanoseconds: BootClock.now()) }

    /// This boot's id, read once; empty where the kernel does not say (then no two instants of
    /// different processes compare).
    public static let currentBoot: String = {
        guard let file = fopen("/proc/sys/kernel/random/boot_id", "re") else { return "" }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 64)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { return "" }
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return String(text.prefix { $0 != "\n" })
    }()

    /// Seconds from `earlier` to this instant; nil when they belong to different boots (or
    /// either boot is unknown), or `earlier` is later.
    public func seconds(since earlier: BootInstant) -> Double? {
        guard !boot.isEmpty, boot == earlier.boot, nanoseconds >= earlier.nanoseconds else { return nil }
        return Double(nanoseconds - earlier.nanoseconds) / 1e9
    }
}
