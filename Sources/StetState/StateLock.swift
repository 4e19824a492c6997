public import Foundation

/// The state directory's lock of one name (`STATE/lock`, docs/architecture.md, "Plan, apply and the loop"): a `flock` on that
/// file, waited for up to a timeout. Released on `release()` or when the process ends.
public final class StateLock: Lock, @unchecked Sendable {
    /// Another process held the lock for the whole timeout.
    public typealias Held = LockHeld

    private let store: FileStateStore
    private let name: String
    private let mutex = NSLock()
    private var fd: Int32 = -1
    /// The count of holds this lock wrote into its file at its last acquisition, and the tenure
    /// that acquisition began or continued (`tenure`).
    private var wrote: UInt64?
    private var current: UInt64?

    /// The lock `name` of the state directory, not taken yet.
    public init(store: FileStateStore, name: String = "lock") {
        self.store = store
        self.name = name
    }

    /// Takes the lock (`name` in the state directory), waiting up to `timeout` seconds.
    public convenience init(store: FileStateStore, timeout: Double, name: String = "lock") throws {
        self.init(store: store, name: name)
        try acquire(timeout: timeout)
    }

    public func acquire(timeout: Double) throws {
        try mutex.withLock {
            guard fd < 0 else { return }
            let path = store.path(name)
            guard let fd = try store.open(name, flags: O_RDWR, create: true) else { throw StateError.io("open \(path)", ENOENT) }
            let deadline = Date().addingTimeInterval(timeout)
            while flock(fd, LOCK_EX | LOCK_NB) != 0 {
                guard errno == EWOULDBLOCK || errno == EINTR, Date() < deadline else {
                    close(fd)
                    throw Held(path: path, timeout: timeout)
                }
                usleep(10_000)
            }
            self.fd = fd
            countHold()
        }
    }

    /// Every holder counts its hold in the lock's file (20 digits and a newline): when the count
    /// found is the one this lock wrote last, nobody else held it since, and the tenure goes on;
    /// anything else (another holder, a file that is empty, unreadable or not a count, a count
    /// that could not be written) begins a new one. A holder that does not count (a Stet from
    /// before the count) is not seen: readers that keep what they read under one tenure bound
    /// how long they keep it.
    private func countHold() {
        var bytes = [UInt8](repeating: 0, count: 32)
        let length = pread(fd, &bytes, bytes.count, 0)
        var found: UInt64?
        if length == Self.countLength, bytes[20] == UInt8(ascii: "\n"), bytes[..<20].allSatisfy({ (48...57).contains($0) }) {
            found = UInt64(String(decoding: bytes[..<20], as: UTF8.self))
        }
        if current == nil || found == nil || found != wrote {
            current = Self.tenures.next()
        }
        let next = (found ?? 0) &+ 1
        let digits = Array(String(next).utf8)
        let text = [UInt8](repeating: UInt8(ascii: "0"), count: 20 - digits.count) + digits + [UInt8(ascii: "\n")]
        wrote = pwrite(fd, text, text.count, 0) == Self.countLength ? next : nil
    }

    /// A count of holds: 20 digits and a newline.
    static let countLength = 21

    /// Tenures begun in this process, numbered from 1.
    static let tenures = TenureNumbers()

    public var tenure: UInt64? { mutex.withLock { fd >= 0 ? current : nil } }

    /// True while some process holds the lock `name` (without taking it).
    public static func isHeld(store: FileStateStore, name: String) -> Bool {
        guard let fd = try? store.open(name, flags: O_RDWR) else { return false }
        defer { close(fd) }
        if flock(fd, LOCK_EX | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return false
        }
        return errno == EWOULDBLOCK
    }

    public func release() {
        mutex.withLock {
            guard fd >= 0 else { return }
            flock(fd, LOCK_UN)
            close(fd)
            fd = -1
        }
    }

    deinit { release() }
}

/// Numbers for the tenures of the state locks of one process, never the same twice.
final class TenureNumbers: @unchecked Sendable {
    private let lock = NSLock()
    private var last: UInt64 = 0

    func next() -> UInt64 {
        lock.withLock {
            last &+= 1
            return last
        }
    }
}
