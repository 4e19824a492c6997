import Foundation
import StetCrypto
import StetManifest
import StetTesting
import Testing

/// The `stet` binary, run as a user runs it.
enum Binary {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path

    /// The `stet` built beside this test bundle.
    static var stet: String {
        var folder = Bundle.main.bundleURL
        for _ in 0..<4 {
            let candidate = folder.appendingPathComponent("stet").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            folder.deleteLastPathComponent()
        }
        return packageRoot + "/.build/debug/stet"
    }

    static func run(_ arguments: [String], in directory: String, environment: [String: String] = [:]) throws -> ProcessOutput {
        try StetTesting.run(stet, arguments, in: directory, environment: environment)
    }
}

@Suite struct CLITests {
    var repo = RepositoryFixture()

    func stet(_ arguments: String..., environment: [String: String] = [:]) throws -> ProcessOutput {
        try Binary.run(arguments, in: repo.root.path, environment: environment)
    }

    @Test func keysGenerateWritesAPrivateKeyOnlyTheOwnerReadsAndNeverOverwrites() throws {
        let made = try stet("keys", "generate", "alice", "--private-dir", "private", "--json")
        #expect(made.status == 0, "\(made.combined)")
        var info = stat()
        #expect(stat(repo.root.file("private/alice.key"), &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        let key = try PrivateKey(contentsOfFile: repo.root.file("private/alice.key"))
        #expect(made.stdout.contains(key.publicKey.keyID))
        let id = try stet("keys", "id", "keys/alice.pub")
        #expect(id.stdout == key.publicKey.keyID + "\n")

        let again = try stet("keys", "generate", "alice", "--private-dir", "private")
        #expect(again.status == 1)
        #expect(again.stderr.contains("exists already"))
        #expect(try PrivateKey(contentsOfFile: repo.root.file("private/alice.key")).publicKey == key.publicKey)

        chmod(repo.root.file("private/alice.key"), 0o644)
        let loose = try stet("keys", "id", "private/alice.key")
        #expect(loose.status == 1)
        #expect(loose.stderr.contains("readable by group or others"))
    }

