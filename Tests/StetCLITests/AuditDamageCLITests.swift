import Foundation
import StetProviders
import StetTesting
import Testing

/// A garbage line appended to the audit log (by anyone who can write it) no longer stops Stet:
/// `stet run` keeps healing and alerts, `stet down` works, and `stet audit verify` reports the
/// damage and the log since.
@Suite(.serialized) struct AuditDamageCLITests {
    var repo = RepositoryFixture()
    let ci = ["STET_KEY": "private/ci.key"]

    init() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        #expect(try stet("trust", "pin", environment: ci).status == 0)
    }

    func stet(_ arguments: String..., environment: [String: String] = [:]) throws -> ProcessOutput {
        try Binary.run(arguments, in: repo.root.path, environment: environment)
    }

    func release(_ name: String, port: Int) throws {
        try repo.root.write("manifests/svc.yaml", Samples.liveService(name: name, replicas: 1, port: port))
        try repo.root.write("manifests/notifier.yaml", Samples.notifier(name: "ops-log"))
        try repo.sign(["alice"])
    }

    func record(_ service: String) -> (pid: Int32, startTime: UInt64)? {
        struct Record: Decodable {
            let pid: Int32
            let startTime: UInt64
        }
        guard let data = repo.root.read(".stet/replicas/\(service)/0.json"),
            let record = try? JSONDecoder().decode(Record.self, from: data), record.pid > 0
        else { return nil }
        return (record.pid, record.startTime)
    }

    static func answers(_ port: Int) -> Bool {
        CheckRunner().run(.http(url: nil, path: "/", port: port, expectStatus: nil, bodyContains: nil), port: port, timeout: 0.5).ok
    }

    func appendGarbage() throws {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: repo.stateDir + "/audit/log.jsonl"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("garbage\n".utf8))
        try handle.close()
    }

    func cleanUp(_ service: String) {
        _ = try? stet("down", environment: ci)
        if let (pid, startTime) = record(service), ProcessTable.isAlive(pid, startTime: startTime) {
            kill(-pid, SIGKILL)
            kill(pid, SIGKILL)
        }
    }

    /// `audit verify` after damage: exit 10, the restart named with the damaged file, and the log
    /// since then checked.
    func expectVerifyReportsDamage(sourceLocation: SourceLocation = #_sourceLocation) throws {
        let verify = try stet("audit", "verify")
        #expect(verify.status == 10, sourceLocation: sourceLocation)
        #expect(verify.stdout.contains("log starts after damage at "), "\(verify.stdout)", sourceLocation: sourceLocation)
        #expect(verify.stdout.contains("earlier entries in .stet/audit/damaged/log-"), "\(verify.stdout)", sourceLocation: sourceLocation)
        #expect(verify.stdout.contains("damaged: the log since "), "\(verify.stdout)", sourceLocation: sourceLocation)
        #expect(verify.stderr.contains("the log starts after damage at "), "\(verify.stderr)", sourceLocation: sourceLocation)
    }

    /// Under `stet run`, garbage in the log and then a killed replica: the replica is still
    /// replaced, StetAuditDamaged is sent, and the loop goes on.
    @Test func theLoopKeepsHealingAfterTheLogIsDamaged() throws {
        defer { cleanUp("heal") }
        try release("heal", port: 18650)
        let run = try BackgroundProcess(Binary.stet, ["run", "--interval", "1"], in: repo.root.path, environment: ci)
        defer { run.stop() }
        #expect(eventually { Self.answers(18650) }, "\(run.output)")
        let before = try #require(record("heal"))
        try appendGarbage()
        #expect(kill(before.pid, SIGKILL) == 0)
        #expect(eventually {
            guard let after = record("heal") else { return false }
            return after.pid != before.pid && ProcessTable.isAlive(after.pid, startTime: after.startTime) && Self.answers(18650)
        }, "\(run.output)")
        #expect(eventually { run.output.contains("alert firing: StetAuditDamaged") }, "\(run.output)")
        #expect(run.isRunning)
        #expect(run.stop() == 0, "\(run.output)")
        try expectVerifyReportsDamage()
        let list = try stet("audit", "list", "--kind", "recovery")
        #expect(list.status == 0)
        #expect(list.stdout.contains("start-after-damage"), "\(list.stdout)")
    }

    /// `stet down` after damage: it restarts the log, says so, and stops the replicas.
    @Test func downWorksAfterTheLogIsDamaged() throws {
        defer { cleanUp("down") }
        try release("down", port: 18660)
        let apply = try stet("apply", "--auto-approve", environment: ci)
        #expect(apply.status == 0, "\(apply.combined)")
        let replica = try #require(record("down"))
        try appendGarbage()
        let down = try stet("down", environment: ci)
        #expect(down.status == 0, "\(down.combined)")
        #expect(down.stderr.contains("the audit log was damaged and restarted at "), "\(down.stderr)")
        #expect(eventually(timeout: 10) { !ProcessTable.isAlive(replica.pid, startTime: replica.startTime) })
        try expectVerifyReportsDamage()
        // Every entry, before and after the restart, is listed in one sequence.
        let list = try stet("audit", "list", "--json")
        #expect(list.status == 0)
        let seqs = list.stdout.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["seq"] as? Int
        }
        #expect(seqs == Array(0..<seqs.count) && seqs.count > 3, "\(seqs)")
    }
}
