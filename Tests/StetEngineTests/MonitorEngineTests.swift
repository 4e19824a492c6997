import Foundation
import StetCore
import StetEngine
import StetProviders
import StetState
import StetTesting
import Testing

/// Probes run on Stet's own threads: however many hang, Swift's cooperative pool (one thread per
/// core, where the loop's passes and the applier run) stays free.
@Suite struct MonitorEngineTests {
    let scratch = TemporaryDirectory("stet-monitor-engine")

    final class Seen: @unchecked Sendable {
        private let lock = NSLock()
        private var results = 0
        func delivered() { lock.withLock { results += 1 } }
        var deliveredCount: Int { lock.withLock { results } }
    }

    /// Eight HTTP probes whose receiver accepts and never answers (more than the pool has
    /// threads): while all of them wait, work on the cooperative pool still runs, and none of
    /// them has ended by then. An order of events: the probes end only when the test closes the
    /// receiver.
    @Test(.timeLimit(.minutes(1))) func probesThatNeverAnswerLeaveTheCooperativePoolFree() async throws {
        let silent = try SilentListener()
        defer { silent.stop() }
        let count = 8
        var desired = DesiredState()
        var entries: [String: MonitorRegistry.Entry] = [:]
        for index in 0..<count {
            let monitor = Monitor(
                metadata: Metadata(name: "hang-\(index)"),
                probe: .check(.http(url: "http://127.0.0.1:\(silent.port)/", path: nil, port: nil, expectStatus: nil, bodyContains: nil)),
                interval: .seconds(60), timeout: .seconds(40), notify: [])
            desired.monitors[monitor.metadata.name] = monitor
            entries[monitor.metadata.name] = MonitorRegistry.Entry(specHash: MonitorRegistry.specHash(monitor), state: AlertState(), lastSent: nil)
        }
        let store = FileStateStore(root: scratch.path)
        try MonitorRegistry(store: store).save(entries)
        let engine = MonitorEngine(store: store, replicas: ReplicaProvider(store: store), backups: BackupProvider(store: store), log: { _ in })
        let seen = Seen()
        engine.sync(desired, now: Date().addingTimeInterval(-60))
        engine.startDue(desired, now: Date().addingTimeInterval(60)) { _, _, _ in seen.delivered() }
        // As many as there are probe threads are waiting on the receiver.
        #expect(eventually(timeout: 20) { silent.accepted >= 4 })
        // Work on the cooperative pool, as many tasks as it has threads and more.
        let ran = await withTaskGroup(of: Int.self) { group in
            for index in 0..<(2 * ProcessInfo.processInfo.activeProcessorCount) { group.addTask { index } }
            return await group.reduce(0) { count, _ in count + 1 }
        }
        #expect(ran == 2 * ProcessInfo.processInfo.activeProcessorCount)
        #expect(seen.deliveredCount == 0, "a probe ended before the pool ran: the receiver was closed early")
        silent.stop()
        #expect(eventually(timeout: 40) { seen.deliveredCount == count })
    }
}
