import Foundation
import StetAudit
import StetCore
import StetCrypto
import StetEngine
import StetPlanner
import StetProviders
import StetState
import StetTesting
import Testing

/// The applier against the in-memory provider, with a real audit log.
@Suite struct ApplierTests {
    let state = TemporaryDirectory("stet-engine")
    let key: PrivateKey
    let trust: AuditTrust

    init() throws {
        key = try PrivateKey.generate()
        trust = AuditTrust([(name: "ci", publicKey: key.publicKey)])
    }

    var store: FileStateStore { FileStateStore(root: state.path) }

    func openLog() throws -> AuditLog {
        try AuditLog(stateDirectory: state.path, trust: trust, key: key, host: "h", via: "cli", release: .none)
    }

    static func service(_ name: String, replicas: Int, maxUnavailable: Int = 1, command: String = "v1") -> Service {
        Service(metadata: Metadata(name: name), replicas: replicas, run: Service.Run(command: [command]), maxUnavailable: maxUnavailable)
    }

    func entries() throws -> [AuditEntry] {
        var entries: [AuditEntry] = []
        let fd = open(state.path + "/audit/log.jsonl", O_RDONLY)
        defer { close(fd) }
        let scan = try AuditScanner(trust: trust).scan(fd: fd, from: .start) { entries.append($0.entry); return true }
        #expect(scan.failure == nil)
        return entries
    }

    func plan(_ desired: DesiredState, _ provider: MemoryProvider) -> Plan {
        Planner().plan(desired: desired, observed: provider.state, release: .init(version: 1, digest: "sha256:1"), now: Date())
    }

    @Test(arguments: [1, 2, 3])
    func replacementsGoInWavesOfMaxUnavailable(width: Int) async throws {
        var desired = DesiredState()
        desired.services["web"] = Self.service("web", replicas: 5, maxUnavailable: width)
        let provider = MemoryProvider()
        let log = try openLog()
        let applier = Applier(provider: provider, audit: log, store: store, release: .none)
        _ = try await applier.apply(plan(desired, provider), desired: desired)
        desired.services["web"] = Self.service("web", replicas: 5, maxUnavailable: width, command: "v2")
        let rollout = plan(desired, provider)
        #expect(rollout.changes.count == 5 && rollout.changes.allSatisfy { $0.action == .service(.replaceReplica) })
        let fresh = MemoryProvider(provider.state)
        let report = try await Applier(provider: fresh, audit: log, store: store, release: .none).apply(rollout, desired: desired)
        #expect(!report.failed)
        #expect(fresh.mostAtOnce == width)
        #expect(plan(desired, fresh).changes.isEmpty)
    }

    @Test func aFailureStopsTheRestOfItsResourceOnly() async throws {
        var desired = DesiredState()
        desired.services["web"] = Self.service("web", replicas: 3)
        desired.services["api"] = Self.service("api", replicas: 2)
        let provider = MemoryProvider()
        provider.failing = ["Service/web#1:start-replica"]
        let log = try openLog()
        let report = try await Applier(provider: provider, audit: log, store: store, release: .none)
            .apply(plan(desired, provider), desired: desired)
        #expect(report.failed)
        #expect(report.skipped.map(\.id) == ["Service/web#2:start-replica"])
        #expect(provider.state.services["api"]?.replicas.count == 2)
        // Every performed change has an intent before it and a result after it.
        let entries = try entries()
        for id in provider.performed {
            let intent = entries.firstIndex { $0.kind == .intent && $0.change == id }
            let result = entries.firstIndex { $0.kind == .result && $0.change == id }
            #expect(intent != nil && result != nil && intent! < result!, "\(id)")
        }
        #expect(entries.first { $0.kind == .result && $0.change == "Service/web#1:start-replica" }?.outcome == .failed)
        #expect(!entries.contains { $0.change == "Service/web#2:start-replica" })
        try log.close()
    }

