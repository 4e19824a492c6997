import Foundation
import StetState
import StetTesting
import Testing

/// The state store contract (`StateStore`), checked on the state directory and on the
/// in-memory store alike: engine tests on the memory store hold for the state directory only
/// when both answer the same.
@Suite struct StateStoreConformanceTests {
    enum Kind: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case file, memory
        var testDescription: String { rawValue }
    }

    /// A store of `kind`, and the folder it may keep files in (removed with it).
    func make(_ kind: Kind) -> (any StateStore, TemporaryDirectory) {
        let folder = TemporaryDirectory("stet-store")
        switch kind {
        case .file: return (FileStateStore(root: folder.file("state")), folder)
        case .memory: return (MemoryStateStore(localDirectory: folder.file("state")), folder)
        }
    }

    @Test(arguments: Kind.allCases)
    func writesReadsListsAndRemoves(_ kind: Kind) throws {
        let (store, folder) = make(kind)
        _ = folder
        #expect(try store.read("release.json") == nil)
        #expect(try store.list("replicas") == [])
        try store.write("release.json", Data("one".utf8))
        try store.write("replicas/web/0.json", Data("a".utf8))
        try store.write("replicas/web/1.json", Data("b".utf8))
        try store.write("replicas/api/0.json", Data("c".utf8))
        try store.write("release.json", Data("two".utf8))
        #expect(try store.read("release.json") == Data("two".utf8))
        // Folders and keys alike, sorted.
        #expect(try store.list("replicas") == ["api", "web"])
        #expect(try store.list("replicas/web") == ["0.json", "1.json"])
        try store.remove("replicas/web/0.json")
        try store.remove("replicas/web/0.json")
        #expect(try store.list("replicas/web") == ["1.json"])
        #expect(try store.read("replicas/web/0.json") == nil)
    }

    @Test(arguments: Kind.allCases)
    func createWritesOnlyWhatDoesNotExist(_ kind: Kind) throws {
        let (store, folder) = make(kind)
        _ = folder
        #expect(try store.create("backup/cache.key", Data("first".utf8)))
        #expect(try !store.create("backup/cache.key", Data("second".utf8)))
        #expect(try store.read("backup/cache.key") == Data("first".utf8))
    }

    @Test(arguments: Kind.allCases)
    func createMakesOneWinnerAmongManyAtOnce(_ kind: Kind) throws {
        let (store, folder) = make(kind)
        _ = folder
        let winners = Counter()
        DispatchQueue.concurrentPerform(iterations: 16) { index in
            if (try? store.create("key", Data("\(index)".utf8))) == true { winners.add() }
        }
        #expect(winners.value == 1)
    }

    @Test(arguments: Kind.allCases)
    func keysThatLeaveTheStoreAreRefused(_ kind: Kind) throws {
        let (store, folder) = make(kind)
        for key in ["../escape", "/etc/passwd", "a//b", "a/./b", "", "nul\0byte"] {
            #expect(throws: StateError.self) { try store.write(key, Data()) }
            #expect(throws: StateError.self) { try store.read(key) }
            #expect(throws: StateError.self) { try store.create(key, Data()) }
            #expect(throws: StateError.self) { try store.remove(key) }
            #expect(throws: StateError.self) { try store.localPath(key) }
        }
        #expect(!FileManager.default.fileExists(atPath: folder.file("escape")))
    }

    @Test(arguments: Kind.allCases)
    func aLocalPathIsAbsoluteWithItsFolderMadeAndNothingElse(_ kind: Kind) throws {
        let (store, folder) = make(kind)
        let path = try store.localPath("logs/web-0.log")
        #expect(path.hasPrefix("/"))
        #expect(path.hasSuffix("/logs/web-0.log"))
        var info = stat()
        #expect(lstat((path as NSString).deletingLastPathComponent, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR)
        #expect(info.st_mode & 0o777 == 0o700)
        #expect(!FileManager.default.fileExists(atPath: path))
        _ = folder
    }

    @Test func aMemoryStoreWithoutAFolderHasNoLocalPath() throws {
        #expect(throws: StateError.self) { try MemoryStateStore().localPath("logs/web-0.log") }
    }

    @Test(arguments: Kind.allCases)
    func aLockHeldMakesTheNextHolderWaitThenGiveUp(_ kind: Kind) throws {
        let (store, folder) = make(kind)
        _ = folder
        let first = store.lock("lock")
        let second = store.lock("lock")
        try first.acquire(timeout: 1)
        #expect(throws: LockHeld.self) { try second.acquire(timeout: 0.2) }
        // Another name is another lock.
        let other = store.lock("run.lock")
        try other.acquire(timeout: 0)
        other.release()
        first.release()
        try second.acquire(timeout: 1)
        second.release()
    }

    @Test(arguments: Kind.allCases)
    func aWaitingHolderGetsTheLockWhenItIsReleased(_ kind: Kind) throws {
        let (store, folder) = make(kind)
        _ = folder
        let first = store.lock("lock")
        try first.acquire(timeout: 1)
        let got = Counter()
        let done = DispatchSemaphore(value: 0)
        Thread {
            if (try? store.lock("lock").acquire(timeout: 30)) != nil { got.add() }
            done.signal()
        }.start()
        first.release()
        #expect(done.wait(timeout: .now() + 30) == .success)
        #expect(got.value == 1)
    }
}

/// A count several threads add to.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}
