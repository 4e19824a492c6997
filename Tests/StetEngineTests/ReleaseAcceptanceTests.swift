import Foundation
import StetAudit
import StetCore
import StetCrypto
import StetEngine
import StetManifest
import StetState
import StetTesting
import Testing

/// `ReleaseAcceptance`, the one path by which a release comes into force: audited first, then
/// kept and recorded; a refusal recorded and nothing else; never over a newer release.
@Suite struct ReleaseAcceptanceTests {
    var repo = RepositoryFixture()

    init() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        try repo.writeManifests()
        try repo.sign(["alice"])
    }

    var store: FileStateStore { FileStateStore(root: repo.stateDir) }

    /// The first release pins the repository's trust policy (the log is opened first, under it).
    var gate: ReleaseGate {
        var gate = ReleaseGate(manifests: repo.manifests, trustFile: repo.trustFile, store: store)
        gate.trustOnFirstUse = true
        return gate
    }

    func acceptance() throws -> ReleaseAcceptance {
        let audit = try OperatorLog.open(
            store: store, repositoryTrust: repo.trustFile, key: repo.keys["ci"]!, policy: nil, via: "daemon", lockTimeout: 5)
        return ReleaseAcceptance(store: store, audit: audit)
    }

    func entries() throws -> [AuditEntry] { try auditEntries(store, repositoryTrust: repo.trustFile) }

    func passed() throws -> ReleaseGate.Passed {
        guard case .passed(let passed) = try ReleaseAcceptance.check(gate, now: Date()) else { throw TestFailure("refused") }
        return passed
    }

    func nextRelease() throws {
        try repo.root.write("manifests/web.yaml", Samples.service(name: "web", replicas: 3, port: 18080))
        try repo.sign(["alice"])
    }

    @Test func acceptingAuditsThenKeepsAndRecordsTheRelease() throws {
        let acceptance = try acceptance()
        let first = try passed()
        #expect(try acceptance.accept(first, gate: gate, commit: nil, now: Date()) == .accepted(first.release.release))
        let entry = try #require(try entries().last)
        #expect(entry.kind == .release && entry.release == first.release.release && entry.actor.via == "daemon")
        #expect(try AcceptedRelease.load(from: store)?.release == first.release.release)
        #expect(ReleaseStore(store: store).holds(first.release.release))
        // Again, verified under the policy now pinned: in force already, nothing recorded.
        #expect(try acceptance.accept(try passed(), gate: gate, commit: nil, now: Date()) == .inForce(first.release.release))
        #expect(try entries().count == 1)
    }

    /// A copy of the release in force changed in the state directory is refused when read, and
    /// accepting that release again from its manifests puts the verified copy back.
    @Test func acceptingTheReleaseInForceAgainRestoresItsCopy() throws {
        let acceptance = try acceptance()
        let first = try passed()
        _ = try acceptance.accept(first, gate: gate, commit: nil, now: Date())
        let key = try #require(ReleaseStore.key(first.release.digest))
        try Data(Samples.service(name: "web", replicas: 9, port: 18080).utf8).write(to: URL(fileURLWithPath: store.path(key + "/web.yaml")))
        let pinned = try #require(try PinnedTrust.load(from: store))
        #expect(throws: VerificationError.self) { _ = try ReleaseStore(store: store).inForce(trust: pinned, now: Date()) }
        #expect(try acceptance.accept(try passed(), gate: gate, commit: nil, now: Date()) == .inForce(first.release.release))
        #expect(try ReleaseStore(store: store).inForce(trust: pinned, now: Date())?.desired == first.desired)
    }

    /// A release verified before another process accepted a newer one is not accepted after it
    /// (the loop verifies on its own thread while `apply` may accept).
    @Test func aReleaseOlderThanOneAcceptedMeanwhileIsNotAccepted() throws {
        let acceptance = try acceptance()
        let older = try passed()
        try nextRelease()
        let newer = try passed()
        _ = try acceptance.accept(newer, gate: gate, commit: nil, now: Date())
        let count = try entries().count
        #expect(try acceptance.accept(older, gate: gate, commit: nil, now: Date()) == .superseded(by: newer.release.release))
        #expect(try entries().count == count)
        #expect(try AcceptedRelease.load(from: store)?.version == 2)
    }

    /// An unsigned edit is refused and recorded under the release in force, which stays.
    @Test func aRefusalIsRecordedAndChangesNothingElse() throws {
        let acceptance = try acceptance()
        _ = try acceptance.accept(try passed(), gate: gate, commit: nil, now: Date())
        try repo.root.write("manifests/web.yaml", Samples.service(name: "web", replicas: 9, port: 18080))
        let before = repo.root.snapshot(".stet").filter { !$0.key.hasPrefix("audit/") }
        let check = try ReleaseAcceptance.check(gate, now: Date())
        guard case .refused(let refused) = check else { throw TestFailure("not refused") }
        #expect(refused.error.code == .fileModified)
        try acceptance.record(check, action: "accept-release", source: "manifests")
        let entry = try #require(try entries().last)
        #expect(entry.kind == .refusal && entry.release.version == 1)
        #expect(entry.reason?.contains("release version 1 stays in force") == true)
        #expect(repo.root.snapshot(".stet").filter { !$0.key.hasPrefix("audit/") } == before)
    }

    /// A key that is no operator of the policy the release was verified under does not accept it.
    @Test func onlyAnOperatorOfThePolicyAccepts() throws {
        let audit = try AuditLog(
            stateDirectory: repo.stateDir, trust: AuditTrust([(name: "alice", publicKey: repo.keys["alice"]!.publicKey)]),
            key: repo.keys["alice"]!, host: "h", via: "cli", release: .none)
        #expect(throws: AuditError.self) {
            _ = try ReleaseAcceptance(store: store, audit: audit).accept(try passed(), gate: gate, commit: nil, now: Date())
        }
        #expect(try AcceptedRelease.load(from: store) == nil)
    }
}
