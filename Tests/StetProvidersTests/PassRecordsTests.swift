import Foundation
import StetCore
import StetState
@testable import StetProviders
import StetTesting
import Testing

/// Within a pass of the loop a record is read from disk once, and again as soon as anyone
/// changed its file: another provider of the same process (as the fleet's tasks make), or a
/// writer that goes around providers altogether.
@Suite struct PassRecordsTests {
    let folder = TemporaryDirectory("stet-pass-records")

    func record(pid: Int) -> Data {
        Data("""
            {"service":"web","index":0,"pid":\(pid),"startTime":1,"specHash":"sha256:x","startedAt":"2026-01-01T00:00:00Z",\
            "restarts":0,"protect":false,"healthFailures":0}
            """.utf8)
    }

    @Test func aRecordChangedByAnotherWriterIsReadAgainWithinAPass() throws {
        let store = FileStateStore(root: folder.file(".stet"))
        let loop = ReplicaProvider(store: store, baseDirectory: folder.path)
        let other = ReplicaProvider(store: store, baseDirectory: folder.path)
        try store.write("replicas/web/0.json", record(pid: 101))
        loop.beginPass()
        defer { loop.endPass() }
        #expect(try loop.record("web", 0)?.pid == 101)
        #expect(try loop.records()["web"]?[0]?.pid == 101)
        // Written around every provider, through the store.
        try store.write("replicas/web/0.json", record(pid: 102))
        #expect(try loop.record("web", 0)?.pid == 102)
        // Saved by another provider of this process.
        var saved = try #require(try other.record("web", 0))
        saved.pid = 103
        try other.save(saved)
        #expect(try loop.record("web", 0)?.pid == 103)
        // Removed by it: the folder's listing is read again too.
        try other.remove("web", 0)
        #expect(try loop.record("web", 0) == nil)
        #expect(try loop.records()["web"] == nil)
        try store.write("replicas/web/1.json", Data(String(decoding: record(pid: 104), as: UTF8.self).replacingOccurrences(of: "\"index\":0", with: "\"index\":1").utf8))
        #expect(try loop.records()["web"]?[1]?.pid == 104)
    }

    /// A record this process saved is read back without decoding it again: it must be the
    /// record any other reader decodes from the file, times cut to what the file holds.
    @Test func aRecordReadBackAfterItsOwnSaveIsWhatAnyReaderDecodes() throws {
        let store = FileStateStore(root: folder.file(".stet"))
        let writer = ReplicaProvider(store: store, baseDirectory: folder.path)
        let started = Date(timeIntervalSince1970: 1_790_000_000.123_456)
        let saved = ReplicaProvider.Record(
            service: "web", index: 2, pid: 4242, startTime: 99, specHash: "sha256:" + String(repeating: "ab", count: 32), port: 8080,
            startedAt: started, restarts: 3, lastExit: "was killed by signal 9 — \u{1F4A5}", exitedAt: started.addingTimeInterval(0.5),
            protect: true, instance: "0123456789abcdef", stopSignal: "SIGINT", stopTimeout: 2.75, healthFailures: 1,
            lastCheck: started.addingTimeInterval(1.999))
        try writer.save(saved)
        let own = try #require(try writer.record("web", 2))
        let fresh = try #require(try ReplicaProvider(store: store, baseDirectory: folder.path).record("web", 2))
        #expect(own == fresh)
        #expect(own.startedAt != saved.startedAt, "the file holds the time to the second, not the time saved")
        #expect(own.pid == 4242 && own.lastExit == saved.lastExit && own.stopTimeout == 2.75)
    }

    /// A pass observes the replicas of its own services only: the reconciler looks at no other.
    @Test func observingSomeServicesReadsOnlyTheirRecords() throws {
        let store = FileStateStore(root: folder.file(".stet"))
        let provider = ReplicaProvider(store: store, baseDirectory: folder.path)
        try store.write("replicas/web/0.json", record(pid: 101))
        try store.write("replicas/db/0.json", Data(String(decoding: record(pid: 102), as: UTF8.self).replacingOccurrences(of: "\"web\"", with: "\"db\"").utf8))
        #expect(try provider.observe(DesiredState(), only: ["db"], now: Date()).services.keys.sorted() == ["db"])
        // Another service's record is not even read: one that does not decode does not stop it.
        try store.write("replicas/web/1.json", Data("{not json".utf8))
        #expect(try provider.observe(DesiredState(), only: ["db"], now: Date()).services.keys.sorted() == ["db"])
        #expect(throws: StateError.self) { try provider.observe(DesiredState(), only: ["web"], now: Date()) }
        #expect(try provider.observe(DesiredState(), only: [], now: Date()).services.isEmpty)
        try store.remove("replicas/web/1.json")
        #expect(try provider.observe(DesiredState(), only: nil, now: Date()).services.keys.sorted() == ["db", "web"])
    }

