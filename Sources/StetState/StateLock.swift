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
    /// The token this lock wrote into its file at its last acquisition, and the tenure that
    /// acquisition began or continued (`tenure`).
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
            do {
                try markHold()
            } catch {
                flock(fd, LOCK_UN)
                close(fd)
                self.fd = -1
                throw error
            }
        }
    }

    /// Every holder marks its hold in the lock's file with a random token (16 hex digits and a
    /// newline): a lock that finds the token it wrote at its own last hold knows that nobody held
    /// the lock since, and its tenure goes on. Anything else (another holder's token, a file that
    /// is empty, altered, or put back from a copy) begins a new one. A holder that cannot write
    /// its token empties the file, which needs no space, and one that cannot do that either does
    /// not hold the lock: no holder leaves the last token in place. A holder that marks nothing
    /// (a Stet from before the token) is not seen here: readers that keep what they read under
    /// one tenure check the files they kept as well (`PassRecords`).
    private func markHold() throws {
        var bytes = [UInt8](repeating: 0, count: 32)
        let length = pread(fd, &bytes, bytes.count, 0)
        let found = length == Self.tokenLength ? Self.token(bytes[..<Self.tokenLength]) : nil
        if current == nil || found == nil || found != wrote {
            current = Self.tenures.next()
        }
        let token = UInt64.random(in: 1...UInt64.max)
        let text = Self.text(token)
        let written = pwrite(fd, text, text.count, 0)
        if written == Self.tokenLength {
            wrote = token
            if length > Self.tokenLength { _ = ftruncate(fd, off_t(Self.tokenLength)) }
        } else {
            // A short write sets no errno.
            let failure = written < 0 ? errno : EIO
            wrote = nil
            if ftruncate(fd, 0) != 0 {
                throw StateError.io("mark the hold of \(store.path(name)) (writing: \(String(cString: strerror(failure))); emptying)", errno)
            }
        }
    }

    /// A token as the lock's file holds it: 16 lowercase hex digits and a newline.
    static let tokenLength = 17

    static func text(_ token: UInt64) -> [UInt8] {
        let digits = Array(String(token, radix: 16).utf8)
        return [UInt8](repeating: UInt8(ascii: "0"), count: 16 - digits.count) + digits + [UInt8(ascii: "\n")]
    }

    /// The token `bytes` hold, or nil when they are not one.
    static func token(_ bytes: ArraySlice<UInt8>) -> UInt64? {
        guard bytes.count == tokenLength, bytes.last == UInt8(ascii: "\n") else { return nil }
        let digits = bytes.dropLast()
        guard digits.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else { return nil }
        return UInt64(String(decoding: digits, as: UTF8.self), radix: 16)
    }

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