    @Test mutating func signVerifyAcceptWithTwoReviewers() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (2, ["alice", "bob"]), operator: (1, ["ci"]))
        try repo.writeManifests()
        let validate = try stet("validate")
        #expect(validate.status == 0)
        #expect(validate.stdout.contains("1 Service, 1 BackupPolicy, 1 Monitor, 1 Notifier"))

        #expect(try stet("release", "sign", "--key", "private/alice.key").status == 0)
        let short = try stet("verify", "--json")
        #expect(short.status == 10)
        let report = try JSONSerialization.jsonObject(with: Data(short.stdout.utf8)) as? [String: Any]
        #expect((report?["refused"] as? [String: Any])?["code"] as? String == "below-threshold")

        let outsider = try stet("release", "sign", "--key", "private/ci.key")
        #expect(outsider.status == 1)
        #expect(outsider.stderr.contains("not in the trust policy's release role"))

        #expect(try stet("release", "sign", "--key", "private/bob.key").status == 0)
        // Acting needs an operator key, before anything else is looked at.
        let keyless = try stet("verify", "--accept")
        #expect(keyless.status == 1)
        #expect(keyless.stderr.contains("an operator key is required"))
        #expect(!FileManager.default.fileExists(atPath: repo.stateDir))

        let unpinned = try stet("verify", "--accept", environment: ci)
        #expect(unpinned.status == 10)
        #expect(unpinned.stderr.contains("stet trust pin"))
        #expect(!FileManager.default.fileExists(atPath: repo.stateDir + "/release.json"))

        let pin = try stet("trust", "pin", environment: ci)
        #expect(pin.status == 0, "\(pin.combined)")
        #expect(pin.stdout.contains(repo.keys["alice"]!.publicKey.keyID))
        let accepted = try stet("verify", "--accept", environment: ci)
        #expect(accepted.status == 0, "\(accepted.combined)")
        #expect(accepted.stdout.contains("threshold  2 of 2 met"))
        #expect(FileManager.default.fileExists(atPath: repo.stateDir + "/release.json"))

        // A tampered file: exit 10, the refusal says why and is audited; nothing else changes.
        let before = repo.root.snapshot(".stet").filter { !$0.key.hasPrefix("audit/") }
        try repo.root.write("manifests/web.yaml", Samples.service(name: "web", replicas: 7, port: 18080))
        let tampered = try stet("verify", "--accept", environment: ci)
        #expect(tampered.status == 10)
        #expect(tampered.stderr.contains("file-modified"))
        #expect(repo.root.snapshot(".stet").filter { !$0.key.hasPrefix("audit/") } == before)

        // Every decision is in the log, in order, signed by ci; the log verifies.
        let list = try stet("audit", "list", "--json")
        let entries = list.stdout.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        #expect(entries.map { $0["kind"] as? String } == ["refusal", "result", "release", "refusal"])
        #expect(entries.map { $0["action"] as? String } == ["accept-release", "pin-trust", "accept-release", "accept-release"])
        #expect((entries.last?["error"] as? String)?.contains("file-modified") == true)
        #expect(entries.allSatisfy { ($0["actor"] as? [String: Any])?["name"] as? String == "ci" })
        let verified = try stet("audit", "verify")
        #expect(verified.status == 0, "\(verified.combined)")
        #expect(verified.stdout.contains("entries      4 checked"))
    }

    var ci: [String: String] { ["STET_KEY": "private/ci.key"] }

    @Test mutating func aTrustRotationThroughTheCommands() throws {
        try repo.writeTrust(version: 1, root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        try repo.writeManifests()
        #expect(try stet("trust", "pin", environment: ci).status == 0)
        try repo.writeTrust(version: 2, root: (1, ["carol"]), release: (1, ["carol"]), operator: (1, ["ops"]))
        #expect(try stet("release", "sign", "--key", "private/carol.key").status == 0)

        let unsigned = try stet("verify", "--accept", environment: ci)
        #expect(unsigned.status == 10)
        #expect(unsigned.stderr.contains("trust-changed-without-rotation"))

        #expect(try stet("trust", "sign", "--key", "private/carol.key").status == 0)
        let half = try stet("verify", "--accept", environment: ci)
        #expect(half.status == 10)
        #expect(half.stderr.contains("rotation-old-root-threshold"))

        try repo.key("dave")
        let outsider = try stet("trust", "sign", "--key", "private/dave.key")
        #expect(outsider.status == 1)
        #expect(outsider.stderr.contains("pass --force"))
        // alice is a root key of the policy pinned on this host, so she may sign the rotation.
        let alice = try stet("trust", "sign", "--key", "private/alice.key")
        #expect(alice.status == 0, "\(alice.combined)")
        #expect(alice.stdout.contains("signatures  2"))
        // ci is no operator of version 2: the new policy's operator acts.
        let stale = try stet("verify", "--accept", environment: ci)
        #expect(stale.status == 10)
        #expect(stale.stderr.contains("not an operator key"))
        let rotated = try stet("verify", "--accept", environment: ["STET_KEY": "private/ops.key"])
        #expect(rotated.status == 0, "\(rotated.combined)")
        #expect(rotated.stderr.contains("rotates from version 1 to 2"))
        let pinned = try String(contentsOfFile: repo.stateDir + "/trust/policy.json", encoding: .utf8)
        #expect(pinned.contains(repo.keys["carol"]!.publicKey.keyID))
        // Entries ci signed under version 1 still verify after the rotation.
        let verified = try stet("audit", "verify")
        #expect(verified.status == 0, "\(verified.combined)")
        let list = try stet("audit", "list")
        #expect(list.stdout.contains("ci  pin-trust"))
        #expect(list.stdout.contains("ops  accept-release  ok"))
    }

    @Test func stateDirectoryComesFromTheEnvironment() throws {
        let example = try copyExample()
        chmod(example.file("examples/keys/example-operator.key"), 0o600)
        let run = try Binary.run(
            ["verify", "--accept", "--trust-on-first-use"], in: example.path,
            environment: ["STET_STATE_DIR": example.file("custom-state"), "STET_KEY": "examples/keys/example-operator.key"])
        #expect(run.status == 0, "\(run.combined)")
        #expect(FileManager.default.fileExists(atPath: example.file("custom-state/release.json")))
        #expect(!FileManager.default.fileExists(atPath: example.file(".stet")))
    }

    @Test func theExampleReleaseVerifiesOnACleanCopyAndWarnsAboutItsExampleKey() throws {
        let example = try copyExample()
        let verify = try Binary.run(["verify", "manifests"], in: example.path)
        #expect(verify.status == 0, "\(verify.combined)")
        #expect(verify.stderr.contains("example-only"))
        #expect(verify.stderr.contains("no trust policy is pinned"))
        let validate = try Binary.run(["validate", "--json"], in: example.path)
        let report = try JSONSerialization.jsonObject(with: Data(validate.stdout.utf8)) as? [String: Any]
        #expect(report?["valid"] as? Bool == true)
        #expect((report?["resources"] as? [String])?.sorted() == [
            "BackupPolicy/web-data", "MaintenanceWindow/nightly", "Monitor/web-up", "Notifier/ops-log", "Service/web",
        ])
    }

    @Test func invalidManifestsListEveryErrorAsJSON() throws {
        try repo.root.write("manifests/a.yaml", "apiVersion: stet/v1\nkind: Service\nmetadata: {name: A}\nspec: {replicas: x}\n")
        let run = try stet("validate", "--json")
        #expect(run.status == 1)
        let report = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
        let errors = report?["errors"] as? [[String: Any]] ?? []
        #expect(errors.count == 3)
        #expect(errors.map { $0["field"] as? String } == ["metadata.name", "spec.run", "spec.replicas"])
        let text = try stet("validate")
        #expect(text.stderr.contains("manifests/a.yaml:4:18: spec.replicas: expected a whole number from 0 to 1000, found \"x\""))
        #expect(text.stderr.contains("3 errors in the manifests"))
    }

    @Test(arguments: [
        (["verify", "--help"], ["EXIT STATUS", "10  refused", "--trust-on-first-use"]),
        (["release", "sign", "--help"], ["EXIT STATUS", "--expires", "--renew", "--force"]),
        (["validate", "--help"], ["EXIT STATUS", "FILE:LINE:COLUMN"]),
        (["keys", "generate", "--help"], ["EXIT STATUS", "--private-dir", "--public-dir"]),
        (["trust", "pin", "--help"], ["EXIT STATUS", "--replace"]),
        (["trust", "sign", "--help"], ["EXIT STATUS", "--key"]),
        (["--help"], ["verify", "release", "trust", "keys", "validate"]),
    ])
    func helpListsOptionsAndExitStatuses(arguments: [String], expected: [String]) throws {
        let help = try Binary.run(arguments, in: repo.root.path)
        #expect(help.status == 0)
        for text in expected { #expect(help.stdout.contains(text), "\(arguments): missing \(text)") }
    }

    @Test func aUsageErrorExitsNonZeroWithoutActing() throws {
        let run = try stet("release", "sign", "--expires", "soon", "--key", "x.key")
        #expect(run.status != 0)
        #expect(run.stderr.contains("--expires"))
        #expect(!FileManager.default.fileExists(atPath: repo.manifests + "/release.dsse.json"))
    }

    /// The repository's example (manifests, keys, example data) copied into a fresh folder.
    func copyExample() throws -> TemporaryDirectory {
        let copy = TemporaryDirectory()
        for folder in ["manifests", "keys", "examples"] {
            try FileManager.default.copyItem(atPath: Binary.packageRoot + "/" + folder, toPath: copy.file(folder))
        }
        return copy
    }
}