    /// A record this process saves that Stet would refuse to read (pid 1, a port out of range)
    /// is refused when read back too: keeping what was written skips no check.
    @Test(arguments: [(1, 8080), (4242, 0)])
    func aSavedRecordThatFailsItsChecksIsRefusedWhenReadBack(pid: Int, port: Int) throws {
        let store = FileStateStore(root: folder.file(".stet"))
        let writer = ReplicaProvider(store: store, baseDirectory: folder.path)
        var record = try #require(try { () throws -> ReplicaProvider.Record? in
            try store.write("replicas/web/0.json", self.record(pid: 101))
            return try writer.record("web", 0)
        }())
        record.pid = Int32(pid)
        record.port = port
        try writer.save(record)
        #expect(throws: StateError.self) { try writer.record("web", 0) }
    }

    /// Under one tenure of the state lock, a pass uses what the passes before it read and wrote:
    /// it opens no record and lists no folder. Another holder of the lock between them, a change
    /// by this process that did not go through the loop's provider, or a file that is not as it
    /// was kept (changed by a Stet that marks no hold, or by hand), and it reads again.
    @Test func aPassUsesWhatEarlierPassesReadWhileNobodyElseCouldChangeIt() throws {
        let files = FileStateStore(root: folder.file(".stet"))
        let store = CountingStore(files)
        let loop = ReplicaProvider(store: store, baseDirectory: folder.path)
        let lock = StateLock(store: files)
        func inPass<T>(_ body: () throws -> T) throws -> T {
            try lock.acquire(timeout: 1)
            defer { lock.release() }
            // At one time: what is kept does not age between these passes however slow they run.
            loop.beginPass(tenure: lock.tenure, now: 0)
            defer { loop.endPass() }
            return try body()
        }
        /// The records a pass finds, and how many files and folders it read to find them.
        func pass() throws -> (pids: [Int: Int32], reads: Int) {
            store.reads = 0
            let pids = try inPass { try loop.records()["web"]?.mapValues(\.pid) ?? [:] }
            return (pids, store.reads)
        }
        func record(_ index: Int, pid: Int) -> Data {
            Data(String(decoding: self.record(pid: pid), as: UTF8.self).replacingOccurrences(of: "\"index\":0", with: "\"index\":\(index)").utf8)
        }
        try files.write("replicas/web/0.json", record(0, pid: 101))
        #expect(try pass() == ([0: 101], 3))
        #expect(try pass() == ([0: 101], 0))
        // Another holder of the lock came between.
        try StateLock(store: files).acquire(timeout: 1)
        #expect(try pass() == ([0: 101], 3))
        #expect(try pass() == ([0: 101], 0))
        // Written around every store of this process, as a Stet that marks no hold would: the
        // file's stamp changed.
        try record(0, pid: 102).write(to: URL(fileURLWithPath: files.path("replicas/web/0.json.new")))
        #expect(rename(files.path("replicas/web/0.json.new"), files.path("replicas/web/0.json")) == 0)
        #expect(try pass().pids == [0: 102])
        // What the loop's provider saves in a pass is kept as it saved it, even with other
        // folders written meanwhile (the markers of actions); what it saves between passes (a
        // health check's count, without the lock) is read again, with its folder.
        var own = try #require(try loop.record("web", 0))
        own.pid = 103
        try inPass {
            try files.write("inflight/x.json", Data("{}".utf8))
            try loop.save(own)
            try files.write("status/x.json", Data("{}".utf8))
        }
        #expect(try pass() == ([0: 103], 0))
        own.healthFailures = 1
        try loop.save(own)
        #expect(try pass() == ([0: 103], 2))
        #expect(try pass() == ([0: 103], 0))
        // Another provider of this process, and the store, move the count.
        own.pid = 104
        try ReplicaProvider(store: files, baseDirectory: folder.path).save(own)
        #expect(try pass().pids == [0: 104])
        try files.write("replicas/web/1.json", record(1, pid: 105))
        #expect(try pass().pids == [0: 104, 1: 105])
        #expect(try pass().reads == 0)
        // A new service's first record, saved by the loop's provider, is found at once.
        var db = own
        db.service = "db"
        #expect(try inPass {
            try loop.save(db)
            return try loop.records().keys.sorted()
        } == ["db", "web"])
        // Removed by the loop's provider: gone from the folder's listing as well.
        try loop.remove("web", 1)
        #expect(try pass().pids == [0: 104])
    }

    /// What passes read under one tenure is kept for `maximumAge` at most, and not at all
    /// without a tenure; within a pass, a kept file's stamp is compared once, and a read that
    /// began before the pass is not kept in it.
    @Test func keptReadsAgeNeedATenureAndAreComparedOncePerPass() {
        let kept = PassRecords()
        let stamp = StateStamp(stat())
        var compared = 0
        /// Whether `k` is kept; if not, keeps a read of it made now.
        func look() -> Bool {
            let found = kept.record("k", changes: 7) { _ in
                compared += 1
                return stamp
            }
            if found.kept == nil { kept.keep(nil, "k", changes: 7, stamp: stamp, readIn: found.pass) }
            return found.kept != nil
        }
        func cached(tenure: UInt64?, at now: UInt64) -> Bool {
            kept.begin(tenure: tenure, changes: 7, now: now)
            defer { kept.end() }
            return look()
        }
        #expect(!cached(tenure: 1, at: 0))
        #expect(cached(tenure: 1, at: PassRecords.maximumAge - 1))
        #expect(!cached(tenure: 1, at: PassRecords.maximumAge))
        #expect(!cached(tenure: 2, at: PassRecords.maximumAge + 1))
        #expect(!cached(tenure: nil, at: PassRecords.maximumAge + 2))
        #expect(!cached(tenure: nil, at: PassRecords.maximumAge + 3))
        // Within a pass, with or without a tenure, until the count moves.
        kept.begin(tenure: nil, changes: 7, now: 0)
        compared = 0
        #expect(!look() && look() && look())
        #expect(compared == 0, "kept in this pass: nothing to compare")
        kept.end()
        kept.begin(tenure: 3, changes: 7, now: 0)
        #expect(!look())
        kept.end()
        kept.begin(tenure: 3, changes: 7, now: 1)
        #expect(look() && look() && compared == 1, "kept in an earlier pass: compared once")
        #expect(kept.record("k", changes: 8) { _ in stamp }.kept == nil, "the count moved")
        #expect(!look())
        kept.end()
        #expect(kept.record("k", changes: 7) { _ in stamp }.kept == nil, "nothing is used outside a pass")
        // A read that began before a pass (outside one, or in the one before) is not kept in it.
        kept.begin(tenure: 4, changes: 7, now: 0)
        kept.end()
        let before = kept.record("k", changes: 7) { _ in stamp }
        kept.begin(tenure: 5, changes: 7, now: 0)
        kept.keep(nil, "k", changes: 7, stamp: stamp, readIn: before.pass)
        #expect(kept.record("k", changes: 7) { _ in stamp }.kept == nil)
        kept.end()
        // So with a write: only one made wholly within the pass is kept.
        let record = ReplicaProvider.Record(
            service: "web", index: 0, pid: 42, startTime: 1, specHash: "sha256:x", port: nil, startedAt: Date(timeIntervalSince1970: 0),
            restarts: 0, lastExit: nil, exitedAt: nil, protect: false, instance: nil, stopSignal: nil, stopTimeout: nil, healthFailures: 0,
            lastCheck: nil)
        let begunBefore = kept.number
        kept.begin(tenure: 5, changes: 7, now: 0)
        kept.wrote("k", record, before: 7, after: 8, folderBefore: nil, writtenIn: begunBefore) { _ in stamp }
        #expect(kept.record("k", changes: 8) { _ in stamp }.kept == nil)
        kept.wrote("k", record, before: 8, after: 9, folderBefore: nil, writtenIn: kept.number) { _ in stamp }
        #expect(kept.record("k", changes: 9) { _ in stamp }.kept == .some(.some(record)))
        kept.end()
    }
}

