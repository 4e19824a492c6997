import Foundation
import StetState

/// The state lock held for the whole process by whichever of its threads needs it. The loop's
/// service pass and its backup pass work on different resources and may overlap; together they
/// keep other processes (`stet apply`) out. A `flock` belongs to an open file, so two threads of
/// one process each opening the lock would wait for each other: they share one hold of `lock`.
final class SharedStateLock: Lock, @unchecked Sendable {
    private let mutex = NSLock()
    private var holders = 0
    private let lock: any Lock

    init(_ lock: any Lock) { self.lock = lock }

    /// Takes a share, taking the lock itself for the first one (waiting up to `timeout` seconds
    /// for another process).
    func acquire(timeout: Double) throws {
        try mutex.withLock {
            if holders == 0 { try lock.acquire(timeout: timeout) }
            holders += 1
        }
    }

    /// The lock's tenure while a share is held (`Lock.tenure`).
    var tenure: UInt64? { mutex.withLock { holders > 0 ? lock.tenure : nil } }

    /// Gives a share back; the last one releases the lock.
    func release() {
        mutex.withLock {
            guard holders > 0 else { return }
            holders -= 1
            if holders == 0 { lock.release() }
        }
    }
}
