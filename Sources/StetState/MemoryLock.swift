public import Foundation

/// A lock held in memory, for engine tests on a `MemoryStateStore`: the same contract as the
/// state directory's `flock` within one process.
public final class MemoryLock: Lock, @unchecked Sendable {
    public let name: String
    private let condition = NSCondition()
    private var held = false

    public init(name: String = "lock") { self.name = name }

    public func acquire(timeout: Double) throws {
        try StateKey.check(name)
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date().addingTimeInterval(max(0, timeout))
        while held {
            if !condition.wait(until: deadline), held { throw LockHeld(path: "\(name) (in memory)", timeout: timeout) }
        }
        held = true
    }

    public func release() {
        condition.lock()
        defer { condition.unlock() }
        held = false
        condition.broadcast()
    }

    /// Whether someone holds it now.
    public var isHeld: Bool {
        condition.lock()
        defer { condition.unlock() }
        return held
    }
}
