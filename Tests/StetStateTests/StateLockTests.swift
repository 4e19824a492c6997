import Foundation
import StetState
import StetTesting
import Testing

/// Every holder of the state lock counts its hold in the lock's file, so a holder can tell
/// whether anyone else held the lock since its own last hold (`Lock.tenure`): what it read then
/// still holds, as far as other writers go.
@Suite struct StateLockTests {
    let folder = TemporaryDirectory("stet-state-lock")

    func hold(_ lock: StateLock) throws -> UInt64 {
        try lock.acquire(timeout: 1)
        defer { lock.release() }
        return try #require(lock.tenure)
    }

    @Test func aTenureLastsUntilAnotherHolderComesBetween() throws {
        let store = FileStateStore(root: folder.file(".stet"))
        // Two locks of one directory exclude each other as two processes would (each its own `flock`).
        let loop = StateLock(store: store)
        let other = StateLock(store: store)
        #expect(loop.tenure == nil)
        let first = try hold(loop)
        #expect(loop.tenure == nil, "no tenure while the lock is not held")
        #expect(try hold(loop) == first)
        #expect(try hold(other) != first)
        let second = try hold(loop)
        #expect(second != first)
        #expect(try hold(loop) == second)
        #expect(try String(contentsOfFile: store.path("lock"), encoding: .utf8) == "00000000000000000005\n")
    }

    /// A lock file that holds no count Stet wrote (empty, altered, a count too large for 64 bits,
    /// no newline) begins a new tenure, and the hold after it continues that one.
    @Test(arguments: ["", "garbage\n", "99999999999999999999\n", "00000000000000000002", "-0000000000000000002\n"])
    func aFileThatHoldsNoCountBeginsANewTenure(content: String) throws {
        let store = FileStateStore(root: folder.file(".stet"))
        let loop = StateLock(store: store)
        let first = try hold(loop)
        #expect(try hold(loop) == first)
        try Data(content.utf8).write(to: URL(fileURLWithPath: store.path("lock")))
        let second = try hold(loop)
        #expect(second != first)
        #expect(try hold(loop) == second)
    }
}
