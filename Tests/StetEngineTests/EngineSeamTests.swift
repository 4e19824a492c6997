import Foundation
import StetAudit
import StetCore
import StetCrypto
import StetEngine
import StetPlanner
import StetProviders
import StetState
import Testing

/// The engine on its seams only (docs/architecture.md, "A fleet on etcd"): the applier with the in-memory state
/// store, audit sink and provider, nothing on disk. What a cluster store and sink plug into.
@Suite struct EngineSeamTests {
    let key: PrivateKey

    init() throws { key = try PrivateKey.generate() }

    func desired(_ replicas: Int) -> DesiredState {
        var desired = DesiredState()
        desired.services["web"] = Service(metadata: Metadata(name: "web"), replicas: replicas, run: Service.Run(command: ["v1"]))
        return desired
    }

    @Test func theApplierRecordsEveryActionInTheSinkAndTheStore() async throws {
        let (store, audit, provider) = (MemoryStateStore(), MemoryAuditSink(key: key), MemoryProvider())
        provider.failing = ["Service/web#2:start-replica"]
        let desired = desired(3)
        let plan = Planner().plan(desired: desired, observed: provider.state, release: .init(version: 1, digest: "sha256:1"), now: Date())
        let report = try await Applier(provider: provider, audit: audit, store: store, release: .init(version: 1, digest: "sha256:1"))
            .apply(plan, desired: desired)
        #expect(report.results.count == 3)
        let entries = audit.entries
        for change in plan.changes {
            let intent = entries.firstIndex { $0.kind == .intent && $0.change == change.id }
            let result = entries.firstIndex { $0.kind == .result && $0.change == change.id }
            #expect(intent != nil && result != nil && intent! < result!, "\(change.id)")
        }
        #expect(entries.first { $0.kind == .result && $0.change == "Service/web#2:start-replica" }?.outcome == .failed)
        // The last action of the resource, and no action left marked as in flight.
        #expect(ResourceStatus.load(ResourceID(.service, "web"), from: store).lastOutcome != nil)
        #expect(try store.list("inflight") == [])
    }

    /// An action outside a plan (`stet restore`) takes the same path as a plan's changes: its
    /// in-flight marker exists exactly while it runs, then intent and result are in the sink
    /// and the resource's status names it.
    @Test func anActionOutsideAPlanTakesTheSamePath() async throws {
        let (store, audit, provider) = (MemoryStateStore(), MemoryAuditSink(key: key), MemoryProvider())
        let applier = Applier(provider: provider, audit: audit, store: store, release: .init(version: 1, digest: "sha256:1"))
        let policy = ResourceID(.backupPolicy, "files")
        let action = Applier.Action(id: "\(policy):restore", resource: policy, action: "restore", reason: "restore snapshot abc into /tmp/x")
        var inFlight: [String] = []
        let (outcome, _) = try await applier.run(action) {
            inFlight = (try? store.list("inflight")) ?? []
            return .failed("repository not answering")
        }
        #expect(!outcome.ok)
        #expect(inFlight.count == 1)
        #expect(try store.list("inflight") == [])
        #expect(audit.entries.map(\.kind) == [.intent, .result])
        #expect(audit.entries.allSatisfy { $0.plan == nil && $0.change == nil && $0.resource == "BackupPolicy/files" && $0.action == "restore" })
        #expect(audit.entries.last?.error == "repository not answering")
        let status = ResourceStatus.load(policy, from: store)
        #expect(status.lastAction == "BackupPolicy/files:restore" && status.lastOutcome == "failed")
    }

    @Test func anActionLeftInFlightIsRecordedAsInterrupted() throws {
        let (store, audit) = (MemoryStateStore(), MemoryAuditSink(key: key))
        try store.write("inflight/Service_web_0_start-replica.json", Data("""
            {"plan": "plan-0123456789abcdef", "change": "Service/web#0:start-replica", "resource": "Service/web", "action": "start-replica"}
            """.utf8))
        #expect(try Applier.recoverInterrupted(store: store, audit: audit, release: .none) == 1)
        #expect(audit.entries.map(\.outcome) == [.interrupted])
        #expect(audit.entries.first?.change == "Service/web#0:start-replica")
        #expect(try store.list("inflight") == [])
    }
}
