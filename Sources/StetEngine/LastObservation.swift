public import Foundation
public import StetCore

/// What the loop last saw, for readers on other threads (the status server), so that a reader
/// never observes anything itself: a request must not run restic or a health check, or scan
/// more than the loop's own records (docs/architecture.md, principle 8).
public final class LastObservation: @unchecked Sendable {
    private let lock = NSLock()
    private var value: (backups: [String: ObservedBackup], passes: Int) = ([:], 0)

    /// The backup policies as the loop's last backup pass found them.
    public var backups: [String: ObservedBackup] { lock.withLock { value.backups } }
    /// Passes finished and backup observations recorded since the loop started: a reader's
    /// cache is stale when this moved.
    public var passes: Int { lock.withLock { value.passes } }

    func record(backups: [String: ObservedBackup]) {
        lock.withLock {
            value.backups = backups
            value.passes &+= 1
        }
    }
    func passEnded() { lock.withLock { value.passes &+= 1 } }
}
