import Foundation
import StetCrypto
import StetManifest
import StetState
import StetTesting
import Testing

/// The pinned trust policy changes only by a rotation signed by the root thresholds of both the
/// pinned and the new policy, for exactly the next version. In every refused case the pinned
/// policy stays in force and the state directory is unchanged.
@Suite struct TrustRotationTests {
    var repo = RepositoryFixture()
    let store: FileStateStore

    init() throws {
        store = FileStateStore(root: repo.stateDir)
        // Old root: alice, bob (2 of 2). New root: carol, dave (2 of 2).
        for name in ["alice", "bob", "carol", "dave", "mallory"] { try repo.key(name) }
        try repo.writeTrust(version: 1, root: (2, ["alice", "bob"]), release: (1, ["alice"]))
        try repo.writeManifests()
        try repo.sign(["alice"])
        try PinnedTrust.save(try TrustPolicy.load(file: repo.trustFile), to: store, now: Date())
        // The repository's new policy: version 2, new root keys, mallory may sign releases.
        try repo.writeTrust(version: 2, root: (2, ["carol", "dave"]), release: (1, ["mallory"]))
    }

    var gate: ReleaseGate { ReleaseGate(manifests: repo.manifests, trustFile: repo.trustFile, store: store) }

    func signRotation(_ names: [String]) throws {
        for name in names {
            var signer = TrustSigner(trustFile: repo.trustFile, key: repo.keys[name]!, pinned: nil)
            signer.force = true
            _ = try signer.sign()
        }
    }

    func expectRefused(_ code: VerificationError.Code, sourceLocation: Testing.SourceLocation = #_sourceLocation) throws {
        let before = repo.root.snapshot(".stet")
        #expect(sourceLocation: sourceLocation) {
            try gate.open(accept: true, now: Date())
        } throws: { error in
            (error as? ReleaseGate.Refused)?.error.code == code
        }
        #expect(repo.root.snapshot(".stet") == before, sourceLocation: sourceLocation)
        #expect(try PinnedTrust.load(from: store)?.version == 1, sourceLocation: sourceLocation)
    }

    @Test func aRotationSignedByBothRootThresholdsIsPinned() throws {
        try signRotation(["alice", "bob", "carol", "dave"])
        try repo.sign(["mallory"])  // a release by the new policy's release key
        let passed = try gate.open(accept: true, now: Date())
        #expect(passed.trust.source == .rotated(from: 1))
        #expect(try PinnedTrust.load(from: store)?.version == 2)
        #expect(try PinnedTrust.load(from: store)?.keys["mallory"] != nil)
    }

    @Test func signedOnlyByTheNewRootKeys() throws {
        try signRotation(["carol", "dave"])
        try expectRefused(.rotationOldRootThreshold)
    }

    @Test func signedOnlyByTheOldRootKeys() throws {
        try signRotation(["alice", "bob"])
        try expectRefused(.rotationNewRootThreshold)
    }

    @Test func belowTheOldThreshold() throws {
        try signRotation(["alice", "carol", "dave"])
        try expectRefused(.rotationOldRootThreshold)
    }

    @Test mutating func aVersionThatSkipsOne() throws {
        try repo.writeTrust(version: 3, root: (2, ["carol", "dave"]), release: (1, ["mallory"]))
        try signRotation(["alice", "bob", "carol", "dave"])
        try expectRefused(.rotationVersion)
    }

    @Test func aChangedPolicyWithoutARotation() throws {
        try expectRefused(.trustChangedWithoutRotation)
    }

    @Test mutating func aChangedKeyFileWithTheSameTrustYAML() throws {
        // Same trust.yaml as pinned, but someone replaced alice's public key file.
        try repo.writeTrust(version: 1, root: (2, ["alice", "bob"]), release: (1, ["alice"]))
        try repo.root.write("keys/alice.pub", try repo.keys["mallory"]!.publicKey.pem())
        try expectRefused(.trustChangedWithoutRotation)
    }

    @Test mutating func aRotationForOtherPolicyBytes() throws {
        try signRotation(["alice", "bob", "carol", "dave"])
        try repo.writeTrust(version: 2, root: (2, ["carol", "dave"]), release: (1, ["mallory", "alice"]))
        try expectRefused(.rotationDigestMismatch)
    }

    @Test mutating func actingWithoutAPinnedPolicyNeedsAnExplicitChoice() throws {
        let fresh = FileStateStore(root: repo.root.file("fresh"))
        try repo.writeTrust(version: 1, root: (2, ["alice", "bob"]), release: (1, ["alice"]))
        let unpinned = ReleaseGate(manifests: repo.manifests, trustFile: repo.trustFile, store: fresh)
        #expect {
            try unpinned.open(accept: true, now: Date())
        } throws: { error in
            let refused = (error as? ReleaseGate.Refused)?.error
            return refused?.code == .trustNotPinned && refused!.message.contains("stet trust pin")
        }
        #expect(!FileManager.default.fileExists(atPath: fresh.root))
        // Read-only checks work against the repository policy and say so.
        #expect(try unpinned.open(accept: false, now: Date()).trust.source == .unpinned)
    }
}

