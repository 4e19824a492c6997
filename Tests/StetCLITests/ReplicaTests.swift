import Foundation
import StetAudit
import StetCore
import StetCrypto
import StetEngine
import StetProviders
import StetState
import StetTesting
import Testing

/// Plan, apply, run, status and down on real replica processes. Each test has its own ports
/// and stops every process it started.
@Suite(.serialized) struct ReplicaTests {
    var repo = RepositoryFixture()
    let ci = ["STET_KEY": "private/ci.key"]

    init() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        try repo.key("stranger")
        #expect(try stet("trust", "pin", environment: ci).status == 0)
    }

    func stet(_ arguments: String..., environment: [String: String] = [:]) throws -> ProcessOutput {
        try Binary.run(arguments, in: repo.root.path, environment: environment)
    }

    /// Writes the service and signs the release.
    func release(_ manifest: String) throws {
        try repo.root.write("manifests/svc.yaml", manifest)
        try repo.sign(["alice"])
    }

    struct Replica: Decodable {
        let pid: Int32
        let startTime: UInt64
        let restarts: Int
    }

    func replicas(_ service: String) -> [Int: Replica] {
        let folder = repo.stateDir + "/replicas/\(service)"
        var result: [Int: Replica] = [:]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where name.hasSuffix(".json") {
            if let data = FileManager.default.contents(atPath: folder + "/" + name),
                let replica = try? JSONDecoder().decode(Replica.self, from: data), let index = Int(name.dropLast(5))
            {
                result[index] = replica
            }
        }
        return result
    }

    static func answers(_ port: Int) -> Bool {
        CheckRunner().run(.http(url: nil, path: "/", port: port, expectStatus: nil, bodyContains: nil), port: port, timeout: 0.5).ok
    }

    func entries() throws -> [[String: Any]] {
        try stet("audit", "list", "--json").stdout.split(separator: "\n").compactMap {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    /// Stops every replica, and kills any a failed test left.
    func cleanUp() {
        _ = try? stet("down", environment: ci)
        for service in ["kill", "roll", "crash", "nostart", "sick", "reuse", "midway", "saved", "codes", "unsigned", "stubborn", "locked", "envcheck"] {
            for replica in replicas(service).values where ProcessTable.isAlive(replica.pid, startTime: replica.startTime) {
                kill(-replica.pid, SIGKILL)
                kill(replica.pid, SIGKILL)
            }
        }
    }

    @Test func aKilledReplicaIsReplacedUnderRun() throws {
        defer { cleanUp() }
        try release(Samples.liveService(name: "kill", replicas: 2, port: 18110))
        let run = try BackgroundProcess(Binary.stet, ["run", "--interval", "1"], in: repo.root.path, environment: ci)
        defer { run.stop() }
        #expect(eventually { Self.answers(18110) && Self.answers(18111) }, "\(run.output)")
        let before = try #require(replicas("kill")[0])
        #expect(kill(before.pid, SIGKILL) == 0)
        #expect(eventually { !ProcessTable.isAlive(before.pid, startTime: before.startTime) }, "pid \(before.pid) \(String(describing: ProcessTable.entry(before.pid)))")
        #expect(eventually {
            guard let after = replicas("kill")[0] else { return false }
            return after.pid != before.pid && ProcessTable.isAlive(after.pid, startTime: after.startTime) && Self.answers(18110)
        }, "\(run.output)")
        let after = try #require(replicas("kill")[0])
        #expect(after.startTime != before.startTime, "\(run.output)")
        #expect(after.restarts == 1)
        #expect(run.stop() == 0)
        let log = try entries()
        let drift = try #require(log.firstIndex { $0["kind"] as? String == "drift" && $0["change"] as? String == "Service/kill#0:start-replica" })
        let intent = try #require(log.lastIndex { $0["kind"] as? String == "intent" && $0["change"] as? String == "Service/kill#0:start-replica" })
        let result = try #require(log.lastIndex { $0["kind"] as? String == "result" && $0["change"] as? String == "Service/kill#0:start-replica" })
        #expect(drift < intent && intent < result)
        #expect((log[drift]["reason"] as? String)?.contains("killed by signal 9") == true)
        #expect((log[result]["reason"] as? String)?.contains("started pid \(after.pid)") == true)
        #expect((log[intent]["actor"] as? [String: Any])?["via"] as? String == "daemon")
        #expect(try stet("audit", "verify").status == 0)
    }

    /// A new release with another spec is rolled out one replica at a time: never more than
    /// maxUnavailable replicas fail to answer.
    @Test func aNewSpecRollsOutWithinMaxUnavailable() throws {
        defer { cleanUp() }
        try release(Samples.liveService(name: "roll", replicas: 3, port: 18120, version: 1, maxUnavailable: 1))
        #expect(try stet("apply", "--auto-approve", environment: ci).status == 0)
        #expect(eventually { (18120...18122).allSatisfy(Self.answers) })
        let old = replicas("roll")
        try release(Samples.liveService(name: "roll", replicas: 3, port: 18120, version: 2, maxUnavailable: 1))
        let plan = try stet("plan")
        #expect(plan.stdout.contains("replace-replica roll#0"))
        let apply = try BackgroundProcess(Binary.stet, ["apply", "--auto-approve"], in: repo.root.path, environment: ci)
        defer { apply.stop() }
        var worst = 0
        while apply.isRunning {
            worst = max(worst, (18120...18122).filter { !Self.answers($0) }.count)
            usleep(20_000)
        }
        #expect(apply.stop() == 0, "\(apply.output)")
        #expect(worst <= 1, "\(worst) replicas were down at once")
        let new = replicas("roll")
        #expect(new.keys.sorted() == [0, 1, 2])
        #expect(new.allSatisfy { old[$0.key]?.pid != $0.value.pid })
        #expect(try stet("plan", "--detailed-exitcode").status == 0)
    }

    /// A replica that exits at once: corrections back off, then the budget stops them; status
    /// and the audit log say so.
    @Test func aCrashLoopBacksOffThenExhaustsTheBudget() throws {
        defer { cleanUp() }
        try release(Samples.liveService(name: "crash", replicas: 1, port: 18130, command: "[sh, -c, 'exit 3']",
                                        backoffInitial: "50ms", backoffMax: "400ms"))
        let run = try BackgroundProcess(Binary.stet, ["run", "--interval", "1", "--budget", "4"], in: repo.root.path, environment: ci)
        defer { run.stop() }
        #expect(try eventually(timeout: 60) { try entries().contains { $0["kind"] as? String == "alert" } }, "\(run.output)")
        let status = try stet("status")
        #expect(status.status == 3)
        #expect(status.stdout.contains("self-heal budget exhausted"), "\(status.stdout)")
        let statusFile = try #require(FileManager.default.contents(atPath: repo.stateDir + "/status/Service_crash.json"))
        let stored = try JSONSerialization.jsonObject(with: statusFile) as? [String: Any]
        // Four corrections: 50 ms, 100, 200, 400 (capped).
        #expect(stored?["backoffSeconds"] as? Double == 0.4)
        #expect(stored?["budgetExhausted"] as? Bool == true)
        let log = try entries()
        let starts = log.filter {
            $0["kind"] as? String == "result" && $0["action"] as? String == "start-replica" && $0["cause"] as? String == "drift"
        }
        #expect(starts.count == 4, "\(starts.count) corrections")
        let drifts = log.filter { $0["kind"] as? String == "drift" }
        #expect(drifts.count >= 4)
        #expect(drifts.allSatisfy { ($0["reason"] as? String)?.contains("exited 3") == true }, "\(drifts)")
        #expect(log.contains { $0["kind"] as? String == "alert" && ($0["reason"] as? String)?.contains("budget of 4") == true })
        #expect(run.stop() == 0)
    }

    /// `stet run` stopped by a signal exits 0 even when its last pass had a failed action; only
    /// `--once` reports its pass in the exit status.
    @Test func runStoppedByASignalExitsZeroAfterAFailedAction() throws {
        defer { cleanUp() }
        try release(Samples.liveService(name: "nostart", replicas: 1, port: 18197, command: "[/nonexistent/stet-test-command]"))
        let run = try BackgroundProcess(Binary.stet, ["run", "--interval", "60"], in: repo.root.path, environment: ci)
        defer { run.stop() }
        #expect(try eventually { try entries().contains {
            $0["kind"] as? String == "result" && $0["action"] as? String == "start-replica" && $0["outcome"] as? String == "failed"
        } }, "\(run.output)")
        #expect(run.stop() == 0, "\(run.output)")
        #expect(try stet("run", "--once", environment: ci).status == 1)
    }

    /// A release whose command cannot be started: each failed start is retried after the
    /// service's backoff, not at once (which wrote two audit entries per try, as fast as the
    /// loop could go).
    @Test func aCommandThatCannotStartIsRetriedAfterTheBackoff() throws {
        defer { cleanUp() }
        try release(Samples.liveService(name: "nostart", replicas: 1, port: 18197, command: "[/nonexistent/stet-test-command]",
                                        backoffInitial: "500ms", backoffMax: "1s"))
        let run = try BackgroundProcess(Binary.stet, ["run", "--interval", "60"], in: repo.root.path, environment: ci)
        defer { run.stop() }
        func failedStarts() throws -> [Date] {
            let format = ISO8601DateFormatter()
            format.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            return try entries().filter {
                $0["kind"] as? String == "result" && $0["action"] as? String == "start-replica" && $0["outcome"] as? String == "failed"
            }.compactMap { ($0["time"] as? String).flatMap(format.date(from:)) }
        }
        #expect(try eventually(timeout: 30) { try failedStarts().count >= 4 }, "\(run.output)")
        let times = try failedStarts()
        // 500 ms, then 1 s: every try comes at least the first backoff after the one before.
        for (earlier, later) in zip(times, times.dropFirst()) {
            #expect(later.timeIntervalSince(earlier) >= 0.4, "tries at \(times)")
        }
        let statusFile = try #require(FileManager.default.contents(atPath: repo.stateDir + "/status/Service_nostart.json"))
        let stored = try JSONSerialization.jsonObject(with: statusFile) as? [String: Any]
        #expect(stored?["backoffSeconds"] as? Double == 1, "\(String(describing: stored))")
        #expect(run.stop() == 0)
    }

    /// A replica that stays unhealthy once its service's budget is spent: its failed checks do
    /// not plan the service again and again (each pass wrote a drift entry). Its health check
    /// notes each run in a file, so the test counts checks, not seconds.
    @Test func anUnhealthyReplicaPastItsBudgetIsNotPlannedOnEveryCheck() throws {
        defer { cleanUp() }
        try release(Samples.liveService(name: "sick", replicas: 1, port: 18198, command: "[sh, -c, 'exec sleep 300']",
                                        backoffInitial: "50ms", backoffMax: "100ms")
            .replacingOccurrences(of: "http: {path: /}", with: #"exec: {command: [sh, -c, "echo x >> checks; exit 1"]}"#)
            .replacingOccurrences(of: "startPeriod: 3s", with: "startPeriod: 0s"))
        let run = try BackgroundProcess(Binary.stet, ["run", "--interval", "60", "--budget", "1"], in: repo.root.path, environment: ci)
        defer { run.stop() }
        func drifts() throws -> Int { try entries().filter { $0["kind"] as? String == "drift" }.count }
        func checks() -> Int { repo.root.read("checks").map { $0.filter { $0 == 0x0A }.count } ?? 0 }
        #expect(try eventually(timeout: 60) { try entries().contains { $0["kind"] as? String == "alert" } }, "\(run.output)")
        let before = (drifts: try drifts(), checks: checks())
        #expect(eventually { checks() >= before.checks + 10 }, "\(run.output)")
        let after = try entries().filter { $0["kind"] as? String == "drift" }
        #expect(after.count <= before.drifts + 1, "\(after)")
        #expect(run.stop() == 0)
    }

    /// An exec health check that needs the service's `env` passes in `status` and `plan`, which
    /// check once, as it does in the loop, which checks on its own schedule: one check, run with
    /// the environment the replica runs with, counted one way. The check notes each run in a
    /// file, so the test counts checks, not seconds.
    @Test func anExecCheckSeesTheServiceEnvironmentInStatusPlanAndTheLoop() throws {
        defer { cleanUp() }
        try release(Samples.liveService(name: "envcheck", replicas: 1, port: 18195, version: 7, command: "[sh, -c, 'exec sleep 300']")
            .replacingOccurrences(
                of: "http: {path: /}", with: #"exec: {command: [sh, -c, 'echo x >> env-checks; test "$VERSION" = 7']}"#)
            .replacingOccurrences(of: "failureThreshold: 3", with: "failureThreshold: 1")
            .replacingOccurrences(of: "startPeriod: 3s", with: "startPeriod: 0s"))
        #expect(try stet("apply", "--auto-approve", environment: ci).status == 0)
        let started = try #require(replicas("envcheck")[0])
        func checks() -> Int { repo.root.read("env-checks").map { $0.filter { $0 == 0x0A }.count } ?? 0 }
        let status = try stet("status")
        #expect(status.status == 0, "\(status.stdout)")
        #expect(status.stdout.contains("1/1"), "\(status.stdout)")
        let plan = try stet("plan", "--detailed-exitcode")
        #expect(plan.status == 0, "\(plan.stdout)")
        #expect(checks() >= 2)
        let run = try BackgroundProcess(Binary.stet, ["run", "--interval", "60"], in: repo.root.path, environment: ci)
        defer { run.stop() }
        let before = checks()
        #expect(eventually(timeout: 30) { checks() >= before + 5 }, "\(run.output)")
        // Five checks of the loop passed: the replica was never found unhealthy nor replaced.
        #expect(replicas("envcheck")[0]?.pid == started.pid, "\(run.output)")
        let record = try #require(FileManager.default.contents(atPath: repo.stateDir + "/replicas/envcheck/0.json"))
        let fields = try #require(try JSONSerialization.jsonObject(with: record) as? [String: Any])
        #expect(fields["healthFailures"] as? Int == 0 && fields["lastCheck"] != nil, "\(fields)")
        #expect(try stet("status").status == 0)
        #expect(run.stop() == 0)
        #expect(try !entries().contains { $0["kind"] as? String == "drift" })
    }

    /// A replica's pid reused by an unrelated process is not adopted and not killed.
    @Test func aReusedPidIsNeitherAdoptedNorKilled() throws {
        defer { cleanUp() }
        try release(Samples.liveService(name: "reuse", replicas: 1, port: 18140))
        let stranger = try BackgroundProcess("/bin/sleep", ["120"], in: repo.root.path)
        defer { stranger.stop(SIGKILL) }
        let entry = try #require(ProcessTable.entry(stranger.pid))
        // A record as if replica 0 had had this pid, started at another time.
        try repo.root.write(".stet/replicas/reuse/0.json", """
            {"service":"reuse","index":0,"pid":\(stranger.pid),"startTime":\(entry.startTime - 1),"specHash":"sha256:x",\
            "port":18140,"startedAt":"2026-01-01T00:00:00Z","restarts":0,"protect":false,"healthFailures":0}
            """)
        let plan = try stet("plan")
        #expect(plan.stdout.contains("start-replica reuse#0"), "\(plan.combined)")
        #expect(try stet("apply", "--auto-approve", environment: ci).status == 0)
        #expect(stranger.isRunning)
        #expect(eventually { Self.answers(18140) })
        #expect(try stet("down", environment: ci).status == 0)
        #expect(stranger.isRunning)
        #expect(!Self.answers(18140))
    }

    /// A replica start writes its pending record without waiting for the disk; a power loss
    /// can leave it empty. An empty record is no replica (it ran on the host that went down):
    /// plan and apply start one, and nothing reports the state directory as corrupt.
    @Test func anEmptyReplicaRecordIsAReplicaToStart() throws {
        defer { cleanUp() }
        try release(Samples.liveService(name: "cut", replicas: 1, port: 18144))
        try repo.root.write(".stet/replicas/cut/0.json", "")
        let plan = try stet("plan", "--detailed-exitcode")
        #expect(plan.status == 2, "\(plan.combined)")
        #expect(plan.stdout.contains("start-replica cut#0"), "\(plan.combined)")
        #expect(try stet("apply", "--auto-approve", environment: ci).status == 0)
        #expect(eventually { Self.answers(18144) })
        #expect(try stet("down", environment: ci).status == 0)
    }

    /// `stet apply` killed in the middle: the next apply records the interrupted action,
    /// converges, and the log verifies.
    @Test func anApplyKilledMidwayConvergesOnTheNextRun() throws {
        defer { cleanUp() }
        try release(Samples.liveService(name: "midway", replicas: 3, port: 18150))
        let apply = try BackgroundProcess(Binary.stet, ["apply", "--auto-approve"], in: repo.root.path, environment: ci)
        let inflight = repo.stateDir + "/inflight"
        #expect(eventually(interval: 0.002) {
            ((try? FileManager.default.contentsOfDirectory(atPath: inflight)) ?? []).contains { $0.hasSuffix(".json") }
        })
        apply.stop(SIGKILL)
        let again = try stet("apply", "--auto-approve", environment: ci)
        #expect(again.status == 0, "\(again.combined)\n\(apply.output)")
        #expect(eventually { (18150...18152).allSatisfy(Self.answers) })
        #expect(try entries().contains { $0["outcome"] as? String == "interrupted" })
        #expect(try stet("audit", "verify").status == 0)
        #expect(try stet("plan", "--detailed-exitcode").status == 0)
    }

    @Test func savedPlansAreSingleUseCurrentAndSigned() throws {
        defer { cleanUp() }
        try release(Samples.liveService(name: "saved", replicas: 2, port: 18160))
        #expect(try stet("plan", "--out", "p1.json", environment: ci).status == 0)
        #expect(try stet("apply", "p1.json", "--auto-approve", environment: ci).status == 0)
        let twice = try stet("apply", "p1.json", "--auto-approve", environment: ci)
        #expect(twice.status == 12)
        #expect(twice.stderr.contains("single use"))

        // The world changes under a saved plan: stale.
        let first = try #require(replicas("saved")[0])
        kill(first.pid, SIGKILL)
        #expect(eventually { !ProcessTable.isAlive(first.pid, startTime: first.startTime) })
        #expect(try stet("plan", "--out", "p2.json", environment: ci).status == 0)
        let second = try #require(replicas("saved")[1])
        kill(second.pid, SIGKILL)
        #expect(eventually { !ProcessTable.isAlive(second.pid, startTime: second.startTime) })
        _ = try stet("apply", "--auto-approve", environment: ci)
        let stale = try stet("apply", "p2.json", "--auto-approve", environment: ci)
        #expect(stale.status == 12, "\(stale.combined)")
        #expect(stale.stderr.contains("no longer hold"))

        // Signed by a key outside the operator role: refused.
        let planData = try #require(FileManager.default.contents(atPath: repo.root.file("p2.json")))
        var envelope = try Envelope(json: planData)
        envelope.signatures = []
        try envelope.sign(with: try PrivateKey(contentsOfFile: repo.privateKeyPath("stranger")))
        try repo.root.write("p3.json", envelope.json())
        let foreign = try stet("apply", "p3.json", "--auto-approve", environment: ci)
        #expect(foreign.status == 10, "\(foreign.combined)")
        #expect(foreign.stderr.contains("not signed by an operator key"))
        let refusals = try entries().filter { $0["kind"] as? String == "refusal" }
        #expect(refusals.count == 3)
    }

    @Test func planExitCodesFollowTheCauses() throws {
        defer { cleanUp() }
        try release(Samples.liveService(name: "codes", replicas: 1, port: 18170))
        #expect(try stet("plan", "--detailed-exitcode").status == 2)
        #expect(try stet("plan").status == 0)
        #expect(try stet("apply", "--auto-approve", environment: ci).status == 0)
        #expect(try stet("plan", "--detailed-exitcode").status == 0)
        let replica = try #require(replicas("codes")[0])
        kill(replica.pid, SIGKILL)
        #expect(eventually { !ProcessTable.isAlive(replica.pid, startTime: replica.startTime) })
        let drift = try stet("plan", "--detailed-exitcode")
        #expect(drift.status == 3)
        #expect(drift.stdout.contains("(drift: replica 0 of 1"))
        let json = try stet("plan", "--json")
        let decoded = try JSONDecoder().decode(Plan.self, from: Data(json.stdout.utf8))
        #expect(decoded.changes.map(\.cause) == [.drift])
        let noKey = try stet("apply", "--auto-approve")
        #expect(noKey.status == 1)
        #expect(try stet("apply", environment: ci).status == 1)
    }

    /// A release changed without being signed again: `stet run` refuses it, records the refusal,
    /// and tears nothing down.
    @Test func anUnsignedReleaseUnderRunTearsNothingDown() throws {
        defer { cleanUp() }
        try release(Samples.liveService(name: "unsigned", replicas: 2, port: 18180))
        let run = try BackgroundProcess(Binary.stet, ["run", "--interval", "0.3"], in: repo.root.path, environment: ci)
        defer { run.stop() }
        #expect(eventually { Self.answers(18180) && Self.answers(18181) }, "\(run.output)")
        let before = replicas("unsigned")
        try repo.root.write("manifests/svc.yaml", Samples.liveService(name: "unsigned", replicas: 0, port: 18180))
        #expect(try eventually { try entries().contains { $0["kind"] as? String == "refusal" } }, "\(run.output)")
        usleep(1_000_000)
        #expect(replicas("unsigned").mapValues(\.pid) == before.mapValues(\.pid))
        #expect(Self.answers(18180) && Self.answers(18181))
        let refusal = try #require(try entries().first { $0["kind"] as? String == "refusal" })
        #expect((refusal["error"] as? String)?.contains("file-modified") == true)
        #expect(run.stop() == 0)
    }

    /// A replica that ignores its stop signal is killed after the stop timeout.
    @Test func aReplicaIgnoringItsStopSignalIsKilledAfterTheTimeout() throws {
        defer { cleanUp() }
        try release(Samples.liveService(name: "stubborn", replicas: 1, port: 18190, command: #"[sh, -c, 'trap "" TERM; exec sleep 300']"#)
            .replacingOccurrences(of: "stopTimeout: 5s", with: "stopTimeout: 500ms"))
        // It serves nothing, so its check never passes: apply does not wait for it.
        #expect(try stet("apply", "--auto-approve", "--no-wait", environment: ci).status == 0)
        let replica = try #require(replicas("stubborn")[0])
        #expect(ProcessTable.isAlive(replica.pid, startTime: replica.startTime))
        let down = try stet("down", environment: ci)
        #expect(down.status == 0, "\(down.combined)")
        #expect(down.stdout.contains("with SIGKILL after SIGTERM timed out"))
        #expect(!ProcessTable.isAlive(replica.pid, startTime: replica.startTime))
    }

    /// While another process holds the state lock, apply waits, then exits 11 having done nothing.
    @Test func aHeldStateLockMakesApplyExit11() throws {
        defer { cleanUp() }
        try release(Samples.liveService(name: "locked", replicas: 1, port: 18195))
        try FileManager.default.createDirectory(atPath: repo.stateDir, withIntermediateDirectories: true)
        let fd = open(repo.stateDir + "/lock", O_RDWR | O_CREAT, 0o600)
        defer { close(fd) }
        #expect(flock(fd, LOCK_EX) == 0)
        let blocked = try stet("apply", "--auto-approve", "--lock-timeout", "0.3", environment: ci)
        #expect(blocked.status == 11, "\(blocked.combined)")
        #expect(replicas("locked").isEmpty)
        flock(fd, LOCK_UN)
        #expect(try stet("apply", "--auto-approve", "--lock-timeout", "0.3", environment: ci).status == 0)
    }

    @Test func logsAreKeptUnderTheirCap() throws {
        var provider = ReplicaProvider(store: FileStateStore(root: repo.stateDir))
        provider.logLimit = 1000
        let path = repo.root.file("big.log")
        try Data(repeating: 65, count: 1500).write(to: URL(fileURLWithPath: path))
        provider.rotate(path)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)).isEmpty)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path + ".1")).count == 1500)
        try Data(repeating: 65, count: 500).write(to: URL(fileURLWithPath: path))
        provider.rotate(path)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)).count == 500)
    }
}
