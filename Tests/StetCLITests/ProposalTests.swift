import Foundation
import StetCore
import StetCrypto
import StetEngine
import StetProviders
import StetTesting
import Testing

/// A plan in review, before anyone signs: `stet plan --proposal DIR` on the host and, from a
/// signed snapshot (`stet status --export`), in CI without access to the host. Each test stops
/// every process it started; replicas use ports 18700-18709.
@Suite(.serialized) struct ProposalTests {
    var repo = RepositoryFixture()
    let ci = ["STET_KEY": "private/ci.key"]

    init() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
    }

    func stet(_ arguments: String..., environment: [String: String] = [:]) throws -> ProcessOutput {
        try Binary.run(arguments, in: repo.root.path, environment: environment)
    }

    /// Release 1 (or a proposal in `folder`): service web of `replicas`, policy data with `rpo`.
    func manifests(_ folder: String = "manifests", replicas: Int, rpo: String) throws {
        try repo.root.write("\(folder)/svc.yaml", Samples.liveService(name: "web", replicas: replicas, port: 18700))
        try repo.root.write("\(folder)/backup.yaml", Samples.backupPolicy(
            name: "data", repository: "backups/data", passwordFile: "secrets/restic.pw", paths: ["data"], rpo: rpo))
    }

    func cleanUp() {
        _ = try? stet("down", environment: ci)
        let folder = repo.stateDir + "/replicas/web"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where name.hasSuffix(".json") {
            struct Record: Decodable { let pid: Int32; let startTime: UInt64 }
            if let data = FileManager.default.contents(atPath: folder + "/" + name),
                let record = try? JSONDecoder().decode(Record.self, from: data), record.pid > 0,
                ProcessTable.isAlive(record.pid, startTime: record.startTime)
            {
                kill(-record.pid, SIGKILL)
                kill(record.pid, SIGKILL)
            }
        }
    }

    struct Output: Decodable {
        struct Change: Decodable, Equatable { let id: String; let precondition: String }
        struct Resource: Decodable { let resource: String; let change: String }
        let applicable: Bool
        let changes: [Change]
        let diff: [Resource]
    }

    func entries() throws -> [String] {
        try stet("audit", "list", "--json").stdout.split(separator: "\n").map(String.init)
    }

    /// The host runs release 1 (one replica, RPO 2h). A pull request proposes two replicas and
    /// an RPO of 4h, unsigned. On the host, the preview shows both field changes and plans the
    /// one start the host needs, against the replica really running; nothing in the state
    /// directory changes. A snapshot the host exports, used in another directory that has only
    /// the repository's keys, gives the same change plan.
    @Test mutating func aProposalIsPlannedOnTheHostAndInCIFromItsSnapshot() throws {
        defer { cleanUp() }
        #expect(try stet("trust", "pin", environment: ci).status == 0)
        try repo.root.write("secrets/restic.pw", "proposal test password\n", mode: 0o600)
        try repo.root.write("data/file.txt", "some data\n")
        try manifests(replicas: 1, rpo: "2h")
        try repo.sign(["alice"])
        let apply = try stet("apply", "--auto-approve", environment: ci)
        #expect(apply.status == 0, "\(apply.combined)")
        #expect(try eventually { try stet("status").status == 0 }, "\((try? stet("status"))?.combined ?? "")")
        try manifests("proposal", replicas: 2, rpo: "4h")

        let log = try entries()
        // Replica logs grow with every health check, and observing may refresh the cache of
        // restic's snapshot lists (as `stet plan` does); everything else stays as it is.
        func state() -> [String: Data] {
            repo.root.snapshot(".stet").filter { !$0.key.hasPrefix("logs/") && !$0.key.hasPrefix("backup/cache/") }
        }
        let before = state()
        let text = try stet("plan", "--proposal", "proposal")
        #expect(text.status == 0, "\(text.combined)")
        #expect(text.stdout.hasPrefix("Unsigned proposal: a preview, not applicable."), "\(text.stdout)")
        #expect(text.stdout.contains("~ spec.replicas: 1 → 2"), "\(text.stdout)")
        #expect(text.stdout.contains("~ spec.rpo: 2h → 4h"), "\(text.stdout)")
        #expect(text.stdout.contains("+ start-replica web#1"), "\(text.stdout)")
        #expect(!text.stdout.contains("web#0"), "\(text.stdout)")
        #expect(text.stdout.contains("Proposal: 1 change (1 config); unsigned, not applicable."), "\(text.stdout)")
        let markdown = try stet("plan", "--proposal", "proposal", "--format", "markdown")
        #expect(markdown.stdout.contains("| `BackupPolicy/data` | changed | `spec.rpo` | 2h | 4h |"), "\(markdown.stdout)")
        #expect(markdown.stdout.contains("| `Service/web#1` | start-replica | config | replica 1 of 2 is not running |"), "\(markdown.stdout)")
        let onHost = try JSONDecoder().decode(Output.self, from: Data(try stet("plan", "--proposal", "proposal", "--json").stdout.utf8))
        #expect(!onHost.applicable)
        #expect(onHost.changes.map(\.id) == ["Service/web#1:start-replica"])
        #expect(onHost.diff.map(\.change) == ["changed", "changed"])
        // A preview records nothing and writes nothing.
        let after = try entries()
        #expect(after.count == log.count, "\(after.dropFirst(log.count))")
        #expect(state() == before)

        let export = try stet("status", "--export", "observed.json", environment: ci)
        #expect(export.status == 0, "\(export.combined)")
        #expect(export.stdout.contains("Observed state exported to observed.json, signed."), "\(export.stdout)")
        let exported = try entries().last ?? ""
        #expect(exported.contains("\"action\":\"export-status\""), "\(exported)")

        // CI: the repository's keys, the proposal and the snapshot; no state, no host.
        let elsewhere = TemporaryDirectory()
        for (path, data) in repo.root.snapshot("keys") { try elsewhere.write("keys/" + path, data) }
        for (path, data) in repo.root.snapshot("proposal") { try elsewhere.write("proposal/" + path, data) }
        try elsewhere.write("observed.json", try Data(contentsOf: URL(fileURLWithPath: repo.root.file("observed.json"))))
        let inCI = try Binary.run(["plan", "--proposal", "proposal", "--observed", "observed.json", "--json"], in: elsewhere.path)
        #expect(inCI.status == 0, "\(inCI.combined)")
        let fromSnapshot = try JSONDecoder().decode(Output.self, from: Data(inCI.stdout.utf8))
        #expect(fromSnapshot.changes == onHost.changes)
        #expect(!FileManager.default.fileExists(atPath: elsewhere.file(".stet")))
        #expect(fromSnapshot.diff.map(\.change) == ["added", "added"])
        // With the target branch's signed manifests as the base, the comment shows the fields.
        for (path, data) in repo.root.snapshot("manifests") { try elsewhere.write("base/" + path, data) }
        let comment = try Binary.run(
            ["plan", "--proposal", "proposal", "--base", "base", "--observed", "observed.json", "--format", "markdown"], in: elsewhere.path)
        #expect(comment.status == 0, "\(comment.combined)")
        #expect(comment.stdout.contains("| `Service/web` | changed | `spec.replicas` | 1 | 2 |"), "\(comment.stdout)")
        #expect(comment.stdout.contains("| `BackupPolicy/data` | changed | `spec.rpo` | 2h | 4h |"), "\(comment.stdout)")
        #expect(comment.stdout.contains("| `Service/web#1` | start-replica | config | replica 1 of 2 is not running |"), "\(comment.stdout)")
        #expect(comment.stdout.contains("signed by ci") && !comment.stdout.contains("Warning"), "\(comment.stdout)")

        // One byte of the payload changed: the signature no longer holds.
        var envelope = try Envelope(json: try Data(contentsOf: URL(fileURLWithPath: elsewhere.file("observed.json"))))
        envelope.payload = Data(String(decoding: envelope.payload, as: UTF8.self).replacingOccurrences(of: "\"restarts\":0", with: "\"restarts\":1").utf8)
        try elsewhere.write("tampered.json", envelope.json(pretty: true))
        let tampered = try Binary.run(["plan", "--proposal", "proposal", "--observed", "tampered.json"], in: elsewhere.path)
        #expect(tampered.status == 10, "\(tampered.combined)")
        #expect(tampered.stderr.contains("tampered.json: not signed by an operator key"), "\(tampered.stderr)")
    }

    /// Writes `snapshot` signed by `key` (payload type `type`) to `file`.
    func write(_ snapshot: ObservedSnapshot, signedBy name: String, to file: String, type: String = ObservedSnapshot.payloadType) throws {
        guard let key = repo.keys[name] else { throw TestFailure("no key \(name)") }
        var envelope = try Envelope(json: try snapshot.signed(with: key))
        if type != ObservedSnapshot.payloadType {
            envelope = Envelope(payloadType: type, payload: envelope.payload)
            try envelope.sign(with: key)
        }
        try repo.root.write(file, envelope.json(pretty: true))
    }

    func plan(observed file: String, maxAge: String? = nil) throws -> ProcessOutput {
        try Binary.run(["plan", "--proposal", "proposal", "--observed", file] + (maxAge.map { ["--max-age", $0] } ?? []), in: repo.root.path)
    }

    /// Snapshots refused before they are used (exit 10, nothing planned): too old, dated in the
    /// future, signed by a key outside the operator role, of another payload type, or naming a
    /// service by a path.
    @Test mutating func snapshotsThatAreRefused() throws {
        try repo.root.write("proposal/svc.yaml", Samples.liveService(name: "web", replicas: 1, port: 18705))
        let now = Date()
        let fresh = ObservedSnapshot(observed: ObservedState(), release: .none, host: "host-a", createdAt: now)
        try write(fresh, signedBy: "ci", to: "fresh.json")
        let good = try plan(observed: "fresh.json")
        #expect(good.status == 0, "\(good.combined)")
        #expect(good.stdout.contains("+ start-replica web#0"), "\(good.stdout)")
        // A base release other than the one the snapshot was taken with is said.
        try repo.root.write("manifests/svc.yaml", Samples.liveService(name: "web", replicas: 2, port: 18705))
        try repo.sign(["alice"])
        let other = try Binary.run(["plan", "--proposal", "proposal", "--base", "manifests", "--observed", "fresh.json"], in: repo.root.path)
        #expect(other.status == 0, "\(other.combined)")
        #expect(other.stdout.contains("warning: fresh.json was taken with no release in force on host-a, not release version 1"), "\(other.stdout)")
        #expect(other.stdout.contains("~ spec.replicas: 2 → 1"), "\(other.stdout)")

        try write(ObservedSnapshot(observed: ObservedState(), release: .none, host: "host-a", createdAt: now - 7200), signedBy: "ci", to: "old.json")
        let old = try plan(observed: "old.json")
        #expect(old.status == 10, "\(old.combined)")
        #expect(old.stderr.contains("the snapshot is 2h old"), "\(old.stderr)")
        #expect(old.stderr.contains("at most 1h is accepted (--max-age)"), "\(old.stderr)")
        #expect(old.stdout.isEmpty)
        #expect(try plan(observed: "old.json", maxAge: "3h").status == 0)
        #expect(try plan(observed: "fresh.json", maxAge: "ten").status == 1)

        try write(ObservedSnapshot(observed: ObservedState(), release: .none, host: "host-a", createdAt: now + 3600), signedBy: "ci", to: "future.json")
        let future = try plan(observed: "future.json")
        #expect(future.status == 10, "\(future.combined)")
        #expect(future.stderr.contains("ahead of this host's clock"), "\(future.stderr)")

        try write(fresh, signedBy: "alice", to: "release-key.json")
        let byRelease = try plan(observed: "release-key.json")
        #expect(byRelease.status == 10, "\(byRelease.combined)")
        #expect(byRelease.stderr.contains("not signed by an operator key"), "\(byRelease.stderr)")

        try write(fresh, signedBy: "ci", to: "plan-type.json", type: "application/vnd.stet.plan+json")
        let otherType = try plan(observed: "plan-type.json")
        #expect(otherType.status == 10, "\(otherType.combined)")
        #expect(otherType.stderr.contains("expected \"application/vnd.stet.observed+json\""), "\(otherType.stderr)")

        var named = ObservedState()
        named.services["../../etc"] = ObservedService(name: "../../etc")
        try write(ObservedSnapshot(observed: named, release: .none, host: "host-a", createdAt: now), signedBy: "ci", to: "path.json")
        let path = try plan(observed: "path.json")
        #expect(path.status == 10, "\(path.combined)")
        #expect(path.stderr.contains("expected a DNS label as the name"), "\(path.stderr)")
    }

    /// A proposal is never a saved plan: --out is refused before anything runs, and a proposal
    /// that does not validate says where, as `stet validate` does.
    @Test mutating func aProposalCannotBeSavedAndMustValidate() throws {
        try repo.root.write("proposal/svc.yaml", Samples.liveService(name: "web", replicas: 1, port: 18706))
        let saved = try stet("plan", "--proposal", "proposal", "--out", "plan.json", environment: ci)
        #expect(saved.status == 1, "\(saved.combined)")
        #expect(saved.stderr.contains("--proposal cannot be saved with --out"), "\(saved.stderr)")
        #expect(!FileManager.default.fileExists(atPath: repo.root.file("plan.json")))
        #expect(try stet("plan", "--observed", "x.json").status == 1)

        // A link out of the directory is never followed, even to a file that would parse.
        try repo.root.write("outside/secret.yaml", Samples.liveService(name: "secret", replicas: 1, port: 18707))
        #expect(symlink(repo.root.file("outside/secret.yaml"), repo.root.file("proposal/linked.yaml")) == 0)
        let linked = try stet("plan", "--proposal", "proposal")
        #expect(linked.status == 1, "\(linked.combined)")
        #expect(linked.stderr.contains("proposal/linked.yaml:1:1: a symbolic link out of the proposal's directory"), "\(linked.stderr)")
        #expect(!linked.combined.contains("Service/secret"))
        try FileManager.default.removeItem(atPath: repo.root.file("proposal/linked.yaml"))

        try repo.root.write("proposal/svc.yaml", "apiVersion: stet/v1\nkind: Service\nmetadata: {name: web}\nspec: {replicas: many}\n")
        let invalid = try stet("plan", "--proposal", "proposal")
        #expect(invalid.status == 1, "\(invalid.combined)")
        #expect(invalid.stderr.contains("proposal/svc.yaml:4"), "\(invalid.stderr)")
    }
}