@Suite struct TrustPolicyParsingTests {
    @Test func problemsInTrustYAMLAreReportedWithPositions() throws {
        let dir = TemporaryDirectory()
        let key = try PrivateKey.generate()
        try dir.write("keys/alice.pub", try key.publicKey.pem())
        try dir.write("keys/trust.yaml", """
            apiVersion: stet/v1
            kind: TrustPolicy
            version: 1
            keys:
              alice: {publicKey: alice.pub}
              bob: {publicKey: missing.pub}
            roles:
              root: {threshold: 3, keys: [alice]}
              release: {threshold: 1, keys: [alice, zed]}

            """)
        #expect {
            try TrustPolicy.load(file: dir.file("keys/trust.yaml"))
        } throws: { error in
            let lines = (error as? ManifestError)?.diagnostics.map(\.description) ?? []
            let file = dir.file("keys/trust.yaml")
            return lines == [
                "\(file):6:20: keys.bob.publicKey: cannot read public key file missing.pub",
                "\(file):8:21: roles.root.threshold: threshold 3 can never be met by 1 key(s)",
            ]
        }
    }

    @Test func aRoleNamingAnUnknownKey() throws {
        let dir = TemporaryDirectory()
        try dir.write("keys/alice.pub", try PrivateKey.generate().publicKey.pem())
        try dir.write("keys/trust.yaml", """
            apiVersion: stet/v1
            kind: TrustPolicy
            version: 1
            keys: {alice: {publicKey: alice.pub}}
            roles:
              root: {threshold: 1, keys: [alice]}
              release: {threshold: 1, keys: [alice, zed]}

            """)
        #expect {
            try TrustPolicy.load(file: dir.file("keys/trust.yaml"))
        } throws: { error in
            (error as? ManifestError)?.diagnostics.map(\.description)
                == ["\(dir.file("keys/trust.yaml")):7:41: roles.release.keys[1]: no key named \"zed\" under keys"]
        }
    }
}

/// A rotation binds the key material, not only trust.yaml (which names key files): after a
/// legitimate rotation that adds carol, replacing keys/carol.pub with an attacker's key must be
/// refused, whichever role carol joins.
@Suite struct RotationKeyBindingTests {
    enum Role: String, CaseIterable { case release, `operator`, root }

    /// Pinned v1: root alice (1), release alice+bob (2), operator op (1). The repository's v2
    /// adds carol to `role`, and alice (root of both) signs the rotation.
    func rotation(adding role: Role) throws -> (RepositoryFixture, FileStateStore) {
        var repo = RepositoryFixture()
        let store = FileStateStore(root: repo.stateDir)
        try repo.key("mallory")
        try repo.writeTrust(version: 1, root: (1, ["alice"]), release: (2, ["alice", "bob"]), operator: (1, ["op"]))
        try repo.writeManifests()
        try repo.sign(["alice", "bob"])
        try PinnedTrust.save(try TrustPolicy.load(file: repo.trustFile), to: store, now: Date())
        try repo.writeTrust(
            version: 2, root: (1, ["alice"] + (role == .root ? ["carol"] : [])),
            release: (2, ["alice", "bob"] + (role == .release ? ["carol"] : [])),
            operator: (1, ["op"] + (role == .operator ? ["carol"] : [])))
        var signer = TrustSigner(trustFile: repo.trustFile, key: repo.keys["alice"]!, pinned: try PinnedTrust.load(from: store))
        signer.force = false
        let signed = try signer.sign()
        #expect(signed.keys["carol"] == repo.keys["carol"]!.publicKey.keyID)
        return (repo, store)
    }

