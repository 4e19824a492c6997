import Foundation
import StetCore
import StetCrypto
import StetManifest
import StetState
import StetTesting
import Testing

/// The state directory's copy of the release in force: written whole, read back only after it
/// verifies again, and the one source of the desired state whatever the manifests hold now.
@Suite struct ReleaseStoreTests {
    var repo = RepositoryFixture()

    init() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        try repo.writeManifests(replicas: 2)
        try repo.root.write("manifests/nested/extra.yaml", Samples.notifier(name: "nested"))
        try repo.sign(["alice"])
    }

    var store: FileStateStore { FileStateStore(root: repo.stateDir) }
    var releases: ReleaseStore { ReleaseStore(store: store) }

    var gate: ReleaseGate {
        var gate = ReleaseGate(manifests: repo.manifests, trustFile: repo.trustFile, store: store)
        gate.trustOnFirstUse = true
        return gate
    }

    func pinned() throws -> TrustPolicy { try #require(try PinnedTrust.load(from: store)) }

    /// Changes the web service's replica count and signs: the next release.
    func signNext(replicas: Int) throws {
        try repo.root.write("manifests/web.yaml", Samples.service(name: "web", replicas: replicas, port: 18080))
        try repo.sign(["alice"])
    }

    @Test func anAcceptedReleaseIsKeptWholeAndIsTheDesiredStateWhateverTheManifestsHoldNow() throws {
        let passed = try gate.open(accept: true, now: Date())
        let key = try #require(ReleaseStore.key(passed.release.digest))
        #expect(key == "releases/" + passed.release.digest.dropFirst(7))
        for file in ["release.dsse.json", "web.yaml", "backup.yaml", "monitor.yaml", "notifier.yaml", "nested/extra.yaml"] {
            var info = stat()
            #expect(lstat(store.path(key + "/" + file), &info) == 0, "\(file)")
            #expect(info.st_mode & 0o7777 == 0o600, "\(file)")
        }
        #expect(try releases.inForce(trust: try pinned(), now: Date())?.desired == passed.desired)

        // An unsigned edit, and then no manifests at all: the release in force is unchanged.
        try repo.root.write("manifests/web.yaml", Samples.service(name: "web", replicas: 9, port: 18080))
        #expect(try releases.inForce(trust: try pinned(), now: Date())?.desired.services["web"]?.replicas == 2)
        try FileManager.default.removeItem(atPath: repo.manifests)
        let inForce = try #require(try releases.inForce(trustFile: repo.trustFile, now: Date()))
        #expect(inForce.accepted.release == passed.release.release)
        #expect(inForce.desired == passed.desired)
    }

    /// A copy changed in the state directory is refused, not acted on: a file, the envelope, a
    /// file added, or `release.json` pointed at another copy.
    @Test(arguments: ["edit", "envelope", "unlisted", "pointer"])
    func aCopyChangedInTheStateDirectoryIsRefused(change: String) throws {
        let first = try gate.open(accept: true, now: Date())
        let key = try #require(ReleaseStore.key(first.release.digest))
        switch change {
        case "edit":
            try Data(Samples.service(name: "web", replicas: 9, port: 18080).utf8).write(to: URL(fileURLWithPath: store.path(key + "/web.yaml")))
        case "envelope":
            var envelope = try Envelope(json: try #require(try store.read(key + "/release.dsse.json")))
            envelope.signatures = []
            try store.write(key + "/release.dsse.json", envelope.json(pretty: true))
        case "unlisted":
            try store.write(key + "/injected.yaml", Data(Samples.service(name: "evil", replicas: 1, port: 18081).utf8))
        default:
            try signNext(replicas: 3)
            let second = try gate.verify(trust: try gate.resolveTrust(acting: false), now: Date())
            try releases.save(second.release)
            // release.json names the first release, its folder now holds the second's files.
            try store.removeFolder(key)
            try FileManager.default.moveItem(atPath: store.path(try #require(ReleaseStore.key(second.release.digest))), toPath: store.path(key))
        }
        #expect {
            _ = try releases.inForce(trust: try pinned(), now: Date())
        } throws: { error in
            guard let refused = error as? VerificationError else { return false }
            let expected: [String: VerificationError.Code] = [
                "edit": .fileModified, "envelope": .belowThreshold, "unlisted": .fileUnlisted, "pointer": .storedReleaseMismatch,
            ]
            return refused.code == expected[change] && refused.message.contains("the copy of the release in force")
        }
    }

    /// Stet writes no links: one in the copy is refused before anything is read through it.
    @Test func aLinkInTheCopyIsRefused() throws {
        let passed = try gate.open(accept: true, now: Date())
        let folder = store.path(try #require(ReleaseStore.key(passed.release.digest)))
        try FileManager.default.removeItem(atPath: folder + "/web.yaml")
        #expect(symlink(repo.manifests + "/web.yaml", folder + "/web.yaml") == 0)
        #expect {
            _ = try releases.inForce(trust: try pinned(), now: Date())
        } throws: { error in
            (error as? StateError)?.description.contains("symbolic link") == true
        }
    }

    /// A release in force is never torn down for its age: once expired it stays in force, with
    /// a warning, until a newer one is accepted. A new release that expired is refused.
    @Test func anExpiredReleaseStaysInForce() throws {
        try repo.sign(["alice"], renew: true, validity: 3600)
        _ = try gate.open(accept: true, now: Date())
        let later = Date().addingTimeInterval(7200)
        let inForce = try #require(try releases.inForce(trust: try pinned(), now: later))
        #expect(inForce.release.report.warnings.contains { $0.contains("stays in force until a newer release is accepted") })
        #expect(throws: ReleaseGate.Refused.self) { _ = try gate.open(accept: false, now: later) }
    }

    /// Keeping a copy is not accepting it: until `release.json` names it, the old release is in
    /// force (a crash between the two leaves the old one). Leftovers of an interrupted write are
    /// removed with old copies: the newest five besides the one in force stay.
    @Test func aCopyIsInertUntilAcceptedAndOldCopiesArePruned() throws {
        let first = try gate.open(accept: true, now: Date())
        try signNext(replicas: 3)
        let second = try gate.verify(trust: try gate.resolveTrust(acting: false), now: Date())
        try releases.save(second.release)
        #expect(releases.holds(second.release.release))
        #expect(try releases.inForce(trust: try pinned(), now: Date())?.accepted.release == first.release.release)

        try FileManager.default.createDirectory(atPath: store.path("releases/.new-1-2/web"), withIntermediateDirectories: true)
        var digests = [first.release.digest]
        for replicas in 4...10 {
            try signNext(replicas: replicas)
            digests.append(try gate.open(accept: true, now: Date()).release.digest)
        }
        let kept = try store.list("releases")
        #expect(kept.count == ReleaseStore.kept + 1)
        #expect(Set(kept) == Set(digests.suffix(ReleaseStore.kept + 1).map { String($0.dropFirst(7)) }))
        #expect(!FileManager.default.fileExists(atPath: store.path("releases/.new-1-2")))
        #expect(try releases.inForce(trust: try pinned(), now: Date())?.desired.services["web"]?.replicas == 10)
    }

    /// An older release is never recorded over a newer one, whoever verified it first.
    @Test func anOlderVerifiedReleaseIsNotRecordedOverANewerOne() throws {
        let older = try gate.verify(trust: try gate.resolveTrust(acting: true), now: Date())
        try signNext(replicas: 3)
        _ = try gate.open(accept: true, now: Date())
        try releases.save(older.release)
        #expect(throws: VerificationError.self) { try gate.record(older, now: Date()) }
        #expect(try AcceptedRelease.load(from: store)?.version == 2)
    }
}
