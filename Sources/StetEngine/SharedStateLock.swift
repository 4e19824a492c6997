import Foundation
import StetState

/// The state lock (`STATE/lock`) held for the whole process by whichever of its threads needs
/// it. The loop's service pass and its backup pass work on different resources and may overlap;
/// together they keep other processes (`stet apply`) out. A `flock` belongs to an open file, so
/// two threads of one process each opening the lock would wait for each other: they share one.
final class SharedStateLock: @unchecked Sendable {
    private let mutex = NSLock()
    private var holders = 0
    private var lock: StateLock?

    /// Takes a share, taking the lock itself for the first one (waiting up to `timeout` seconds
    /// for another process, as `StateLock` does).
    func acquire(store: FileStateStore, timeout: Double) throws {
        try mutex.withLock {
            if holders == 0 { lock = try StateLock(store: store, timeout: timeout) }
            holders += 1
        }
    }

    /// Gives a share back; the last one releases the lock.
    func release() {
        mutex.withLock {
            guard holders > 0 else { return }
            holders -= 1
            if holders == 0 {
                lock?.release()
                lock = nil
            }
        }
    }
}
