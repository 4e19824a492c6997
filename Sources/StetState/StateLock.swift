public import Foundation

/// The one lock on a state directory (`STATE/lock`, DESIGN.md section 8): `apply` and each
/// reconcile pass hold it, so two of them never act at once. Released on `release()` or when
/// the process ends.
public final class StateLock: @unchecked Sendable {
    /// Another process held the lock for the whole timeout.
    public struct Held: Error, CustomStringConvertible, Sendable {
        public let path: String
        public let timeout: Double
        public var description: String {
            "another stet process holds \(path) (waited \(timeout) s, --lock-timeout); try again when it is done"
        }
    }

    private var fd: Int32

    /// Takes the lock (`name` in the state directory), waiting up to `timeout` seconds.
    public init(store: FileStateStore, timeout: Double, name: String = "lock") throws {
        let path = store.path(name)
        guard let fd = try store.open(name, flags: O_RDWR, create: true) else { throw StateError.io("open \(path)", ENOENT) }
        self.fd = fd
        let deadline = Date().addingTimeInterval(timeout)
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR, Date() < deadline else {
                close(fd)
                self.fd = -1
                throw Held(path: path, timeout: timeout)
            }
            usleep(10_000)
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
        guard fd >= 0 else { return }
        flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }

    deinit { release() }
}
