/// The lock of a state store (docs/architecture.md, "Plan, apply and the loop" and "A fleet on etcd"): `apply` and each reconcile pass hold
/// the store's `lock`, so two of them never act at once; one `stet run` holds `run.lock`. A
/// `flock` on one host (`StateLock`), held in memory for engine tests (`MemoryLock`), a
/// lease-held key in a fleet.
///
/// Not re-entrant: a holder that acquires again is a mistake of its own (`SharedStateLock`
/// shares one hold among the threads of a process). A lock is released on `release()` and when
/// its process ends.
public protocol Lock: AnyObject, Sendable {
    /// Takes the lock, waiting up to `timeout` seconds for its holder; throws `LockHeld` when it
    /// was held for the whole time, or a `StateError` when it cannot be taken at all.
    func acquire(timeout: Double) throws
    /// Gives the lock back; nothing when it is not held.
    func release()
    /// While the lock is held: a number that stays the same from one hold to the next as long as
    /// no other holder took the lock in between, so what the holder read under one hold still
    /// holds under the next (as far as the others' changes go). Nil when it is not held, or when
    /// the lock cannot tell.
    var tenure: UInt64? { get }
}

extension Lock {
    public var tenure: UInt64? { nil }
}

/// Another holder held the lock for the whole timeout (exit status 11).
public struct LockHeld: Error, CustomStringConvertible, Sendable {
    /// The lock, as a message names it (its file).
    public let path: String
    public let timeout: Double

    public init(path: String, timeout: Double) {
        self.path = path
        self.timeout = timeout
    }

    public var description: String {
        "another stet process holds \(path) (waited \(timeout) s, --lock-timeout); try again when it is done"
    }
}