/// A state directory that counts the files it reads and the folders it lists.
final class CountingStore: StateStore, @unchecked Sendable {
    let files: FileStateStore
    private let lock = NSLock()
    private var count = 0

    init(_ files: FileStateStore) { self.files = files }

    var reads: Int {
        get { lock.withLock { count } }
        set { lock.withLock { count = newValue } }
    }

    func read(_ key: String) throws -> Data? {
        reads += 1
        return try files.read(key)
    }

    func list(_ folder: String) throws -> [String] {
        reads += 1
        return try files.list(folder)
    }

    func write(_ key: String, _ data: Data) throws { try files.write(key, data) }
    func replace(_ key: String, _ data: Data) throws { try files.replace(key, data) }
    func stage(_ key: String, _ data: Data) throws { try files.stage(key, data) }
    func sync(_ key: String) throws { try files.sync(key) }
    func stamp(_ key: String) -> StateStamp? { files.stamp(key) }
    func changes(under folder: String) -> UInt64? { files.changes(under: folder) }
    func create(_ key: String, _ data: Data) throws -> Bool { try files.create(key, data) }
    func remove(_ key: String) throws { try files.remove(key) }
    func removeLeftovers(in folder: String) throws { try files.removeLeftovers(in: folder) }
    func lock(_ name: String) -> any Lock { files.lock(name) }
    func localPath(_ key: String) throws -> String { try files.localPath(key) }
    var location: String { files.location }
}
