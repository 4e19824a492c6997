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
