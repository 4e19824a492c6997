import Foundation
import StetCore
import StetProviders
import StetTesting
import Testing

/// `stet apply` waits until the replicas it started are healthy, and says what it is doing while
/// its actions run. Real replicas on ports 18800–18819; each test stops every process it started.
@Suite(.serialized) struct ApplyWaitTests {
    var repo = RepositoryFixture()
    let ci = ["STET_KEY": "private/ci.key"]

    init() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        #expect(try stet("trust", "pin", environment: ci).status == 0)
    }

    func stet(_ arguments: String..., environment: [String: String] = [:]) throws -> ProcessOutput {
        try Binary.run(arguments, in: repo.root.path, environment: environment)
    }

    /// A service of one replica running `command`, checked over HTTP on its port: first after
    /// 1 s, then every second, unhealthy after 5 failures (so Stet waits about 6.5 s by default).
    func release(name: String, port: Int, command: String) throws {
        try repo.root.write("manifests/svc.yaml", """
            apiVersion: stet/v1
            kind: Service
            metadata: {name: \(name)}
            spec:
              replicas: 1
              run:
                command: \(command)
                ports: {start: \(port)}
                stopTimeout: 5s
              health:
                http: {path: /}
                interval: 1s
                timeout: 500ms
                failureThreshold: 5
                startPeriod: 1s

            """)
        try repo.sign(["alice"])
    }

    /// Serves HTTP only after sleeping `delay` seconds.
    static func server(after delay: Int) -> String {
        #"[sh, -c, 'sleep \#(delay); exec python3 -m http.server --bind 127.0.0.1 "$PORT"']"#
    }

    func entries() throws -> [[String: Any]] {
        try stet("audit", "list", "--json").stdout.split(separator: "\n").compactMap {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    func waits(_ outcome: String) throws -> [[String: Any]] {
        try entries().filter { $0["kind"] as? String == "result" && $0["action"] as? String == "wait-healthy" && $0["outcome"] as? String == outcome }
    }

    func cleanUp(_ service: String) {
        _ = try? stet("down", environment: ci)
        let folder = repo.stateDir + "/replicas/\(service)"
        struct Record: Decodable {
            let pid: Int32
            let startTime: UInt64
        }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] {
            guard let data = FileManager.default.contents(atPath: folder + "/" + name),
                let record = try? JSONDecoder().decode(Record.self, from: data),
                ProcessTable.isAlive(record.pid, startTime: record.startTime)
            else { continue }
            kill(-record.pid, SIGKILL)
            kill(record.pid, SIGKILL)
        }
    }

    /// Without the wait, apply returned while the replica was still starting and `status` exited 3.
    @Test func applyReturnsOnceANewReplicaIsHealthy() throws {
        defer { cleanUp("slow") }
        try release(name: "slow", port: 18800, command: Self.server(after: 2))
        let apply = try stet("apply", "--auto-approve", environment: ci)
        #expect(apply.status == 0, "\(apply.combined)")
        let status = try stet("status")
        #expect(status.status == 0, "\(status.combined)")
        #expect(status.stdout.contains("Service/slow  1/1 ready"), "\(status.stdout)")
        // Not on a terminal: a line when each action starts and one when it ends.
        #expect(apply.stdout.contains("start  Service/slow#0:start-replica"), "\(apply.stdout)")
        #expect(apply.stdout.contains("ok  Service/slow#0:start-replica"), "\(apply.stdout)")
        #expect(apply.stdout.contains("start  Service/slow#0:wait-healthy"), "\(apply.stdout)")
        #expect(apply.stdout.contains("ok  Service/slow#0:wait-healthy  healthy"), "\(apply.stdout)")
        #expect(try waits("ok").count == 1)
        #expect(try stet("audit", "verify").status == 0)
    }

    /// A replica that never answers fails apply: the message names it, its last check and its log.
    @Test func aReplicaThatNeverBecomesHealthyFailsApplyWithItsLastCheckAndLog() throws {
        defer { cleanUp("sick") }
        try release(name: "sick", port: 18801, command: "[sleep, '600']")
        let apply = try stet("apply", "--auto-approve", "--wait-timeout", "2s", environment: ci)
        #expect(apply.status == 1, "\(apply.combined)")
        let message = "Service/sick replica 0: not healthy within 2s; last check failed: 127.0.0.1:18801:"
        #expect(apply.stdout.contains(message), "\(apply.stdout)")
        // The replica's own log, as a path to open.
        let log = try #require(apply.stdout.split(separator: "\n").first { $0.hasPrefix("  \(message)") }?
            .components(separatedBy: "; log: ").last)
        #expect(log.hasSuffix("/.stet/logs/sick-0.log") && FileManager.default.fileExists(atPath: log), "\(log)")
        #expect(apply.stdout.contains("1 of 1 new replica(s) not healthy"), "\(apply.stdout)")
        let failed = try waits("failed")
        #expect(failed.count == 1)
        #expect((failed.first?["error"] as? String)?.contains(message) == true, "\(failed)")
        #expect(failed.first?["resource"] as? String == "Service/sick")
        #expect(try stet("audit", "verify").status == 0)
    }

    /// `--no-wait` returns once the changes are made: no wait is recorded, and apply succeeds
    /// although the replica is not healthy.
    @Test func noWaitReturnsWithoutWaiting() throws {
        defer { cleanUp("nowait") }
        try release(name: "nowait", port: 18802, command: "[sleep, '600']")
        let apply = try stet("apply", "--auto-approve", "--no-wait", environment: ci)
        #expect(apply.status == 0, "\(apply.combined)")
        #expect(!apply.stdout.contains("wait-healthy"), "\(apply.stdout)")
        #expect(try entries().allSatisfy { $0["action"] as? String != "wait-healthy" })
        #expect(try stet("status").status == 3)
    }

    /// On a terminal (a pseudo-terminal from `script`), each running action has a live line with
    /// its elapsed time, rewritten in place; NO_COLOR (set for every test) keeps colour out.
    @Test func onATerminalRunningActionsHaveLiveLines() throws {
        defer { cleanUp("live") }
        try release(name: "live", port: 18804, command: Self.server(after: 2))
        let command = "'\(Binary.stet)' apply --auto-approve"
        let apply = try StetTesting.run(
            "script", ["-qec", command, "/dev/null"], in: repo.root.path, environment: ci.merging(["TERM": "xterm"]) { $1 })
        #expect(apply.status == 0, "\(apply.combined)")
        // Drawn, then rewritten in place (cursor up one line, clear to the end of the screen).
        #expect(apply.stdout.contains(#/  Service/live#0:wait-healthy  \d+s/#), "\(apply.stdout.debugDescription)")
        #expect(apply.stdout.contains("\u{1B}[1A\u{1B}[J  Service/live#0:wait-healthy  "), "\(apply.stdout.debugDescription)")
        #expect(apply.stdout.contains("ok  Service/live#0:wait-healthy  healthy"), "\(apply.stdout.debugDescription)")
        #expect(!apply.stdout.contains("\u{1B}[32m"), "\(apply.stdout.debugDescription)")
        #expect(!apply.stdout.contains("start  Service/live#0"), "\(apply.stdout.debugDescription)")
    }

    @Test(arguments: [["--wait-timeout", "0s"], ["--wait-timeout", "soon"], ["--wait-timeout", "2d"], ["--no-wait", "--wait-timeout", "5s"]])
    func aBadWaitOptionIsRefusedBeforeAnythingHappens(_ options: [String]) throws {
        try release(name: "never", port: 18803, command: "[sleep, '600']")
        let apply = try Binary.run(["apply", "--auto-approve"] + options, in: repo.root.path, environment: ci)
        #expect(apply.status != 0)
        #expect(apply.stderr.contains("--wait-timeout"), "\(apply.stderr)")
        #expect(!FileManager.default.fileExists(atPath: repo.stateDir + "/replicas/never"))
    }
}
