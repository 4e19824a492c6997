import Foundation
import Synchronization
import StetAudit
import StetCrypto
import StetTesting
import Testing

/// `stet audit` on a real state directory, as an operator and CI use it.
@Suite struct AuditCLITests {
    var repo = RepositoryFixture()
    let ci = ["STET_KEY": "private/ci.key"]

    init() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci", "ops"]))
        try repo.writeManifests()
        try repo.sign(["alice"])
        try repo.key("stranger")
        let pin = try stet("trust", "pin", environment: ci)
        #expect(pin.status == 0, "\(pin.combined)")
    }

    func stet(_ arguments: String..., environment: [String: String] = [:]) throws -> ProcessOutput {
        try Binary.run(arguments, in: repo.root.path, environment: environment)
    }

    var logPath: String { repo.stateDir + "/audit/log.jsonl" }

    func auditPath(_ name: String) -> String { repo.stateDir + "/audit/" + name }

    func record(_ count: Int, key: String = "ci") throws {
        for index in 0..<count {
            let run = try stet("audit", "record", "--action", "restart-by-hand", "--resource", "service/web",
                               "--reason", "note \(index)", environment: ["STET_KEY": "private/\(key).key"])
            #expect(run.status == 0, "\(run.combined)")
        }
    }

    func listed() throws -> [[String: Any]] {
        try stet("audit", "list", "--json").stdout.split(separator: "\n").compactMap {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    @Test func listShowAndFilters() throws {
        try record(2)
        #expect(try stet("verify", "--accept", environment: ci).status == 0)
        let all = try listed()
        #expect(all.map { $0["seq"] as? Int } == [0, 1, 2, 3])
        #expect(all.map { $0["kind"] as? String } == ["result", "result", "result", "release"])
        #expect(try stet("audit", "list", "--kind", "release", "--json").stdout.split(separator: "\n").count == 1)
        #expect(try stet("audit", "list", "--resource", "service/web", "--json").stdout.split(separator: "\n").count == 2)
        #expect(try stet("audit", "list", "--since", "1h", "--json").stdout.split(separator: "\n").count == 4)
        #expect(try stet("audit", "list", "--since", "2030-01-01T00:00:00Z").stderr.contains("no entries"))
        let badKind = try stet("audit", "list", "--kind", "nonsense")
        #expect(badKind.status != 0)
        #expect(badKind.stderr.contains("expected one of intent, result"))

        let show = try stet("audit", "show", "3")
        #expect(show.status == 0, "\(show.combined)")
        #expect(show.stdout.contains("kind       release"))
        #expect(show.stdout.contains("signed by  ci"))
        #expect(try stet("audit", "show", "9").status == 1)
    }

    /// Two processes appending at once lose nothing and never interleave bytes.
    @Test func concurrentWritersLoseNoEntry() throws {
        let rounds = 20
        let stetPath = Binary.stet
        let root = repo.root.path
        let results = Mutex<[ProcessOutput]>([])
        DispatchQueue.concurrentPerform(iterations: 2) { worker in
            let key = worker == 0 ? "ci" : "ops"
            let script = "for i in $(seq \(rounds)); do \"$STET\" audit record --action write-\(key) --reason \"$i\" || exit 1; done"
            let output = try? StetTesting.run(
                "/bin/bash", ["-c", script], in: root, environment: ["STET": stetPath, "STET_KEY": "private/\(key).key"],
                timeout: 300)
            if let output { results.withLock { $0.append(output) } }
        }
        let outputs = results.withLock { $0 }
        #expect(outputs.count == 2)
        #expect(outputs.allSatisfy { $0.status == 0 }, "\(outputs.map(\.combined))")
        let entries = try listed()
        // The pin entry, then every record of both writers.
        #expect(entries.count == 1 + 2 * rounds)
        for key in ["ci", "ops"] {
            let mine = entries.filter { $0["action"] as? String == "write-\(key)" }.compactMap { $0["reason"] as? String }
            #expect(mine == (1...rounds).map(String.init), "\(key) lost or reordered entries")
        }
        let verify = try stet("audit", "verify")
        #expect(verify.status == 0, "\(verify.combined)")
    }

    /// A crash in the middle of the last `audit record`: its entry is torn, and its head and
    /// checkpoint were never written (they are written only after the entry is fsynced).
    @Test func aTornWriteIsReportedThenRecoveredByTheNextWriter() throws {
        try record(2)
        let promises = try ["head.json", "checkpoint"].map { ($0, try Data(contentsOf: URL(fileURLWithPath: auditPath($0)))) }
        try record(1)
        for (name, data) in promises { try data.write(to: URL(fileURLWithPath: auditPath(name))) }
        let data = try Data(contentsOf: URL(fileURLWithPath: logPath))
        try data.dropLast(40).write(to: URL(fileURLWithPath: logPath))
        let verify = try stet("audit", "verify", "--json")
        #expect(verify.status == 10)
        let report = try JSONSerialization.jsonObject(with: Data(verify.stdout.utf8)) as? [String: Any]
        #expect((report?["failure"] as? [String: Any])?["check"] as? String == "torn")
        #expect((report?["failure"] as? [String: Any])?["line"] as? Int == 4)

        try record(1)
        let entries = try listed()
        #expect(entries.map { $0["kind"] as? String } == ["result", "result", "result", "recovery", "result"])
        #expect(FileManager.default.fileExists(atPath: repo.stateDir + "/audit/log.jsonl.broken"))
        #expect(try stet("audit", "verify").status == 0)
    }

    /// A line that fails its check fails verification; the next writer keeps the damaged log
    /// whole in audit/damaged/, restarts the log after the last good entry and acts, and
    /// verification then reports the damage and the log since.
    @Test func aDamagedLineFailsVerificationAndTheNextWriterRestartsTheLog() throws {
        try record(4)
        var lines = try Data(contentsOf: URL(fileURLWithPath: logPath)).split(separator: 0x0A).map { Data($0) }
        lines[2][lines[2].startIndex + 200] ^= 0x01
        try Data(lines.map { $0 + [0x0A] }.joined()).write(to: URL(fileURLWithPath: logPath))
        let before = try Data(contentsOf: URL(fileURLWithPath: logPath))

        let verify = try stet("audit", "verify")
        #expect(verify.status == 10)
        #expect(verify.stdout.contains("line 3 fails"))
        #expect(verify.stderr.contains("line 3"))
        let append = try stet("audit", "record", "--action", "x", environment: ci)
        #expect(append.status == 0, "\(append.combined)")
        #expect(append.stderr.contains("the audit log was damaged and restarted at "), "\(append.stderr)")
        #expect(append.stderr.contains("line 3 of the log failed its"), "\(append.stderr)")
        let damaged = try FileManager.default.contentsOfDirectory(atPath: repo.stateDir + "/audit/damaged").filter { $0.hasPrefix("log-") }
        #expect(damaged.count == 1)
        #expect(FileManager.default.contents(atPath: repo.stateDir + "/audit/damaged/" + (damaged.first ?? "")) == before)
        let accept = try stet("verify", "--accept", environment: ci)
        #expect(accept.status == 0, "\(accept.combined)")
        #expect(FileManager.default.fileExists(atPath: repo.stateDir + "/release.json"))
        let after = try stet("audit", "verify")
        #expect(after.status == 10)
        #expect(after.stdout.contains("log starts after damage at "), "\(after.stdout)")
        #expect(after.stderr.contains("the log starts after damage at "), "\(after.stderr)")
        let entries = try listed()
        #expect(entries.map { $0["seq"] as? Int } == Array(0..<entries.count).map { $0 as Int? })
        #expect(entries.dropFirst(2).first?["action"] as? String == "start-after-damage")
    }

    /// The audit files as bytes, to show that a refusal changed nothing.
    func auditFiles() -> [String: Data] { repo.root.snapshot(".stet/audit") }

    /// `head -n 4` of a 6-entry log: every line left verifies, but the signed head and the local
    /// checkpoint count 6. Verification names the missing entries; a writer appends nothing.
    @Test func aLogCutAtALineBoundaryIsRefused() throws {
        try record(5)
        let lines = try Data(contentsOf: URL(fileURLWithPath: logPath)).split(separator: 0x0A)
        #expect(lines.count == 6)
        try Data(lines.prefix(4).map { Data($0) + [0x0A] }.joined()).write(to: URL(fileURLWithPath: logPath))
        let before = auditFiles()

        let verify = try stet("audit", "verify")
        #expect(verify.status == 10, "\(verify.combined)")
        #expect(verify.stdout.contains("head.json: inconsistent"), "\(verify.stdout)")
        #expect(verify.stderr.contains("the log has 4 entries; its signed head of "), "\(verify.stderr)")
        #expect(verify.stderr.contains(" says 6: entries 4-5 are missing"), "\(verify.stderr)")
        let json = try stet("audit", "verify", "--json")
        let report = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect((report?["localCheckpoint"] as? [String: Any])?["message"] as? String
            == "the log has 4 entries; its local checkpoint says 6: entries 4-5 are missing")

        let append = try stet("audit", "record", "--action", "x", environment: ci)
        #expect(append.status == 10, "\(append.combined)")
        #expect(append.stderr.contains("says 6: entries 4-5 are missing"), "\(append.stderr)")
        #expect(auditFiles() == before, "a refused writer changed the log, its head or its checkpoint")
    }

    /// Removing the log while its head is there does not start a new log at entry 0.
    @Test func aDeletedLogIsRefused() throws {
        try record(2)
        try FileManager.default.removeItem(atPath: logPath)
        let verify = try stet("audit", "verify")
        #expect(verify.status == 10, "\(verify.combined)")
        #expect(verify.stderr.contains("there is no log file; its signed head of "), "\(verify.stderr)")
        let append = try stet("audit", "record", "--action", "x", environment: ci)
        #expect(append.status == 10, "\(append.combined)")
        #expect(append.stderr.contains("entries 0-2 are missing"), "\(append.stderr)")
        #expect(!FileManager.default.fileExists(atPath: logPath))
    }

    /// Removing the head and the local checkpoint took both length promises away, and a log
    /// without them was taken as one that crashed before its first head: `head -n 3` of it then
    /// verified, and the next writer wrote entry 3 over the gap. The head is written before the
    /// log's first entry, so no crash leaves a log without one.
    @Test func aLogCutAfterItsHeadAndCheckpointWereRemovedIsRefused() throws {
        try record(5)
        try FileManager.default.removeItem(atPath: auditPath("head.json"))
        try FileManager.default.removeItem(atPath: auditPath("checkpoint"))
        let lines = try Data(contentsOf: URL(fileURLWithPath: logPath)).split(separator: 0x0A)
        try Data(lines.prefix(3).map { Data($0) + [0x0A] }.joined()).write(to: URL(fileURLWithPath: logPath))
        let before = auditFiles()

        let verify = try stet("audit", "verify")
        #expect(verify.status == 10, "\(verify.combined)")
        #expect(verify.stderr.contains("no signed head"), "\(verify.stderr)")
        let append = try stet("audit", "record", "--action", "x", environment: ci)
        #expect(append.status == 10, "\(append.combined)")
        #expect(append.stderr.contains("no signed head"), "\(append.stderr)")
        #expect(auditFiles() == before, "a refused writer changed the log")
    }

    /// Removing the whole audit folder: the accepted release and the pinned trust policy are
    /// written only after the log records them, so a state directory holding either had a log.
    @Test func aRemovedAuditFolderIsRefused() throws {
        #expect(try stet("verify", "--accept", environment: ci).status == 0)
        try record(2)
        try FileManager.default.removeItem(atPath: repo.stateDir + "/audit")
        let verify = try stet("audit", "verify")
        #expect(verify.status == 10, "\(verify.combined)")
        #expect(verify.stderr.contains("release.json"), "\(verify.stderr)")
        let append = try stet("audit", "record", "--action", "x", environment: ci)
        #expect(append.status == 10, "\(append.combined)")
        #expect(append.stderr.contains("release.json"), "\(append.stderr)")
        #expect(!FileManager.default.fileExists(atPath: logPath))
    }

    /// A state directory or audit file that others could change, or a link in place of one, is
    /// refused (exit 1) with the path and the fix, and nothing is written.
    @Test(arguments: ["state-0777", "log-0666", "log-link", "log-dangling-link"])
    func unsafeStateIsRefused(_ how: String) throws {
        try record(1)
        let copy = repo.root.file("log-copy.jsonl")
        let expected: String
        switch how {
        case "state-0777":
            chmod(repo.stateDir, 0o777)
            expected = "refusing .stet: group or others can write to it (mode 0777)"
        case "log-0666":
            chmod(logPath, 0o666)
            expected = "chmod go-w .stet/audit/log.jsonl"
        default:
            try FileManager.default.moveItem(atPath: logPath, toPath: copy)
            if how == "log-dangling-link" { try FileManager.default.removeItem(atPath: copy) }
            try FileManager.default.createSymbolicLink(atPath: logPath, withDestinationPath: copy)
            expected = "refusing .stet/audit/log.jsonl: it is a symbolic link"
        }
        let before = auditFiles()
        let copied = FileManager.default.contents(atPath: copy)
        for run in [try stet("audit", "record", "--action", "x", environment: ci), try stet("audit", "verify")] {
            #expect(run.status == 1, "\(run.combined)")
            #expect(run.stderr.contains(expected), "\(run.stderr)")
        }
        #expect(auditFiles() == before)
        #expect(FileManager.default.contents(atPath: copy) == copied, "the link's target was written or created")
    }

    /// A second writer waits for the lock, and gives up with exit 11 after --lock-timeout.
    @Test func aHeldLogMakesTheNextWriterWaitThenGiveUp() throws {
        try record(1)
        let fd = open(logPath, O_RDWR)
        #expect(fd >= 0)
        defer { close(fd) }
        #expect(flock(fd, LOCK_EX) == 0)
        let blocked = try stet("audit", "record", "--action", "x", "--lock-timeout", "0.5", environment: ci)
        #expect(blocked.status == 11)
        #expect(blocked.stderr.contains("another stet process"))
        #expect(flock(fd, LOCK_UN) == 0)
        let free = try stet("audit", "record", "--action", "x", "--lock-timeout", "0.5", environment: ci)
        #expect(free.status == 0, "\(free.combined)")
        #expect(try listed().count == 3)
    }

    @Test func aKeyOutsideTheOperatorRoleCannotAct() throws {
        let run = try stet("audit", "record", "--action", "x", environment: ["STET_KEY": "private/stranger.key"])
        #expect(run.status == 10)
        #expect(run.stderr.contains("not an operator key"))
        let alice = try stet("verify", "--accept", environment: ["STET_KEY": "private/alice.key"])
        #expect(alice.status == 10)
        // Named as the policy names it, with its roles, and what to do instead.
        #expect(alice.stderr.contains("key alice (role root, release) is not an operator key"), "\(alice.stderr)")
        #expect(alice.stderr.contains("use one (--key or STET_KEY)"))
        #expect(!FileManager.default.fileExists(atPath: repo.stateDir + "/release.json"))
    }

    /// Checkpoints kept off the host catch a rewritten history, and other tools can check them
    /// with the key's verifier string.
    @Test func checkpointsVerifyTogetherAndCatchARewrite() throws {
        try record(2)
        #expect(try stet("audit", "checkpoint", "--origin", "example.org/web-1", "--out", "cp1", environment: ci).status == 0)
        try record(2)
        let second = try stet("audit", "checkpoint", "--origin", "example.org/web-1", "--out", "cp2", environment: ci)
        #expect(second.status == 0)
        #expect(second.stdout.hasPrefix("example.org/web-1\n5\n"))
        #expect(second.stdout.contains("\n\n— example.org/web-1 "))

        let verifierKey = try stet("keys", "verifier", "private/ci.key", "--name", "example.org/web-1").stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let note = try SignedNote(parsing: second.stdout)
        #expect(note.validSigners(among: [try NoteVerifier(verifierKey: verifierKey)]).count == 1)

        let both = try stet("audit", "verify", "--checkpoint", "cp1", "--checkpoint", "cp2")
        #expect(both.status == 0, "\(both.combined)")
        #expect(both.stdout.contains("cp1: consistent (size 3, signed by ci)"))

        // Rewrite history with the same key: a valid log with its own head and checkpoint, made
        // in another state directory and put in place of this one's, but not the log cp1 saw.
        let other = repo.root.file("other-state")
        #expect(try stet("trust", "pin", "--state-dir", other, environment: ci).status == 0)
        for index in 0..<6 {
            let run = try stet("audit", "record", "--state-dir", other, "--action", "restart-by-hand", "--reason", "other \(index)", environment: ci)
            #expect(run.status == 0, "\(run.combined)")
        }
        try FileManager.default.removeItem(atPath: repo.stateDir + "/audit")
        try FileManager.default.copyItem(atPath: other + "/audit", toPath: repo.stateDir + "/audit")
        let rewritten = try stet("audit", "verify", "--checkpoint", "cp1")
        #expect(rewritten.status == 10)
        #expect(rewritten.stdout.contains("cp1: inconsistent"))
        #expect(rewritten.stderr.contains("checkpoint cp1"))
    }

    @Test func proofsRoundTrip() throws {
        try record(5)
        let prove = try stet("audit", "prove", "3", "--out", "p3.json")
        #expect(prove.status == 0, "\(prove.combined)")
        let ok = try stet("audit", "verify", "--proof", "p3.json")
        #expect(ok.status == 0, "\(ok.combined)")
        #expect(ok.stdout.contains("entry 3 is in the signed tree"))

        // The same proof claiming another entry fails.
        #expect(try stet("audit", "prove", "4", "--out", "p4.json").status == 0)
        var proof = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: repo.root.file("p3.json")))) as! [String: Any]
        let other = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: repo.root.file("p4.json")))) as! [String: Any]
        proof["entry"] = other["entry"]
        try JSONSerialization.data(withJSONObject: proof).write(to: URL(fileURLWithPath: repo.root.file("bad.json")))
        let bad = try stet("audit", "verify", "--proof", "bad.json")
        #expect(bad.status == 10)
        #expect(bad.stderr.contains("bad.json"))
        #expect(try stet("audit", "prove", "9").status == 10)
    }

    @Test(arguments: [
        (["audit", "--help"], ["list", "show", "verify", "checkpoint", "prove", "record"]),
        (["audit", "list", "--help"], ["EXIT STATUS", "--since", "--resource", "--kind", "--json"]),
        (["audit", "verify", "--help"], ["EXIT STATUS", "--checkpoint", "--proof"]),
        (["audit", "checkpoint", "--help"], ["EXIT STATUS", "--key", "--origin"]),
        (["audit", "prove", "--help"], ["EXIT STATUS", "--out"]),
        (["keys", "verifier", "--help"], ["EXIT STATUS", "--name"]),
    ])
    func helpListsOptionsAndExitStatuses(arguments: [String], expected: [String]) throws {
        let help = try Binary.run(arguments, in: repo.root.path)
        #expect(help.status == 0)
        for text in expected { #expect(help.stdout.contains(text), "\(arguments): missing \(text)") }
    }
}
