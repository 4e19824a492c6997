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
        }
    }

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
