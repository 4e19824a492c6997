import Foundation
import StetCore
import StetCrypto
import StetManifest
import StetTesting
import Testing

/// Attacks by someone who can push to the repository (or name a file) but holds no private key
/// except their own, each run through the `stet` binary as a host would run it. docs/security.md
/// lists them. In each case Stet refuses, says why, and changes nothing it should not.
@Suite struct SecurityTests {
    var repo = RepositoryFixture()
    let ci = ["STET_KEY": "private/ci.key"]

    func stet(_ arguments: String..., environment: [String: String] = [:], timeout: TimeInterval = 120) throws -> ProcessOutput {
        try StetTesting.run(Binary.stet, arguments, in: repo.root.path, environment: environment, timeout: timeout)
    }

    func auditKinds() throws -> [String] {
        try stet("audit", "list", "--json").stdout.split(separator: "\n").compactMap {
            (try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["kind"] as? String
        }
    }

    // MARK: - 1. A rotation binds the key material

    @Test mutating func aKeyFileSwappedAfterALegitimateRotationIsRefused() throws {
        try repo.writeTrust(version: 1, root: (1, ["alice"]), release: (2, ["alice", "bob"]), operator: (1, ["ci"]))
        try repo.key("mallory")
        try repo.writeManifests()
        try repo.sign(["alice", "bob"])
        #expect(try stet("trust", "pin", environment: ci).status == 0)
        // A legitimate rotation to version 2 adds carol as a release key; alice signs it.
        try repo.writeTrust(version: 2, root: (1, ["alice"]), release: (2, ["alice", "bob", "carol"]), operator: (1, ["ci"]))
        let signed = try stet("trust", "sign", "--key", "private/alice.key")
        #expect(signed.status == 0, "\(signed.combined)")
        #expect(signed.stdout.contains(repo.keys["carol"]!.publicKey.keyID))
        // The attacker, who can push, replaces carol's public key with their own and adds a
        // signature to the release, as the reproduction did.
        try repo.root.write("keys/carol.pub", try repo.keys["mallory"]!.publicKey.pem())
        #expect(try stet("release", "sign", "--key", "private/mallory.key", "--force").status == 0)
        let pinnedBefore = repo.root.read(".stet/trust/policy.json")
        let accept = try stet("verify", "--accept", environment: ci)
        #expect(accept.status == 10, "\(accept.combined)")
        #expect(accept.stderr.contains("rotation-key-mismatch"))
        #expect(accept.stderr.contains("key carol"))
        #expect(repo.root.read(".stet/trust/policy.json") == pinnedBefore)
        #expect(try stet("apply", "--auto-approve", environment: ci).status == 10)
        #expect(try auditKinds() == ["result", "refusal", "refusal"])
        #expect(repo.root.read(".stet/trust/policy.json") == pinnedBefore)
    }

    // MARK: - 3. YAML that costs exponential time

    /// Anchors x0…x(levels-1), each a list of ten aliases of the one before.
    static func laughs(levels: Int) -> String {
        var text = "x0: &x0 [a, a, a, a, a, a, a, a, a, a]\n"
        for level in 1..<levels {
            text += "x\(level): &x\(level) [" + Array(repeating: "*x\(level - 1)", count: 10).joined(separator: ", ") + "]\n"
        }
        return text
    }

    @Test(arguments: ["? *x8\n: 1\n", "bomb: *x8\n", "<<: *x8\n"])
    mutating func aliasBombsInTheTrustPolicyAreRefusedAtOnce(use: String) throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        let policy = try #require(repo.root.read("keys/trust.yaml"))
        try repo.root.write("keys/trust.yaml", String(decoding: policy, as: UTF8.self) + Self.laughs(levels: 9) + use)
        // On a parser that expands aliases this takes minutes; the deadline fails it.
        let verify = try stet("verify", timeout: 30)
        #expect(verify.status == 1, "\(verify.combined)")
        #expect(verify.stderr.contains("trust.yaml:"))
        #expect(verify.stderr.contains("anchors and aliases are not accepted"))
    }

