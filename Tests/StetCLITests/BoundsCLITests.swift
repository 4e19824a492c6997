import Foundation
import StetCore
import StetCrypto
import StetEngine
import StetProviders
import StetTesting
import Testing

/// Numbers and names from outside (manifests, options, state files, saved plans) on the built
/// binary: each is refused with a message that names it, and nothing traps.
@Suite(.serialized) struct BoundsCLITests {
    var repo = RepositoryFixture()
    let ci = ["STET_KEY": "private/ci.key"]

    init() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        #expect(try stet("trust", "pin", environment: ci).status == 0)
    }

    func stet(_ arguments: String..., environment: [String: String] = [:]) throws -> ProcessOutput {
        try Binary.run(arguments, in: repo.root.path, environment: environment)
    }

    static func service(_ name: String, replicas: Int = 1, tail: String = "") -> String {
        """
        apiVersion: stet/v1
        kind: Service
        metadata: {name: \(name)}
        spec:
          replicas: \(replicas)
          run:
            command: [sleep, "300"]
        \(tail)
        """
    }

    /// Stops the replicas of `service` through Stet, and kills any left.
    func cleanUp(_ service: String) {
        _ = try? stet("down", environment: ci)
        let folder = repo.stateDir + "/replicas/\(service)"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] {
            guard let data = FileManager.default.contents(atPath: folder + "/" + name),
                let record = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                let pid = (record["pid"] as? NSNumber)?.int32Value, let start = (record["startTime"] as? NSNumber)?.uint64Value,
                pid > 0, ProcessTable.isAlive(pid, startTime: start)
            else { continue }
            kill(-pid, SIGKILL)
            kill(pid, SIGKILL)
        }
    }

    // MARK: - Durations, ports, options

    @Test func aThirtyDayHealthTimeoutIsRefusedWithTheBound() throws {
        try repo.root.write("manifests/web.yaml", Self.service("web", tail: """
              health:
                tcp: {port: 1}
                interval: 30d
                timeout: 30d

            """))
        let validate = try stet("validate")
        #expect(validate.status == 1, "\(validate.combined)")
        #expect(validate.stderr.contains("manifests/web.yaml:11:14: spec.health.timeout: expected a duration of at most 1d, found \"30d\""),
                "\(validate.combined)")
    }

    @Test func aThirtyDayTimeoutReachesPollWithoutTrapping() throws {
        #expect(CheckRunner.remaining(Date().addingTimeInterval(30 * 86_400)) == Int32.max)
        #expect(CheckRunner.remaining(Date(timeIntervalSinceReferenceDate: .nan)) == 0)
        #expect(CheckRunner.remaining(Date.distantPast) == 0)
        // A real check with that timeout, through poll(2): answers instead of trapping.
        let port = 18_411
        let server = try BackgroundProcess("/bin/sh", ["-c", "exec python3 -m http.server --bind 127.0.0.1 \(port)"], in: repo.root.path)
        defer { server.stop(SIGKILL) }
        let check = Check.http(url: "http://127.0.0.1:\(port)/", path: nil, port: nil, expectStatus: nil, bodyContains: nil)
        #expect(eventually { CheckRunner().run(check, port: nil, timeout: 1).ok }, "\(server.output)")
        let result = CheckRunner().run(check, port: nil, timeout: 30 * 86_400)
        #expect(result.ok, "\(result.detail)")
    }

    @Test(arguments: ["99999999999999999999d", "100000000000d", "366d", "53w"])
    func durationsLongerThanAYearAreRefusedCleanly(every: String) throws {
        try repo.root.write("manifests/b.yaml", Samples.backupPolicy(
            name: "b", repository: "backups/b", passwordFile: "secrets/pw", paths: ["data"], every: every, rpo: every))
        let validate = try stet("validate")
        #expect(validate.status == 1, "\(validate.combined)")
        #expect(validate.stderr.contains("manifests/b.yaml:8:10: spec.every: expected a duration of at most 365d, found \"\(every)\""),
                "\(validate.combined)")
        #expect(validate.stderr.contains("manifests/b.yaml:9:8: spec.rpo: expected a duration of at most 365d"), "\(validate.combined)")
    }

    @Test func aPortBeyond65535ForAnyReplicaIsRefused() throws {
        try repo.root.write("manifests/web.yaml", Self.service("web", replicas: 2).replacingOccurrences(
            of: "    command: [sleep, \"300\"]\n", with: "    command: [sleep, \"300\"]\n    ports: {start: 65535}\n"))
        let validate = try stet("validate")
        #expect(validate.status == 1, "\(validate.combined)")
        #expect(validate.stderr.contains(
            "manifests/web.yaml:8:20: spec.run.ports.start: expected a start of at most 65534 for 2 replicas: replica 1 would get PORT=65536, beyond 65535"),
                "\(validate.combined)")
        // One replica on the last port is fine.
        try repo.root.write("manifests/web.yaml", Self.service("web", replicas: 1).replacingOccurrences(
            of: "    command: [sleep, \"300\"]\n", with: "    command: [sleep, \"300\"]\n    ports: {start: 65535}\n"))
        #expect(try stet("validate").status == 0)
    }

    @Test(arguments: [
        (["status", "--lock-timeout", "nan"], "--lock-timeout nan: expected a number of seconds from 0 to 86400"),
        (["plan", "--lock-timeout", "1e300"], "--lock-timeout 1e+300: expected a number of seconds from 0 to 86400"),
        (["run", "--interval", "0"], "--interval 0: expected a number of seconds from 0.1 to 86400"),
        (["run", "--interval", "inf"], "--interval inf: expected a number of seconds from 0.1 to 86400"),
        (["drill", "monitor", "m", "--timeout=-1"], "--timeout -1: expected a number of seconds from 0.1 to 3600"),
        (["run", "--source", "git:x", "--poll", "400d"], "--poll 400d: expected a duration such as 30s"),
    ])
    func secondsFromOptionsAreBounded(arguments: [String], message: String) throws {
        let run = try Binary.run(arguments, in: repo.root.path, environment: ci)
        #expect(run.status == 1, "\(run.combined)")
        #expect(run.stderr.contains(message), "\(run.combined)")
    }

    // MARK: - State files read back

    /// A record whose numbers Stet could never have written is damaged: `status` says so
    /// (exit 1) instead of trapping on `healthFailures + 1`.
    @Test func impossibleNumbersInAReplicaRecordAreRefused() throws {
        defer { cleanUp("odd") }
        try repo.root.write("manifests/odd.yaml", Self.service("odd", tail: "  health:\n    tcp: {port: 1}\n"))
        try repo.sign(["alice"])
        // The check never passes (nothing listens on port 1): apply does not wait for it.
        let apply = try stet("apply", "--auto-approve", "--no-wait", environment: ci)
        #expect(apply.status == 0, "\(apply.combined)")
        let path = repo.stateDir + "/replicas/odd/0.json"
        let original = try #require(FileManager.default.contents(atPath: path))
        let fields = try #require(try JSONSerialization.jsonObject(with: original) as? [String: Any])
        let cases: [(String, Any, String)] = [
            ("healthFailures", Int.max, "healthFailures 9223372036854775807 is not from 0 to 9007199254740992"),
            ("restarts", -1, "restarts -1 is not from 0 to 9007199254740992"),
            ("port", 70_000, "port 70000 is not from 1 to 65535"),
            ("stopTimeout", -1.5, "stopTimeout -1.5 is negative"),
            ("pid", -5, "pid -5 is negative"),
            ("service", "other", "it is the record of replica 0 of other, not of replica 0 of odd"),
        ]
        for (field, value, problem) in cases {
            var changed = fields
            changed[field] = value
            try JSONSerialization.data(withJSONObject: changed).write(to: URL(fileURLWithPath: path))
            let status = try stet("status")
            #expect(status.status == 1, "\(field): \(status.combined)")
            #expect(status.stderr.contains("state file replicas/odd/0.json is damaged: \(problem)"), "\(status.combined)")
        }
        try original.write(to: URL(fileURLWithPath: path))
        let status = try stet("status")
        #expect(status.status == 3, "\(status.combined)")
        #expect(try stet("down", environment: ci).status == 0)
    }

    @Test func namesInStateFoldersThatStetWouldNotWriteArePassedOver() throws {
        try repo.root.write("manifests/odd.yaml", Self.service("odd", replicas: 0))
        try repo.sign(["alice"])
        try repo.root.write(".stet/replicas/Bad_Name/0.json", "{}")
        try repo.root.write(".stet/replicas/odd/+0.json", "{}")
        try repo.root.write(".stet/backup/Bad_Name.json", "{}")
        let plan = try stet("plan", "--json")
        #expect(plan.status == 0, "\(plan.combined)")
        let decoded = try JSONDecoder().decode(Plan.self, from: Data(plan.stdout.utf8))
        #expect(decoded.changes.isEmpty && decoded.notices.isEmpty, "\(plan.stdout)")
    }

    // MARK: - Saved plans

    /// `plan --out`, then the same plan changed by `edit` and signed again with the operator key.
    func forgedPlan(_ edit: (inout Plan) -> Void) throws -> String {
        #expect(try stet("plan", "--out", "p.json", environment: ci).status == 0)
        let envelope = try Envelope(json: try #require(FileManager.default.contents(atPath: repo.root.file("p.json"))))
        var plan = try JSONDecoder().decode(Plan.self, from: envelope.payload)
        edit(&plan)
        try repo.root.write("forged.json", try PlanFile.sign(plan, with: try PrivateKey(contentsOfFile: repo.privateKeyPath("ci"))))
        return "forged.json"
    }

    @Test func aSavedPlanWhoseIDIsAPathIsRefusedBeforeAnythingIsWritten() throws {
        defer { cleanUp("odd") }
        try repo.root.write("manifests/odd.yaml", Self.service("odd"))
        try repo.sign(["alice"])
        let file = try forgedPlan { $0.id = "../../../x/y" }
        let apply = try stet("apply", file, "--auto-approve", environment: ci)
        #expect(apply.status == 10, "\(apply.combined)")
        #expect(apply.stderr.contains("forged.json: the plan id \"../../../x/y\" is not plan- and 16 hex digits"), "\(apply.combined)")
        #expect(!FileManager.default.fileExists(atPath: repo.root.file("x")))
        #expect(!FileManager.default.fileExists(atPath: repo.stateDir + "/replicas/odd"))
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: repo.stateDir + "/plans/applied")) ?? []).isEmpty)
        let refusals = try stet("audit", "list", "--json").stdout.split(separator: "\n").filter { $0.contains(#""kind":"refusal""#) }
        #expect(refusals.count == 1)
    }

    /// A saved plan whose payload JSON `edit` changed (where the typed plan cannot say it),
    /// signed by the ci key.
    func forgedPayload(_ edit: (inout [String: Any]) -> Void) throws -> String {
        #expect(try stet("plan", "--out", "p.json", environment: ci).status == 0)
        let envelope = try Envelope(json: try #require(FileManager.default.contents(atPath: repo.root.file("p.json"))))
        var plan = try #require(try JSONSerialization.jsonObject(with: envelope.payload) as? [String: Any])
        edit(&plan)
        var forged = Envelope(payloadType: PlanFile.payloadType, payload: try JSONSerialization.data(withJSONObject: plan, options: [.sortedKeys]))
        try forged.sign(with: try PrivateKey(contentsOfFile: repo.privateKeyPath("ci")))
        try repo.root.write("forged.json", forged.json(pretty: true))
        return "forged.json"
    }

    /// Changes the first change of a plan's payload JSON.
    static func editFirstChange(_ plan: inout [String: Any], _ edit: (inout [String: Any]) -> Void) {
        var changes = plan["changes"] as? [[String: Any]] ?? []
        guard !changes.isEmpty else { return }
        edit(&changes[0])
        plan["changes"] = changes
    }

    @Test func aSavedPlanNamingAResourceOutOfFormIsRefused() throws {
        defer { cleanUp("odd") }
        try repo.root.write("manifests/odd.yaml", Self.service("odd"))
        try repo.sign(["alice"])
        let file = try forgedPayload { plan in
            Self.editFirstChange(&plan) {
                $0["resource"] = "Service/../odd"
                $0["id"] = "Service/../odd#0:start-replica"
            }
        }
        let apply = try stet("apply", file, "--auto-approve", environment: ci)
        #expect(apply.status == 10, "\(apply.combined)")
        #expect(apply.stderr.contains("the resource \"Service/../odd\" is not Kind/name with a DNS label as the name"), "\(apply.combined)")
        #expect(!FileManager.default.fileExists(atPath: repo.stateDir + "/replicas/odd"))
    }

    @Test func aSavedPlanWithAnUnknownActionIsRefused() throws {
        defer { cleanUp("odd") }
        try repo.root.write("manifests/odd.yaml", Self.service("odd"))
        try repo.sign(["alice"])
        let file = try forgedPayload { plan in
            Self.editFirstChange(&plan) {
                $0["action"] = "delete-everything"
                $0["id"] = "Service/odd#0:delete-everything"
            }
        }
        let apply = try stet("apply", file, "--auto-approve", environment: ci)
        #expect(apply.status == 10, "\(apply.combined)")
        #expect(apply.stderr.contains(
            "forged.json: change \"Service/odd#0:delete-everything\": \"delete-everything\" is not an action on Service"), "\(apply.combined)")
        #expect(!FileManager.default.fileExists(atPath: repo.stateDir + "/replicas/odd"))
        let refusals = try stet("audit", "list", "--json").stdout.split(separator: "\n").filter { $0.contains(#""kind":"refusal""#) }
        #expect(refusals.count == 1)
    }

    // MARK: - Monitors

    @Test func aMonitorEverySecondWithoutATimeoutProbesWithOneSecond() throws {
        try repo.root.write("manifests/slow.yaml", """
            apiVersion: stet/v1
            kind: Monitor
            metadata: {name: slow}
            spec:
              probe:
                exec: {command: [sleep, "3"]}
              interval: 1s

            """)
        let validate = try stet("validate")
        #expect(validate.status == 0, "\(validate.combined)")
        try repo.sign(["alice"])
        // The probe takes 3 s: with the old 5 s default it would pass; with 1 s it times out.
        let plan = try stet("plan")
        #expect(plan.status == 0, "\(plan.combined)")
        #expect(plan.stdout.contains("Monitor/slow  failing  timed out"), "\(plan.combined)")
    }
}
