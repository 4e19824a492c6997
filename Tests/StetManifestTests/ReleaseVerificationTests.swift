import Foundation
import StetCore
import StetCrypto
import StetManifest
import StetState
import StetTesting
import Testing

/// One test per way a release is refused. Each checks the cause and that the state directory
/// did not change.
@Suite struct ReleaseVerificationTests {
    var repo = RepositoryFixture()

    init() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (2, ["alice", "bob", "carol"]), operator: (1, ["ci"]))
        try repo.writeManifests()
        try repo.sign(["alice", "bob"])
    }

    var gate: ReleaseGate {
        var gate = ReleaseGate(manifests: repo.manifests, trustFile: repo.trustFile, store: FileStateStore(root: repo.stateDir))
        gate.trustOnFirstUse = true
        return gate
    }

    /// Opens with `accept`, expects refusal with `code`, and checks the state is untouched.
    func expectRefused(_ code: VerificationError.Code, mentioning text: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        let before = repo.root.snapshot(".stet")
        do {
            _ = try gate.open(accept: true, now: Date())
            Issue.record("accepted a release that should be refused with \(code)", sourceLocation: sourceLocation)
        } catch let refused as ReleaseGate.Refused {
            #expect(refused.error.code == code, sourceLocation: sourceLocation)
            #expect(refused.error.message.contains(text), "\(refused.error.message)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
        }
        #expect(repo.root.snapshot(".stet") == before, "the state directory changed", sourceLocation: sourceLocation)
    }

    @Test func aGoodReleaseIsAcceptedAndRecorded() throws {
        let passed = try gate.open(accept: true, now: Date())
        #expect(passed.release.index.version == 1)
        #expect(passed.desired.resourceIDs.count == 4)
        #expect(passed.release.report.signers.map(\.status) == [.counted, .counted])
        let accepted = try #require(try AcceptedRelease.load(from: FileStateStore(root: repo.stateDir)))
        #expect(accepted.version == 1)
        #expect(accepted.digest == passed.release.digest)
        #expect(try PinnedTrust.load(from: FileStateStore(root: repo.stateDir))?.version == 1)
    }

    @Test func readOnlyVerificationWritesNothing() throws {
        _ = try gate.open(accept: false, now: Date())
        #expect(repo.root.snapshot(".stet").isEmpty)
    }

    @Test func unknownPayloadType() throws {
        let path = repo.manifests + "/release.dsse.json"
        var envelope = try Envelope(json: try #require(FileManager.default.contents(atPath: path)))
        envelope.payloadType = "application/vnd.in-toto+json"
        envelope.signatures = []
        try envelope.sign(with: repo.keys["alice"]!)
        try envelope.sign(with: repo.keys["bob"]!)
        try envelope.json().write(to: URL(fileURLWithPath: path))
        expectRefused(.wrongPayloadType, mentioning: "application/vnd.in-toto+json")
    }

    @Test func badSignature() throws {
        let path = repo.manifests + "/release.dsse.json"
        var envelope = try Envelope(json: try #require(FileManager.default.contents(atPath: path)))
        envelope.signatures[1].signature[10] ^= 1
        try envelope.json().write(to: URL(fileURLWithPath: path))
        expectRefused(.belowThreshold, mentioning: "does not verify under any trusted key")
    }

    @Test func belowThreshold() throws {
        try FileManager.default.removeItem(atPath: repo.manifests + "/release.dsse.json")
        try repo.sign(["alice"])
        expectRefused(.belowThreshold, mentioning: "1 of 2 required signatures")
    }

    @Test func theSameKeySigningTwiceCountsOnce() throws {
        try FileManager.default.removeItem(atPath: repo.manifests + "/release.dsse.json")
        try repo.sign(["alice"])
        let path = repo.manifests + "/release.dsse.json"
        var envelope = try Envelope(json: try #require(FileManager.default.contents(atPath: path)))
        envelope.signatures.append(.init(keyID: "another-hint", signature: envelope.signatures[0].signature))
        try envelope.json().write(to: URL(fileURLWithPath: path))
        expectRefused(.belowThreshold, mentioning: "a second signature by key alice")
    }

    @Test func keyOutsideTheReleaseRole() throws {
        try FileManager.default.removeItem(atPath: repo.manifests + "/release.dsse.json")
        try repo.sign(["alice", "ci"])
        expectRefused(.belowThreshold, mentioning: "key ci, which is not in role release")
    }

    @Test func expired() throws {
        try repo.sign(["alice"], renew: true, validity: 60, now: Date().addingTimeInterval(-3600))
        try repo.sign(["bob"], now: Date().addingTimeInterval(-3600))
        expectRefused(.expired, mentioning: "expired at")
    }

    @Test func rollbackToALowerVersion() throws {
        let oldEnvelope = try #require(FileManager.default.contents(atPath: repo.manifests + "/release.dsse.json"))
        let oldWeb = try #require(FileManager.default.contents(atPath: repo.manifests + "/web.yaml"))
        try repo.root.write("manifests/web.yaml", Samples.service(name: "web", replicas: 3, port: 18080))
        try repo.sign(["alice", "bob"])
        _ = try gate.open(accept: true, now: Date())
        try oldEnvelope.write(to: URL(fileURLWithPath: repo.manifests + "/release.dsse.json"))
        try oldWeb.write(to: URL(fileURLWithPath: repo.manifests + "/web.yaml"))
        expectRefused(.rollback, mentioning: "release version 1 is older than version 2")
    }

    @Test func sameVersionWithADifferentDigest() throws {
        _ = try gate.open(accept: true, now: Date())
        // Another release that also says version 1, properly signed: equivocation.
        try FileManager.default.removeItem(atPath: repo.manifests + "/release.dsse.json")
        try repo.root.write("manifests/web.yaml", Samples.service(name: "web", replicas: 5, port: 18080))
        try repo.sign(["alice", "bob"])
        expectRefused(.equivocation, mentioning: "two different releases with one version")
    }

    @Test func aModifiedFile() throws {
        try repo.root.write("manifests/web.yaml", Samples.service(name: "web", replicas: 9, port: 18080))
        expectRefused(.fileModified, mentioning: "web.yaml has digest")
    }

    /// Files are read, hashed and decoded in runs on every core: the refusal still names the
    /// first damaged file in the index's order, whichever run holds it and whatever comes after;
    /// and a changed file is refused for its digest, its new bytes never parsed.
    @Test func theFirstDamagedFileInOrderIsNamed() throws {
        for index in 0..<200 { try repo.root.write("manifests/many/n\(1000 + index).yaml", Samples.notifier(name: "n\(1000 + index)")) }
        try repo.sign(["alice", "bob"])
        try FileManager.default.removeItem(atPath: repo.manifests + "/many/n1150.yaml")
        try FileManager.default.removeItem(atPath: repo.manifests + "/many/n1020.yaml")
        try repo.root.write("manifests/many/n1010.yaml", "kind: [not: valid: yaml")
        expectRefused(.fileModified, mentioning: "n1010.yaml has digest")
        try repo.root.write("manifests/many/n1010.yaml", Samples.notifier(name: "n1010"))
        expectRefused(.fileMissing, mentioning: "n1020.yaml is listed in the release but does not exist")
        try repo.root.write("manifests/many/n1020.yaml", Samples.notifier(name: "n1020"))
        expectRefused(.fileMissing, mentioning: "n1150.yaml is listed in the release but does not exist")
        try repo.root.write("manifests/many/n1150.yaml", Samples.notifier(name: "n1150"))
        let passed = try gate.open(accept: false, now: Date())
        #expect(passed.desired.notifiers.count == 201)
        #expect(passed.release.files.map(\.path) == passed.release.files.map(\.path).sorted())
    }

    @Test func anUnlistedExtraManifest() throws {
        try repo.root.write("manifests/extra.yaml", Samples.notifier(name: "sneaky"))
        expectRefused(.fileUnlisted, mentioning: "extra.yaml is not part of release version 1")
    }

    @Test func aListedFileDeleted() throws {
        try FileManager.default.removeItem(atPath: repo.manifests + "/monitor.yaml")
        expectRefused(.fileMissing, mentioning: "monitor.yaml is listed in the release but does not exist")
    }

    @Test func dotDotInAPath() throws {
        try signIndex(files: ["../outside.yaml": Data("x".utf8).sha256Reference])
        expectRefused(.unsafePath, mentioning: "../outside.yaml")
    }

    @Test func aSymlinkOutOfTheDirectory() throws {
        // The listed file is replaced by a link to an identical copy outside: same digest, still refused.
        try FileManager.default.createDirectory(atPath: repo.root.file("elsewhere"), withIntermediateDirectories: true)
        try FileManager.default.moveItem(atPath: repo.manifests + "/notifier.yaml", toPath: repo.root.file("elsewhere/notifier.yaml"))
        try FileManager.default.createSymbolicLink(
            atPath: repo.manifests + "/notifier.yaml", withDestinationPath: repo.root.file("elsewhere/notifier.yaml"))
        expectRefused(.symlinkEscape, mentioning: "notifier.yaml is a symbolic link that leads outside")
        try FileManager.default.removeItem(atPath: repo.manifests + "/notifier.yaml")
        try FileManager.default.moveItem(atPath: repo.root.file("elsewhere/notifier.yaml"), toPath: repo.manifests + "/notifier.yaml")
        // A link to a folder outside, even with no manifest in it, is refused too.
        try FileManager.default.createSymbolicLink(atPath: repo.manifests + "/etc", withDestinationPath: "/etc")
        expectRefused(.symlinkEscape, mentioning: "etc is a symbolic link that leads outside")
    }

    @Test func aMissingEnvelope() throws {
        try FileManager.default.removeItem(atPath: repo.manifests + "/release.dsse.json")
        expectRefused(.envelopeMissing, mentioning: "stet release sign")
    }

    @Test func aTruncatedEnvelope() throws {
        let path = repo.manifests + "/release.dsse.json"
        let bytes = try #require(FileManager.default.contents(atPath: path))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: path))
        expectRefused(.envelopeMalformed, mentioning: "not a DSSE envelope")
    }

    @Test func mutatedEnvelopesAreRefusedNeverCrash() throws {
        let path = repo.manifests + "/release.dsse.json"
        let original = try #require(FileManager.default.contents(atPath: path))
        let trust = try TrustPolicy.load(file: repo.trustFile)
        var mutator = Mutator(seed: 4)
        for _ in 0..<1500 {
            let mutated = mutator.mutate(original)
            try mutated.write(to: URL(fileURLWithPath: path))
            let outcome = try ReleaseVerifier(directory: repo.manifests, trust: trust, accepted: nil, now: Date()).verify()
            if case .success(let release) = outcome.result {
                // Still accepted only if the signed content is exactly the original.
                let originalEnvelope = try Envelope(json: original)
                #expect(release.digest == originalEnvelope.payload.sha256Reference)
            }
        }
    }

    @Test func signingKeepsSignaturesAndBumpsOnlyOnChange() throws {
        let first = try repo.sign(["carol"])
        #expect(first.version == 1 && !first.newVersion && first.signatures == 3)
        try repo.root.write("manifests/web.yaml", Samples.service(name: "web", replicas: 4, port: 18080))
        let second = try repo.sign(["alice"])
        #expect(second.version == 2 && second.newVersion && second.signatures == 1)
    }

    @Test func signingRefusesAKeyOutsideTheReleaseRole() throws {
        let trust = try TrustPolicy.load(file: repo.trustFile)
        let signer = ReleaseSigner(directory: repo.manifests, key: repo.keys["ci"]!, trust: trust)
        #expect {
            try signer.sign(now: Date())
        } throws: { error in
            "\(error)".contains("not in the trust policy's release role")
        }
    }

    @Test func signingRefusesInvalidManifests() throws {
        try repo.root.write("manifests/web.yaml", "apiVersion: stet/v1\nkind: Service\n")
        #expect(throws: ManifestError.self) { try repo.sign(["alice"]) }
    }

    /// Writes a release whose index lists `files`, signed by alice and bob.
    func signIndex(files: [String: String]) throws {
        let index = ReleaseIndex(version: 1, created: Date(), expires: Date().addingTimeInterval(3600), files: files)
        var envelope = Envelope(payloadType: ReleaseIndex.payloadType, payload: index.encoded())
        try envelope.sign(with: repo.keys["alice"]!)
        try envelope.sign(with: repo.keys["bob"]!)
        try envelope.json().write(to: URL(fileURLWithPath: repo.manifests + "/release.dsse.json"))
    }
}