    @Test(arguments: ["? *x8\n: 1\n", "bomb: *x8\n"])
    mutating func aliasBombsInManifestsAreRefusedAtOnce(use: String) throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        try repo.writeManifests()
        try repo.root.write("manifests/bomb.yaml", Self.laughs(levels: 9) + use)
        let validate = try stet("validate", timeout: 30)
        #expect(validate.status == 1, "\(validate.combined)")
        #expect(validate.stderr.contains("bomb.yaml:1:5: anchors and aliases are not accepted (found &x0)"), "\(validate.stderr)")
        // An alias without any anchor is an error too, at its place.
        try repo.root.write("manifests/bomb.yaml", "apiVersion: stet/v1\nkind: Notifier\nmetadata: {name: x}\nspec: *nothing\n")
        let alias = try stet("validate", timeout: 30)
        #expect(alias.status == 1)
        #expect(alias.stderr.contains("bomb.yaml:4:7: aliases are not accepted"), "\(alias.stderr)")
    }

    @Test mutating func ampersandsAndStarsAsTextStillParse() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        try repo.root.write("manifests/web.yaml", Samples.service(
            name: "web", replicas: 1, port: 18291, command: "[sh, -c, \"test -d /tmp && ls /tmp/* > /dev/null; exec sleep 60\"]"))
        let validate = try stet("validate")
        #expect(validate.status == 0, "\(validate.combined)")
    }

    // MARK: - 7. Unsigned file names cannot spoof the terminal

    @Test mutating func controlCharactersInFileNamesAreEscapedInText() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        try repo.writeManifests()
        try repo.sign(["alice"])
        #expect(try stet("trust", "pin", environment: ci).status == 0)
        let fake = "x\n2026-11-30T00:00:00.000Z  result  ci  accept-release  ok  all fine\u{1B}[8m.yaml"
        try repo.root.write("manifests/" + fake, "kind: hidden\n")
        let accept = try stet("verify", "--accept", environment: ci)
        #expect(accept.status == 10)
        #expect(!accept.stderr.contains("\u{1B}"))
        #expect(accept.stderr.contains("\\n2026-11-30T00:00:00.000Z"))
        let list = try stet("audit", "list")
        #expect(list.status == 0)
        #expect(!list.stdout.contains("\u{1B}"))
        // One line per entry (pin, refusal): the name's newline did not make a line of its own.
        #expect(list.stdout.split(separator: "\n").count == 2, "\(list.stdout)")
        #expect(list.stdout.contains("\\e[8m"))
        // JSON keeps the name exactly.
        let json = try stet("audit", "list", "--json")
        let reasons = json.stdout.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["error"] as? String
        }
        #expect(reasons.contains { $0.contains(fake) })
    }

    /// JSON is written as its encoder made it: escaping text for a terminal inside it turned a
    /// U+202E of a manifest into `\u{202e}`, which is not JSON, and `plan --json` and `audit list
    /// --json` could not be read.
    @Test mutating func jsonOutputKeepsOutsideTextExactly() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        let repository = "/nonexistent/b\u{202E}evil\n<details>"
        let password = try repo.root.write("restic.password", "secret\n", mode: 0o600)
        try repo.root.write("manifests/b.yaml", """
            apiVersion: stet/v1
            kind: BackupPolicy
            metadata: {name: data}
            spec:
              paths: [/nonexistent/data]
              repository:
                restic: {repo: "/nonexistent/b\\u202Eevil\\n<details>", passwordFile: \(password)}
              every: 1h
              rpo: 2h
              retention: {last: 5}
              verify: {check: 1d, restoreTest: 7d}

            """)
        try repo.sign(["alice"])
        let plan = try stet("plan", "--json")
        #expect(plan.status == 0, "\(plan.combined)")
        let json = try JSONSerialization.jsonObject(with: Data(plan.stdout.utf8)) as? [String: Any]
        let reasons = (json?["changes"] as? [[String: Any]] ?? []).compactMap { ($0["reason"] as? [String: Any])?["message"] as? String }
        #expect(reasons.contains("the repository \(repository) does not exist yet"), "\(plan.stdout)")
        let text = try stet("plan")
        #expect(text.stdout.contains("/nonexistent/b\\u{202e}evil\\n<details> does not exist yet"), "\(text.stdout)")

        #expect(try stet("trust", "pin", environment: ci).status == 0)
        #expect(try stet("audit", "record", "--action", "note", "--reason", "right\u{202E}left", environment: ci).status == 0)
        let list = try stet("audit", "list", "--json")
        let entries = list.stdout.split(separator: "\n").map { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(entries.count == 2 && entries.allSatisfy { $0 != nil }, "\(list.stdout)")
        #expect(entries.last??["reason"] as? String == "right\u{202E}left")
    }

    /// Whoever can write to the folder that holds the state directory can rename the state
    /// directory away and put another in its place (an older copy: an older accepted release,
    /// a shorter log), or swap in a link between Stet's checks and its opens. The folders above
    /// the state directory must be as safe as the state directory itself (a sticky folder such
    /// as /tmp, where nobody renames another's entries, is).
    @Test mutating func aStateDirectoryInAFolderOthersCanWriteIsRefused() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        try FileManager.default.createDirectory(atPath: repo.root.file("shared/deeper"), withIntermediateDirectories: true)
        chmod(repo.root.file("shared"), 0o777)
        for state in ["shared/.stet", "shared/deeper/.stet"] {
            let pin = try stet("trust", "pin", "--state-dir", state, environment: ci)
            #expect(pin.status == 1, "\(pin.combined)")
            #expect(pin.stderr.contains("shared: group or others can write to it (mode 0777)"), "\(pin.stderr)")
            #expect(pin.stderr.contains("chmod go-w"), "\(pin.stderr)")
            #expect(!FileManager.default.fileExists(atPath: repo.root.file(state)))
        }
        chmod(repo.root.file("shared"), 0o1777)
        let sticky = try stet("trust", "pin", "--state-dir", "shared/deeper/.stet", environment: ci)
        #expect(sticky.status == 0, "\(sticky.combined)")
    }

    /// trust.yaml's key paths must stay inside its folder, and a link is no way out: a key
    /// file that was a link to any file Stet's user can read (a key elsewhere, `/proc/kmsg`)
    /// was read and parsed, and whether it parsed told the pusher what that file held.
    @Test mutating func aKeyFileThatLeadsOutOfItsFolderIsRefused() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        try repo.writeManifests()
        try repo.sign(["alice"])
        #expect(try stet("verify").status == 0)
        try FileManager.default.moveItem(atPath: repo.root.file("keys/alice.pub"), toPath: repo.root.file("elsewhere.pub"))
        try FileManager.default.createSymbolicLink(atPath: repo.root.file("keys/alice.pub"), withDestinationPath: "../elsewhere.pub")
        let verify = try stet("verify")
        #expect(verify.status == 1, "\(verify.combined)")
        #expect(verify.stderr.contains("keys/trust.yaml:"), "\(verify.stderr)")
        #expect(verify.stderr.contains("alice.pub leads outside"), "\(verify.stderr)")
        // A link that stays inside the folder is a key file like any other.
        try FileManager.default.removeItem(atPath: repo.root.file("keys/alice.pub"))
        try FileManager.default.moveItem(atPath: repo.root.file("elsewhere.pub"), toPath: repo.root.file("keys/alice-2026.pub"))
        try FileManager.default.createSymbolicLink(atPath: repo.root.file("keys/alice.pub"), withDestinationPath: "alice-2026.pub")
        #expect(try stet("verify").status == 0)
    }

    /// The repository's trust.yaml is parsed before anything is verified, and a parse error
    /// quotes what it found: a trust.yaml that was a link to a file of the host (a restic
    /// password file) printed the start of that file in the refusal, in CI logs.
    @Test mutating func aTrustPolicyThatIsALinkIsRefusedWithoutReadingItsTarget() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        try repo.writeManifests()
        try repo.sign(["alice"])
        try repo.root.write("host-secret.password", "hunter2-the-password\n", mode: 0o600)
        try FileManager.default.removeItem(atPath: repo.trustFile)
        try FileManager.default.createSymbolicLink(atPath: repo.trustFile, withDestinationPath: "../host-secret.password")
        let verify = try stet("verify")
        #expect(verify.status == 1, "\(verify.combined)")
        #expect(!verify.combined.contains("hunter2"), "\(verify.combined)")
        #expect(verify.stderr.contains("keys/trust.yaml"), "\(verify.stderr)")
        #expect(verify.stderr.contains("symbolic link"), "\(verify.stderr)")
    }

    // MARK: - 10–12. Smaller ones

    @Test mutating func aLookAlikeNameBesideTheSignedOneIsRefused() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        let nfc = "caf\u{E9}.yaml"
        let nfd = "cafe\u{301}.yaml"
        try repo.root.write("manifests/" + nfc, Samples.notifier(name: "ops-log"))
        try repo.sign(["alice"])
        #expect(try stet("verify").status == 0)
        try repo.root.write("manifests/" + nfd, Samples.notifier(name: "other"))
        let verify = try stet("verify")
        #expect(verify.status == 10, "\(verify.combined)")
        #expect(verify.stderr.contains("unsafe-path"))
        #expect(verify.stderr.contains("normal form"))
        // Signing refuses such a directory too.
        let sign = try stet("release", "sign", "--key", "private/alice.key")
        #expect(sign.status == 1)
    }

    @Test mutating func anEnvelopeFullOfBogusSignaturesIsRefusedAndTheRefusalStaysSmall() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        try repo.writeManifests()
        try repo.sign(["alice"])
        #expect(try stet("trust", "pin", environment: ci).status == 0)
        let path = repo.manifests + "/release.dsse.json"
        var envelope = try Envelope(json: try #require(FileManager.default.contents(atPath: path)))
        let bogus = Envelope.Signature(keyID: String(repeating: "ab", count: 32), signature: Data(repeating: 7, count: 64))
        envelope.signatures = Array(repeating: bogus, count: 20_000)
        try envelope.json().write(to: URL(fileURLWithPath: path))
        let accept = try stet("verify", "--accept", environment: ci, timeout: 30)
        #expect(accept.status == 10)
        #expect(accept.stderr.contains("at most 256"))
        // Fewer than the cap, all bogus: refused, and the recorded refusal names only a few.
        envelope.signatures = Array(repeating: bogus, count: 200)
        try envelope.json().write(to: URL(fileURLWithPath: path))
        #expect(try stet("verify", "--accept", environment: ci).status == 10)
        let log = try String(contentsOfFile: repo.stateDir + "/audit/log.jsonl", encoding: .utf8)
        let longest = log.split(separator: "\n").map(\.utf8.count).max() ?? 0
        #expect(longest < 8_192, "a refusal line of \(longest) bytes")
    }

    @Test mutating func aHugeEnvelopeIsRefusedWithoutBeingRead() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        try repo.writeManifests()
        try repo.sign(["alice"])
        // A sparse 1.5 GB file: reading it whole would take seconds and gigabytes.
        let path = repo.manifests + "/release.dsse.json"
        #expect(truncate(path, 1_500_000_000) == 0)
        let verify = try stet("verify", timeout: 30)
        #expect(verify.status == 10)
        #expect(verify.stderr.contains("at most 16777216 are accepted"), "\(verify.stderr)")
        // A listed manifest replaced by a FIFO (which would block a reader for ever) is refused.
        #expect(unlink(path) == 0)
        try repo.sign(["alice"])
        #expect(unlink(repo.manifests + "/web.yaml") == 0)
        #expect(mkfifo(repo.manifests + "/web.yaml", 0o644) == 0)
        let fifo = try stet("verify", timeout: 30)
        #expect(fifo.status == 10, "\(fifo.combined)")
        #expect(fifo.stderr.contains("file-unreadable"))
        #expect(fifo.stderr.contains("is not a regular file"))
    }

    /// Signs an index payload by hand, as someone with a release key but a wrong clock would.
    func signIndex(_ payload: String) throws {
        var envelope = Envelope(payloadType: ReleaseIndex.payloadType, payload: Data(payload.utf8))
        try envelope.sign(with: repo.keys["alice"]!)
        try envelope.json(pretty: true).write(to: URL(fileURLWithPath: repo.manifests + "/release.dsse.json"))
    }

    @Test mutating func releaseTimesAndDuplicatedKeysAreChecked() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        try repo.root.write("manifests/n.yaml", Samples.notifier(name: "ops-log"))
        let digest = try #require(repo.root.read("manifests/n.yaml")).sha256Reference
        let files = "{\"n.yaml\":\"\(digest)\"}"
        let now = Date()
        func index(created: Date, expires: Date, extra: String = "") -> String {
            "{\"created\":\"\(RFC3339.format(created))\",\"expires\":\"\(RFC3339.format(expires))\",\"files\":\(files),"
                + "\"type\":\"stet.release/v1\",\(extra)\"version\":1}"
        }
        try signIndex(index(created: now, expires: now.addingTimeInterval(86_400)))
        #expect(try stet("verify").status == 0)
        try signIndex(index(created: now.addingTimeInterval(3600), expires: now.addingTimeInterval(86_400)))
        let future = try stet("verify")
        #expect(future.status == 10)
        #expect(future.stderr.contains("created-in-future"))
        // Created after it expires (both within the clock allowance of now).
        try signIndex(index(created: now.addingTimeInterval(120), expires: now.addingTimeInterval(60)))
        let backwards = try stet("verify")
        #expect(backwards.status == 10)
        #expect(backwards.stderr.contains("before it was created"))
        try signIndex(index(created: now.addingTimeInterval(-60), expires: now.addingTimeInterval(86_400), extra: "\"version\":9,"))
        let twice = try stet("verify")
        #expect(twice.status == 10)
        #expect(twice.stderr.contains("appears twice"))
    }

    /// `K.yaml` and `\u{212A}.yaml` (KELVIN SIGN) are two names to a reviewer's JSON tool and
    /// one key to Swift, which compares strings by canonical equivalence: Stet's decoder kept
    /// one of the two digests. Keys equal in Unicode normal form are duplicates.
    @Test mutating func aFileListedTwiceUnderUnicodeEquivalentNamesIsRefused() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        try repo.root.write("manifests/K.yaml", Samples.notifier(name: "ops-log"))
        let listed = try #require(repo.root.read("manifests/K.yaml")).sha256Reference
        let other = Data(Samples.notifier(name: "other").utf8).sha256Reference
        let now = Date()
        try signIndex(
            "{\"created\":\"\(RFC3339.format(now.addingTimeInterval(-60)))\",\"expires\":\"\(RFC3339.format(now.addingTimeInterval(86_400)))\","
                + "\"files\":{\"K.yaml\":\"\(listed)\",\"\\u212A.yaml\":\"\(other)\"},\"type\":\"stet.release/v1\",\"version\":1}")
        let verify = try stet("verify")
        #expect(verify.status == 10, "\(verify.combined)")
        #expect(verify.stderr.contains("appears twice"), "\(verify.stderr)")
    }

    @Test(arguments: [
        ["run", "--interval", "0"], ["run", "--interval", "nan"], ["run", "--interval", "1e-300"], ["run", "--interval", "inf"],
        ["status", "--state-dir", ""], ["status", "--lock-timeout=-1"], ["run", "--poll", "0s", "--source", "git:/nowhere"],
    ])
    func impossibleOptionsAreRefusedAtStart(arguments: [String]) throws {
        let repo = RepositoryFixture()
        let result = try StetTesting.run(Binary.stet, arguments, in: repo.root.path, timeout: 30)
        #expect(result.status == 1, "\(result.combined)")
        #expect(result.stderr.contains("expected"))
        #expect(!FileManager.default.fileExists(atPath: repo.stateDir))
    }
}

