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
        let token = try String(contentsOfFile: store.path("lock"), encoding: .utf8)
        #expect(token.utf8.count == 17 && token.hasSuffix("\n") && token.dropLast().allSatisfy(\.isHexDigit))
    }

    /// A lock file that holds no token this lock wrote (empty, altered, put back from a copy,
    /// longer than a token) begins a new tenure, and the hold after it continues that one.
    @Test(arguments: ["", "garbage\n", "0123456789abcdef\n", "0123456789ABCDEF\n", "0123456789abcdef", "-123456789abcdef\n", "copy", "long"])
    func aFileThatHoldsNoTokenOfThisLockBeginsANewTenure(content: String) throws {
        let store = FileStateStore(root: folder.file(".stet"))
        let loop = StateLock(store: store)
        let first = try hold(loop)
        let path = store.path("lock")
        let token = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(try hold(loop) == first)
        switch content {
        case "copy": try token.write(to: URL(fileURLWithPath: path))
        case "long": try (token + Data(repeating: UInt8(ascii: "0"), count: 40)).write(to: URL(fileURLWithPath: path))
        default: try Data(content.utf8).write(to: URL(fileURLWithPath: path))
        }
        let second = try hold(loop)
        #expect(second != first)
        #expect(try hold(loop) == second)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)).count == 17, "what follows a token is cut off")
    }
}
