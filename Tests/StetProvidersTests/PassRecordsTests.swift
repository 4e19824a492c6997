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

    /// Under one tenure of the state lock, a pass uses what the passes before it read and wrote,
    /// without reading the file again; another holder of the lock between them, or a change by
    /// this process that did not go through the loop's provider, and it reads again.
    @Test func aPassUsesWhatEarlierPassesReadWhileNobodyElseCouldChangeIt() throws {
        let store = FileStateStore(root: folder.file(".stet"))
        let path = URL(fileURLWithPath: store.path("replicas/web/0.json"))
        let loop = ReplicaProvider(store: store, baseDirectory: folder.path)
        let lock = StateLock(store: store)
        func pass<T>(_ body: () throws -> T) throws -> T {
            try lock.acquire(timeout: 1)
            defer { lock.release() }
            loop.beginPass(tenure: lock.tenure)
            defer { loop.endPass() }
            return try body()
        }
        try store.write("replicas/web/0.json", record(pid: 101))
        #expect(try pass { try loop.records()["web"]?[0]?.pid } == 101)
        // Changed by nobody who counts (a file written around the store): the next pass under the
        // same tenure does not read it; a read outside a pass does.
        try record(pid: 102).write(to: path)
        #expect(try pass { try loop.record("web", 0)?.pid } == 101)
        #expect(try loop.record("web", 0)?.pid == 102)
        // Another holder of the lock came between.
        try StateLock(store: store).acquire(timeout: 1)
        #expect(try pass { try loop.record("web", 0)?.pid } == 102)
        // What the loop's provider saves is kept as it saved it.
        var own = try #require(try pass { try loop.record("web", 0) })
        own.pid = 103
        try loop.save(own)
        try record(pid: 104).write(to: path)
        #expect(try pass { try loop.records()["web"]?[0]?.pid } == 103)
        // Another provider of this process, and the store, move the count.
        own.pid = 105
        try ReplicaProvider(store: store, baseDirectory: folder.path).save(own)
        #expect(try pass { try loop.record("web", 0)?.pid } == 105)
        try store.write("replicas/web/1.json", Data(String(decoding: record(pid: 106), as: UTF8.self).replacingOccurrences(of: "\"index\":0", with: "\"index\":1").utf8))
        #expect(try pass { try loop.records()["web"]?[1]?.pid } == 106)
        // Removed by the loop's provider: gone from the folder's listing as well.
        try loop.remove("web", 1)
        #expect(try pass { try loop.records()["web"]?.keys.sorted() } == [0])
    }

    /// What passes read under one tenure is kept for `maximumAge` at most (a holder that does not
    /// count its holds, a Stet from before the count, is not seen), and not at all without a tenure.
    @Test func keptReadsAgeAndNeedATenure() {
        let kept = PassRecords()
        func cached(tenure: UInt64?, at now: UInt64) -> Bool {
            kept.begin(tenure: tenure, changes: 7, now: now)
            defer { kept.end() }
            let found = kept.record("k", changes: 7) != nil
            kept.keep(nil, "k", changes: 7)
            return found
        }
        #expect(!cached(tenure: 1, at: 0))
        #expect(cached(tenure: 1, at: PassRecords.maximumAge - 1))
        #expect(!cached(tenure: 1, at: PassRecords.maximumAge))
        #expect(!cached(tenure: 2, at: PassRecords.maximumAge + 1))
        #expect(!cached(tenure: nil, at: PassRecords.maximumAge + 2))
        #expect(!cached(tenure: nil, at: PassRecords.maximumAge + 3))
        // Within a pass, with or without a tenure, until the count moves.
        kept.begin(tenure: nil, changes: 7, now: 0)
        kept.keep(nil, "k", changes: 7)
        #expect(kept.record("k", changes: 7) != nil)
        #expect(kept.record("k", changes: 8) == nil)
        kept.end()
        #expect(kept.record("k", changes: 7) == nil, "nothing is used outside a pass")
    }
}
