import Foundation
import StetProviders
import StetTesting
import Testing

/// Drills and maintenance windows under `stet run`, in real time with real replicas: a service
/// drill that passes (scheduled and on demand), one that fails for real (the replacement never
/// becomes healthy) and alerts, and a window a few seconds long that a new spec waits for and
/// catches up in.
@Suite(.serialized) struct DrillTests {
    var repo = RepositoryFixture()
    let ci = ["STET_KEY": "private/ci.key"]

    init() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
    }

    func stet(_ arguments: String..., environment: [String: String] = [:]) throws -> ProcessOutput {
        try Binary.run(arguments, in: repo.root.path, environment: environment)
    }

    /// The audit entries of `kind`, as `stet audit list --json` prints them.
    func entries(kind: String) -> [[String: Any]] {
        guard let output = try? stet("audit", "list", "--kind", kind, "--json"), output.status == 0 else { return [] }
        return output.stdout.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    func verdicts(_ resource: String) -> [[String: Any]] {
        entries(kind: "drill").filter { $0["resource"] as? String == resource && $0["outcome"] != nil }
    }

    static func pid(_ stateDir: String, _ service: String, _ index: Int) -> Int32? {
        LoopReactionTests.replica(stateDir, service, index)?.pid
    }

    @Test func aScheduledServiceDrillPassesAndAnOnDemandOneToo() async throws {
        try repo.root.write("manifests/svc.yaml", Samples.liveService(name: "drilled", replicas: 2, port: 19400)
            + "  drill: {every: 15s, recoverWithin: 20s}\n")
        try repo.sign(["alice"])
        #expect(try stet("trust", "pin", environment: ci).status == 0)
        // Each drill's replacement is a correction: a budget for many, so that no drill of this
        // test finds the budget spent (a spent budget leaves the killed replica dead, by design).
        let run = try BackgroundProcess(
            Binary.stet, ["run", "--interval", "0.5", "--listen", "127.0.0.1:19405", "--budget", "1000"], in: repo.root.path,
            environment: ci)
        defer {
            run.stop()
            _ = try? stet("down", environment: ci)
            LoopReactionTests.killLeftovers(repo.stateDir, ["drilled"])
        }
        #expect(await pollUntil(timeout: 60) { verdicts("Service/drilled").contains { $0["outcome"] as? String == "ok" } }, "\(run.output)")
        let passed = try #require(verdicts("Service/drilled").first)
        let evidence = try #require(passed["reason"] as? String)
        #expect(evidence.contains("killed; replacement pid"), "\(evidence)")
        #expect(evidence.contains("healthy after"), "\(evidence)")
        let started = entries(kind: "drill").first { $0["outcome"] == nil }
        #expect((started?["reason"] as? String)?.contains("with SIGKILL; a replacement must be healthy within 20s") == true)
        // Status shows the last drill (between drills, every replica ready: exit 0). Drills are
        // 15 s apart so that most of the time between them has every replica ready: a replacement
        // is ready a start period (3 s) after its kill, later on a loaded machine.
        #expect(await pollUntil(timeout: 60) {
            guard let status = try? stet("status", "--json"), status.status == 0,
                let report = try? JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any],
                let service = (report["services"] as? [[String: Any]])?.first
            else { return false }
            return ((service["drill"] as? [String: Any])?["last"] as? [String: Any])?["ok"] as? Bool == true
        }, "\(run.output)")
        // The last drill in /metrics and on the status page.
        func page(_ path: String) -> String {
            guard case .success(let response) = PlainHTTP.request("GET", "http://127.0.0.1:19405\(path)", timeout: 2) else { return "" }
            return String(decoding: response.body, as: UTF8.self)
        }
        #expect(await pollUntil { page("/metrics").contains(#"stet_drill_success{resource="Service/drilled"} 1"#) }, "\(page("/metrics"))")
        #expect(page("/metrics").contains(#"stet_drill_duration_seconds{resource="Service/drilled"}"#))
        #expect(page("/").contains("Service/drilled drill"), "\(page("/"))")
        // On demand, beside the loop (it does not start while a scheduled drill has a replica down).
        var drill: ProcessOutput?
        #expect(await pollUntil(timeout: 60, interval: 0.5) {
            drill = try? stet("drill", "service", "drilled", environment: ci)
            return drill?.status == 0
        }, "\(drill?.combined ?? "")\n\(run.output)")
        #expect(drill?.stdout.contains("passed  replica") == true, "\(drill?.combined ?? "")")
        #expect(run.stop() == 0, "\(run.output)")
        // Without a loop nothing would replace a killed replica: nothing is killed.
        let before = [Self.pid(repo.stateDir, "drilled", 0), Self.pid(repo.stateDir, "drilled", 1)]
        let refused = try stet("drill", "service", "drilled", environment: ci)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("no `stet run` runs on"), "\(refused.combined)")
        #expect([Self.pid(repo.stateDir, "drilled", 0), Self.pid(repo.stateDir, "drilled", 1)] == before)
        #expect(LoopReactionTests.answers(19400) && LoopReactionTests.answers(19401))
        #expect(entries(kind: "refusal").contains { $0["action"] as? String == "drill" })
    }

    @Test func aDrillWhoseReplacementNeverBecomesHealthyFailsAndAlerts() async throws {
        // The first process of each replica serves; any later one only sleeps (its port stays
        // closed), so the replacement a drill needs never passes its health check.
        let marker = "/dev/shm/stet-drill-\(UInt32.random(in: 0...UInt32.max))"
        defer {
            for index in 0..<2 { unlink("\(marker)-\(index)") }
        }
        let command = #"[sh, -c, 'm="$MARKER-$STET_REPLICA"; if [ -e "$m" ]; then exec sleep 3600; fi; : > "$m"; exec python3 -m http.server --bind 127.0.0.1 "$PORT"']"#
        var service = Samples.liveService(name: "fragile", replicas: 2, port: 19410, command: command)
        service = service.replacingOccurrences(of: "env: {VERSION: \"1\"}", with: "env: {VERSION: \"1\", MARKER: \"\(marker)\"}")
        try repo.root.write("manifests/svc.yaml", service + "  drill: {every: 2s, recoverWithin: 6s}\n" + """
            ---
            apiVersion: stet/v1
            kind: Notifier
            metadata: {name: pager}
            spec:
              exec: {command: [sh, -c, 'cat >> "\(repo.root.file("alerts.json"))"; echo >> "\(repo.root.file("alerts.json"))"']}

            """)
        try repo.sign(["alice"])
        #expect(try stet("trust", "pin", environment: ci).status == 0)
        let run = try BackgroundProcess(Binary.stet, ["run", "--interval", "0.5"], in: repo.root.path, environment: ci)
        defer {
            run.stop()
            _ = try? stet("down", environment: ci)
            LoopReactionTests.killLeftovers(repo.stateDir, ["fragile"])
        }
        #expect(await pollUntil(timeout: 60) { verdicts("Service/fragile").contains { $0["outcome"] as? String == "failed" } }, "\(run.output)")
        let failed = try #require(verdicts("Service/fragile").first { $0["outcome"] as? String == "failed" })
        let evidence = try #require(failed["error"] as? String)
        #expect(evidence.contains("no healthy replacement within 6.00s"), "\(evidence)")
        #expect(evidence.contains("replacement pid"), "the replacement was started: \(evidence)")
        #expect(await pollUntil { (repo.root.read("alerts.json").map { String(decoding: $0, as: UTF8.self) } ?? "").contains("StetDrillFailed") },
                "\(run.output)")
        let status = try stet("status")
        #expect(status.status == 3, "\(status.combined)")
        #expect(status.stdout.contains("drill  FAILED"), "\(status.combined)")
        #expect(run.stop() == 0, "\(run.output)")
    }

    /// A window open for the first 20 seconds of every minute: a new spec waits for it (recorded
    /// once, shown by `stet plan` and `stet status`), and the loop replaces the replicas as soon
    /// as it opens, saying so in each intent.
    @Test func aNewSpecWaitsForAWindowAndRunsWhenItOpens() async throws {
        let window = """
            ---
            apiVersion: stet/v1
            kind: MaintenanceWindow
            metadata: {name: minute}
            spec:
              schedule: "* * * * *"
              duration: 20s

            """
        try repo.root.write("manifests/svc.yaml", Samples.liveService(name: "windowed", replicas: 2, port: 19420) + window)
        try repo.sign(["alice"])
        #expect(try stet("trust", "pin", environment: ci).status == 0)
        // Starting replicas disrupts nothing: it runs at any time.
        let apply = try stet("apply", "--auto-approve", environment: ci)
        #expect(apply.status == 0, "\(apply.combined)")
        defer {
            _ = try? stet("down", environment: ci)
            LoopReactionTests.killLeftovers(repo.stateDir, ["windowed"])
        }
        // Wait until the window has just closed, so the new spec waits about 50 s.
        #expect(await pollUntil(timeout: 70, interval: 0.2) { (22...40).contains(Calendar(identifier: .gregorian).component(.second, from: Date())) })
        try repo.root.write("manifests/svc.yaml", Samples.liveService(name: "windowed", replicas: 2, port: 19420, version: 2) + window)
        try repo.sign(["alice"])
        let before = [Self.pid(repo.stateDir, "windowed", 0), Self.pid(repo.stateDir, "windowed", 1)]
        let plan = try stet("plan")
        #expect(plan.stdout.contains("! windowed#0 waits: replace-replica (config: replica 0 of 2 runs an older spec) waits for window minute (opens "),
                "\(plan.combined)")
        let run = try BackgroundProcess(Binary.stet, ["run", "--interval", "0.5", "--listen", "127.0.0.1:19425"], in: repo.root.path,
                                        environment: ci)
        defer { run.stop() }
        #expect(await pollUntil { entries(kind: "window").count >= 2 }, "\(run.output)")
        func metrics() -> String {
            guard case .success(let response) = PlainHTTP.request("GET", "http://127.0.0.1:19425/metrics", timeout: 2) else { return "" }
            return String(decoding: response.body, as: UTF8.self)
        }
        #expect(await pollUntil { metrics().contains(#"stet_window_waiting_changes{window="minute"} 2"#) }, "\(metrics())")
        #expect(metrics().contains(#"stet_window_open{window="minute"} 0"#))
        let status = try stet("status")
        #expect(status.stdout.contains("MaintenanceWindow/minute  allow  closed, opens "), "\(status.combined)")
        #expect(status.stdout.contains("  waiting  Service/windowed#0: replace-replica"), "\(status.combined)")
        // Nothing replaced before the window opens.
        #expect([Self.pid(repo.stateDir, "windowed", 0), Self.pid(repo.stateDir, "windowed", 1)] == before)
        #expect(await pollUntil(timeout: 75) {
            let now = [Self.pid(repo.stateDir, "windowed", 0), Self.pid(repo.stateDir, "windowed", 1)]
            return now[0] != before[0] && now[1] != before[1]
        }, "\(run.output)")
        let intents = entries(kind: "intent").filter { ($0["action"] as? String) == "replace-replica" }
        #expect(intents.count == 2)
        #expect(intents.allSatisfy { ($0["reason"] as? String)?.contains("(in window minute until ") == true }, "\(intents)")
        // Each wait recorded once, not once per pass.
        #expect(entries(kind: "window").filter { $0["action"] as? String == "wait" }.count == 2)
        #expect(run.stop() == 0, "\(run.output)")
    }
}
