import Foundation
import StetAudit
import StetCore
import StetCrypto
import StetEngine
import StetManifest
import StetPlanner
import StetProviders
import StetState
import StetTesting
import Testing

/// `ApplyRelease`, the apply path of `stet apply` on the memory provider: a new release comes
/// into force only once its plan is approved, a plan not approved is recorded, and a saved plan
/// for the release in force is applied on its kept copy, once.
@Suite struct ApplyReleaseTests {
    var repo = RepositoryFixture()

    init() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        // Services only: the memory provider keeps replicas.
        try repo.root.write("manifests/web.yaml", Samples.service(name: "web", replicas: 2, port: 18080))
        try repo.sign(["alice"])
    }

    var store: FileStateStore { FileStateStore(root: repo.stateDir) }

    var acting: ReleaseAcceptance.Operator {
        ReleaseAcceptance.Operator(key: repo.keys["ci"]!, repositoryTrust: repo.trustFile, lockTimeout: 5)
    }

    /// The manifests' release; the first one pins the repository's trust policy.
    func source() -> ApplyRelease.Source {
        var gate = ReleaseGate(manifests: repo.manifests, trustFile: repo.trustFile, store: store)
        gate.trustOnFirstUse = true
        return ApplyRelease.Source(gate: gate, commit: nil, name: repo.manifests)
    }

    func entries() throws -> [AuditEntry] { try auditEntries(store, repositoryTrust: repo.trustFile) }

    func hooks(_ approval: ApplyRelease.Approval) -> ApplyRelease.Hooks {
        ApplyRelease.Hooks(approve: { _ in approval })
    }

    @Test func aPlanNotApprovedAcceptsNothingAndIsRecorded() async throws {
        let apply = try ApplyRelease.open(store: store, saved: nil, by: acting, now: Date(), source: source)
        defer { try? apply.acceptance.audit.close() }
        #expect(apply.candidate != nil)
        let provider = MemoryProvider()
        await #expect(throws: ApplyRelease.NotApproved.self) {
            _ = try await apply.run(
                provider: provider, saved: nil, prune: false,
                hooks: hooks(.withheld(how: "was declined", why: "declined at the prompt", message: "not applied")))
        }
        #expect(try AcceptedRelease.load(from: store) == nil)
        #expect(provider.performed.isEmpty)
        let last = try #require(try entries().last)
        #expect(last.kind == .refusal && last.reason?.hasSuffix("was declined") == true && last.error == "declined at the prompt")
        #expect(try entries().allSatisfy { $0.kind != .release })
    }

    @Test func anApprovedPlanAcceptsTheReleaseThenApplies() async throws {
        let apply = try ApplyRelease.open(store: store, saved: nil, by: acting, now: Date(), source: source)
        defer { try? apply.acceptance.audit.close() }
        let provider = MemoryProvider()
        let outcome = try await apply.run(provider: provider, saved: nil, prune: false, hooks: hooks(.approved))
        #expect(outcome.accepted == apply.release)
        #expect(try AcceptedRelease.load(from: store)?.release == apply.release)
        #expect(!outcome.plan.changes.isEmpty && !outcome.report.failed)
        #expect(Set(provider.performed) == Set(outcome.plan.changes.map(\.id)))
        // The release entry comes before the first action's intent.
        let kinds = try entries().map(\.kind)
        let release = try #require(kinds.firstIndex(of: .release))
        let intent = try #require(kinds.firstIndex(of: .intent))
        #expect(release < intent)
    }

    /// With the manifests edited and unsigned, a plan saved for the release in force is applied on
    /// that release's kept copy, without reading the manifests, and only once.
    @Test func aSavedPlanForTheReleaseInForceIsAppliedOnItsCopyOnce() async throws {
        let provider = MemoryProvider()
        do {
            let first = try ApplyRelease.open(store: store, saved: nil, by: acting, now: Date(), source: source)
            defer { try? first.acceptance.audit.close() }
            _ = try await first.run(provider: provider, saved: nil, prune: false, hooks: hooks(.approved))
        }
        provider.change { $0.services["web"]?.replicas[1] = nil }
        try repo.root.write("manifests/web.yaml", Samples.service(name: "web", replicas: 5, port: 18080))
        let inForce = ReleaseStore(store: store).reference()
        let desired = try #require(try ReleaseStore(store: store).inForce(trustFile: repo.trustFile, now: Date())).desired
        let plan = Planner().plan(desired: desired, observed: provider.state, release: inForce, now: Date())
        #expect(plan.changes.map(\.id) == ["Service/web#1:start-replica"])
        let saved = ApplyRelease.SavedPlan(plan, source: "saved.plan")

        let apply = try ApplyRelease.open(store: store, saved: plan, by: acting, now: Date()) {
            throw TestFailure("the manifests were read for a plan of the release in force")
        }
        defer { try? apply.acceptance.audit.close() }
        #expect(apply.candidate == nil && apply.release == inForce)
        let outcome = try await apply.run(provider: provider, saved: saved, prune: false, hooks: hooks(.approved))
        #expect(outcome.accepted == nil && !outcome.report.failed)
        #expect(provider.state.services["web"]?.replicas[1]?.status == .running)

        await #expect(throws: PlanFile.Stale.self) {
            _ = try await apply.run(provider: provider, saved: saved, prune: false, hooks: hooks(.approved))
        }
        let last = try #require(try entries().last)
        #expect(last.kind == .refusal && last.reason == "saved plan saved.plan was refused")
    }
}