    /// The marker is in place when the intent is appended, on both paths (a replica start,
    /// whose spawn waits for the intent only, and every other action), and gone after the result.
    @Test func everyIntentFindsItsMarkerInPlace() async throws {
        var desired = DesiredState()
        desired.services["web"] = Self.service("web", replicas: 3)
        let provider = MemoryProvider()
        let log = MarkerWatch(log: try openLog(), store: store)
        _ = try await Applier(provider: provider, audit: log, store: store, release: .none).apply(plan(desired, provider), desired: desired)
        desired.services["web"] = Self.service("web", replicas: 1)
        let report = try await Applier(provider: provider, audit: log, store: store, release: .none)
            .apply(plan(desired, provider), desired: desired)
        #expect(!report.failed)
        let seen = log.seen
        #expect(seen.map(\.change).sorted() == [
            "Service/web#0:start-replica", "Service/web#1:start-replica", "Service/web#1:stop-replica", "Service/web#2:start-replica",
            "Service/web#2:stop-replica",
        ])
        #expect(seen.allSatisfy { $0.markerInPlace }, "\(seen)")
        #expect(try store.list("inflight").isEmpty)
        try log.close()
    }

    /// Passes appends to the log, noting for each intent whether its in-flight marker was there.
    final class MarkerWatch: AuditSink, @unchecked Sendable {
        let log: AuditLog
        let store: FileStateStore
        private let lock = NSLock()
        private var noted: [(change: String, markerInPlace: Bool)] = []

        init(log: AuditLog, store: FileStateStore) {
            self.log = log
            self.store = store
        }

        var seen: [(change: String, markerInPlace: Bool)] { lock.withLock { noted } }

        private func note(_ records: [AuditRecord]) {
            for record in records where record.kind == .intent {
                let change = record.change ?? ""
                // As the applier names markers: `Service/web#0:start-replica` is `Service_web_0_start-replica`.
                let name = String(change.map { $0.isLetter || $0.isNumber || $0 == "-" ? $0 : "_" })
                let inPlace = (try? store.read("inflight/\(name).json")) != nil
                lock.withLock { noted.append((change, inPlace)) }
            }
        }

        func append(_ records: [AuditRecord], now: Date) throws -> [AuditEntry] {
            note(records)
            return try log.append(records, now: now)
        }

        func appendBeforeAction(_ records: [AuditRecord], now: Date) throws -> AuditSync {
            note(records)
            return try log.appendBeforeAction(records, now: now)
        }

        func checkpoint(origin: String?, now: Date) throws -> SignedNote { try log.checkpoint(origin: origin, now: now) }
        func close() throws { try log.close() }
        var size: Int { log.size }
        var damages: [AuditDamage] { log.damages }
    }

    /// A replica start prepares while its intent is synced (`AuditSink.appendBeforeAction`) and
    /// spawns only once the intent is durable. One whose intent cannot be made durable starts
    /// nothing and leaves the replica's record as it was (here: a replica that was killed); the
    /// apply throws as after a failed append, leaving the marker, and the drift found goes into
    /// the log without the intent.
    @Test(arguments: [false, true])
    func aReplicaIsSpawnedOnlyOnceItsIntentIsDurable(failing: Bool) async throws {
        let base = TemporaryDirectory("stet-applier-spawn")
        var provider = ReplicaProvider(store: store, baseDirectory: base.path)
        let spawned = Spawned()
        provider.spawned = { _, _, pid in spawned.note(pid) }
        defer { _ = try? provider.stop("web", 0, timeout: 5) }
        provider.startCheck = 0
        var desired = DesiredState()
        desired.services["web"] = Service(metadata: Metadata(name: "web"), replicas: 1, run: Service.Run(command: ["/bin/sleep", "600"]))
        func planNow() async throws -> Plan {
            Planner().plan(
                desired: desired, observed: try await provider.observe(desired, now: Date()), release: .init(version: 1, digest: "sha256:1"),
                now: Date())
        }
        // First a replica that ran and was killed.
        let plain = try openLog()
        #expect(try await !Applier(provider: provider, audit: plain, store: store, release: .none).apply(try await planNow(), desired: desired).failed)
        try plain.close()
        let first = try #require(try provider.record("web", 0))
        kill(first.pid, SIGKILL)
        let deadline = Date().addingTimeInterval(10)
        while ProcessTable.isAlive(first.pid, startTime: first.startTime), Date() < deadline { usleep(10_000) }
        _ = ProcessTable.reap(first.pid)
        let before = try entries().count

        let log = HeldSync(log: try openLog(), delay: 0.3, failure: failing ? TestFailure("the fsync failed") : nil) { spawned.pids.count == 1 }
        let plan = try await planNow()
        let change = try #require(plan.changes.first)
        #expect(plan.changes.count == 1 && change.action == .service(.startReplica) && change.cause == .drift)
        let admission = try Reconciler(audit: log, store: store, budget: 10, prune: false)
            .admit(plan, desired: desired, release: .none, now: Date())
        #expect(admission.allowed == plan.changes)
        let applier = Applier(provider: provider, audit: log, store: store, release: .none)
        if failing {
            await #expect(throws: TestFailure.self) {
                try await Reconciler.apply(admission, of: plan, with: applier, desired: desired, progress: { _ in })
            }
            #expect(spawned.pids.count == 1)
            let kept = try #require(try provider.record("web", 0))
            #expect(kept.pid == first.pid && kept.restarts == first.restarts && kept.instance == first.instance)
            #expect(try store.list("inflight") == ["Service_web_0_start-replica.json"])
            #expect(try entries().dropFirst(before).map(\.kind) == [.drift])
        } else {
            let report = try await Reconciler.apply(admission, of: plan, with: applier, desired: desired, progress: { _ in })
            #expect(!report.failed, "\(report.results)")
            #expect(log.foundAtSync == [true])
            #expect(spawned.pids.count == 2)
            #expect(try provider.record("web", 0)?.pid == spawned.pids.last)
            #expect(try entries().dropFirst(before).map(\.kind) == [.drift, .intent, .result])
        }
        try log.close()
    }

    final class Spawned: @unchecked Sendable {
        private let lock = NSLock()
        private var noted: [Int32] = []
        func note(_ pid: Int32) { lock.withLock { noted.append(pid) } }
        var pids: [Int32] { lock.withLock { noted } }
    }

    /// Passes appends to the log. An intent's entries are appended at once, and their sync is
    /// said to end `delay` seconds later, on another thread, after `check` has noted what it
    /// finds then; with `failure`, nothing is appended and the sync fails with it.
    final class HeldSync: AuditSink, @unchecked Sendable {
        let log: AuditLog
        let delay: Double
        let failure: (any Error)?
        let check: @Sendable () -> Bool
        private let lock = NSLock()
        private var found: [Bool] = []

        init(log: AuditLog, delay: Double, failure: (any Error)?, check: @escaping @Sendable () -> Bool) {
            self.log = log
            self.delay = delay
            self.failure = failure
            self.check = check
        }

        var foundAtSync: [Bool] { lock.withLock { found } }

        func append(_ records: [AuditRecord], now: Date) throws -> [AuditEntry] { try log.append(records, now: now) }

        func appendBeforeAction(_ records: [AuditRecord], now: Date) throws -> AuditSync {
            let sync = AuditSync()
            if let failure {
                sync.finish(.failure(failure))
                return sync
            }
            try log.append(records, now: now)
            Thread.detachNewThread { [self] in
                usleep(useconds_t(delay * 1e6))
                let seen = check()
                lock.withLock { found.append(seen) }
                sync.finish(.success(()))
            }
            return sync
        }

        func checkpoint(origin: String?, now: Date) throws -> SignedNote { try log.checkpoint(origin: origin, now: now) }
        func close() throws { try log.close() }
        var size: Int { log.size }
        var damages: [AuditDamage] { log.damages }
    }

    @Test func anIntentWithoutAResultIsRecordedAsInterrupted() throws {
        let log = try openLog()
        try store.write("inflight/Service_web_0_start-replica.json", Data(#"{"plan":"plan-1","change":"Service/web#0:start-replica","resource":"Service/web","action":"start-replica"}"#.utf8))
        #expect(try Applier.recoverInterrupted(store: store, audit: log, release: .none) == 1)
        #expect(try Applier.recoverInterrupted(store: store, audit: log, release: .none) == 0)
        let entry = try #require(try entries().last)
        #expect(entry.outcome == .interrupted && entry.change == "Service/web#0:start-replica" && entry.plan == "plan-1")
    }

    @Test func savedPlansNeedAnOperatorSignature() throws {
        var desired = DesiredState()
        desired.services["web"] = Self.service("web", replicas: 1)
        let plan = plan(desired, MemoryProvider())
        let signed = try PlanFile.sign(plan, with: key)
        #expect(try PlanFile.open(signed, source: "p", trust: trust).0 == plan)
        let stranger = try PrivateKey.generate()
        #expect(throws: PlanFile.Refused.self) { try PlanFile.open(try PlanFile.sign(plan, with: stranger), source: "p", trust: trust) }
        var tampered = try Envelope(json: signed)
        tampered.payload = Data(String(decoding: tampered.payload, as: UTF8.self).replacingOccurrences(of: "web", with: "wab").utf8)
        #expect(throws: PlanFile.Refused.self) { try PlanFile.open(tampered.json(), source: "p", trust: trust) }
    }
}

/// Exec checks keep the start of what the command printed.
@Suite struct CheckRunnerTests {
    @Test func execOutputIsCapturedAndCapped() {
        let result = CheckRunner().run(.exec(command: ["sh", "-c", "echo first line; echo second; exit 3"]), port: nil, timeout: 5)
        #expect(!result.ok)
        #expect(result.detail == "exit 3: first line | second")
        let long = CheckRunner().run(.exec(command: ["sh", "-c", "head -c 100000 /dev/zero | tr '\\\\0' x"]), port: nil, timeout: 5)
        #expect(long.ok)
        #expect(long.detail.count < 2100)
    }
}