    @Test(arguments: Role.allCases)
    func theLegitimateRotationIsPinned(role: Role) throws {
        let (repo, store) = try rotation(adding: role)
        let gate = ReleaseGate(manifests: repo.manifests, trustFile: repo.trustFile, store: store)
        let passed = try gate.open(accept: true, now: Date())
        #expect(passed.trust.source == .rotated(from: 1))
        #expect(try PinnedTrust.load(from: store)?.keys["carol"]?.publicKey == repo.keys["carol"]!.publicKey)
    }

    @Test(arguments: Role.allCases)
    func aKeyFileSwappedAfterTheRotationIsRefused(role: Role) throws {
        let (repo, store) = try rotation(adding: role)
        // The attacker can push: carol.pub becomes mallory's key, and mallory signs the release.
        try repo.root.write("keys/carol.pub", try repo.keys["mallory"]!.publicKey.pem())
        var signer = ReleaseSigner(directory: repo.manifests, key: repo.keys["mallory"]!, trust: nil)
        signer.force = true
        _ = try signer.sign(now: Date())
        let before = repo.root.snapshot(".stet")
        let gate = ReleaseGate(manifests: repo.manifests, trustFile: repo.trustFile, store: store)
        #expect {
            try gate.open(accept: true, now: Date())
        } throws: { error in
            let refused = (error as? ReleaseGate.Refused)?.error
            return refused?.code == .rotationKeyMismatch && refused!.message.contains("key carol")
        }
        #expect(repo.root.snapshot(".stet") == before)
        #expect(try PinnedTrust.load(from: store)?.version == 1)
    }

    @Test func aRotationThatDoesNotNameEveryKeyIsRefused() throws {
        let (repo, store) = try rotation(adding: .release)
        // Re-sign a statement without carol, as a rotation made before key binding would be.
        let policy = try TrustPolicy.load(file: repo.trustFile)
        var keys = policy.keys.mapValues { $0.publicKey.keyID }
        keys["carol"] = nil
        var envelope = Envelope(
            payloadType: TrustRotation.payloadType, payload: TrustRotation(version: 2, policy: policy.digest, keys: keys).encoded())
        try envelope.sign(with: repo.keys["alice"]!)
        try repo.root.write("keys/trust.dsse.json", envelope.json(pretty: true))
        let gate = ReleaseGate(manifests: repo.manifests, trustFile: repo.trustFile, store: store)
        #expect {
            try gate.open(accept: true, now: Date())
        } throws: { error in
            (error as? ReleaseGate.Refused)?.error.code == .rotationKeyMissing
        }
        #expect(try PinnedTrust.load(from: store)?.version == 1)
    }

    @Test func aPayloadWithADuplicatedKeyIsRefused() throws {
        let (repo, store) = try rotation(adding: .release)
        let policy = try TrustPolicy.load(file: repo.trustFile)
        let keys = policy.keys.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\"\($0.value.publicKey.keyID)\"" }.joined(separator: ",")
        let payload = "{\"keys\":{\(keys)},\"policy\":\"\(policy.digest)\",\"type\":\"stet.trust/v1\",\"version\":3,\"version\":2}"
        var envelope = Envelope(payloadType: TrustRotation.payloadType, payload: Data(payload.utf8))
        try envelope.sign(with: repo.keys["alice"]!)
        try repo.root.write("keys/trust.dsse.json", envelope.json(pretty: true))
        let gate = ReleaseGate(manifests: repo.manifests, trustFile: repo.trustFile, store: store)
        #expect {
            try gate.open(accept: true, now: Date())
        } throws: { error in
            let refused = (error as? ReleaseGate.Refused)?.error
            return refused?.code == .rotationMalformed && refused!.message.contains("appears twice")
        }
    }
}
