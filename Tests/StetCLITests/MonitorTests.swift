import Foundation
import StetCore
import StetProviders
import StetTesting
import Testing

/// Monitors under `stet run`, alerting a real Alertmanager (Debian prometheus-alertmanager).
@Suite(.serialized) struct MonitorTests {
    var repo = RepositoryFixture()
    let ci = ["STET_KEY": "private/ci.key"]
    static let alertmanagerPort = 19193
    static let targetPort = 18310

    init() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        #expect(try stet("trust", "pin", environment: ci).status == 0)
        try repo.root.write("manifests/monitor.yaml", """
            apiVersion: stet/v1
            kind: Monitor
            metadata: {name: site-up}
            spec:
              probe:
                http: {url: "http://127.0.0.1:\(Self.targetPort)/", expectStatus: 200}
              interval: 300ms
              timeout: 250ms
              for: 2s
              severity: critical
              labels: {team: qa}
              notify: [am, journal]
            ---
            apiVersion: stet/v1
            kind: Notifier
            metadata: {name: am}
            spec:
              alertmanager: {url: "http://127.0.0.1:\(Self.alertmanagerPort)"}
            ---
            apiVersion: stet/v1
            kind: Notifier
            metadata: {name: journal}
            spec:
              log: {}

            """)
        try repo.sign(["alice"])
        try repo.root.write("am/am.yml", "route:\n  receiver: \"null\"\nreceivers:\n  - name: \"null\"\n")
    }

    func stet(_ arguments: String..., environment: [String: String] = [:]) throws -> ProcessOutput {
        try Binary.run(arguments, in: repo.root.path, environment: environment)
    }

    func startAlertmanager() throws -> BackgroundProcess {
        let alertmanager = try BackgroundProcess(
            try which("prometheus-alertmanager"),
            ["--config.file=am/am.yml", "--storage.path=am/data", "--web.listen-address=127.0.0.1:\(Self.alertmanagerPort)",
             "--cluster.listen-address="],
            in: repo.root.path)
        #expect(eventually { Self.alerts() != nil }, "\(alertmanager.output)")
        return alertmanager
    }

    /// Active alerts in Alertmanager, or nil when it does not answer.
    static func alerts() -> [[String: Any]]? {
        guard case .success(let response) = PlainHTTP.request("GET", "http://127.0.0.1:\(alertmanagerPort)/api/v2/alerts", timeout: 1),
            response.status == 200
        else { return nil }
        return try? JSONSerialization.jsonObject(with: response.body) as? [[String: Any]]
    }

    static func firing() -> [String: Any]? {
        alerts()?.first { ($0["labels"] as? [String: String])?["monitor"] == "site-up" }
    }

    func state() -> [String: Any]? {
        guard let data = repo.root.read(".stet/monitors.json"),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return nil }
        return (object["site-up"] as? [String: Any])?["state"] as? [String: Any]
    }

    @Test func aFailingProbeGoesPendingThenFiringThenResolvedInAlertmanager() throws {
        let alertmanager = try startAlertmanager()
        defer { alertmanager.stop() }
        let plan = try stet("plan")
        #expect(plan.stdout.contains("register-monitor site-up"), "\(plan.combined)")
        let run = try BackgroundProcess(Binary.stet, ["run", "--interval", "0.5"], in: repo.root.path, environment: ci)
        defer { run.stop() }
        #expect(eventually { state()?["phase"] as? String == "pending" }, "\(run.output)")
        #expect(Self.firing() == nil)
        #expect(eventually(timeout: 20) { Self.firing() != nil }, "\(run.output)")
        let alert = try #require(Self.firing())
        let labels = alert["labels"] as? [String: String]
        #expect(labels?["alertname"] == "StetMonitorFailing")
        #expect(labels?["severity"] == "critical")
        #expect(labels?["team"] == "qa")
        #expect((alert["annotations"] as? [String: String])?["summary"]?.contains("site-up is failing") == true)
        // Stet logs the alert once its send returns, which can be after Alertmanager shows it.
        #expect(eventually { run.output.contains("alert firing: StetMonitorFailing monitor=site-up") }, "\(run.output)")

        // The target comes back: resolved, and gone from Alertmanager's active alerts.
        let target = try BackgroundProcess(
            "/bin/sh", ["-c", "exec python3 -m http.server --bind 127.0.0.1 \(Self.targetPort)"], in: repo.root.path)
        defer { target.stop(SIGKILL) }
        #expect(eventually(timeout: 20) { Self.firing() == nil }, "\(run.output)")
        #expect(eventually { state()?["phase"] as? String == "inactive" })
        // The resolved notification says the monitor recovered, not that it is failing.
        #expect(eventually { run.output.contains("alert resolved: StetMonitorFailing monitor=site-up site-up recovered: ") }, "\(run.output)")
        #expect(!run.output.contains("alert resolved: StetMonitorFailing monitor=site-up site-up is failing"))
        #expect(run.stop() == 0)
    }

    @Test func aRestartKeepsThePendingTimerAndDoesNotFireAgain() throws {
        let alertmanager = try startAlertmanager()
        defer { alertmanager.stop() }
        var run = try BackgroundProcess(Binary.stet, ["run", "--interval", "0.5"], in: repo.root.path, environment: ci)
        #expect(eventually { state()?["phase"] as? String == "pending" }, "\(run.output)")
        let activeAt = try #require(state()?["activeAt"] as? String)
        #expect(run.stop() == 0)
        run = try BackgroundProcess(Binary.stet, ["run", "--interval", "0.5"], in: repo.root.path, environment: ci)
        defer { run.stop() }
        #expect(eventually(timeout: 20) { Self.firing() != nil }, "\(run.output)")
        #expect(state()?["activeAt"] as? String == activeAt)
        // Alertmanager's startsAt is the first failure, before the restart.
        let startsAt = try #require(Self.firing()?["startsAt"] as? String)
        #expect(startsAt.hasPrefix(String(activeAt.prefix(19))))
        let firedAt = try #require(state()?["firedAt"] as? String)
        #expect(run.stop() == 0)
        run = try BackgroundProcess(Binary.stet, ["run", "--interval", "0.5"], in: repo.root.path, environment: ci)
        usleep(1_500_000)
        #expect(state()?["phase"] as? String == "firing")
        #expect(state()?["firedAt"] as? String == firedAt)
        #expect(run.stop() == 0)
    }

    @Test func notificationsWaitForAnAlertmanagerThatIsDown() throws {
        let run = try BackgroundProcess(Binary.stet, ["run", "--interval", "0.5"], in: repo.root.path, environment: ci)
        defer { run.stop() }
        #expect(eventually(timeout: 20) { state()?["phase"] as? String == "firing" }, "\(run.output)")
        #expect(eventually { run.output.contains("notifier am failed") }, "\(run.output)")
        // Probing goes on meanwhile.
        let probed = state()?["lastProbe"] as? String
        #expect(eventually { (state()?["lastProbe"] as? String) != probed })
        let alertmanager = try startAlertmanager()
        defer { alertmanager.stop() }
        #expect(eventually(timeout: 30) { Self.firing() != nil }, "\(run.output)")
        #expect(run.stop() == 0)
    }

    @Test func aDrillReachesAlertmanagerAndIsAudited() throws {
        let alertmanager = try startAlertmanager()
        defer { alertmanager.stop() }
        // A drill is of the release in force.
        #expect(try stet("verify", "--accept", environment: ci).status == 0)
        let drill = try stet("drill", "monitor", "site-up", environment: ci)
        #expect(drill.status == 0, "\(drill.combined)")
        #expect(drill.stdout.contains("delivered  am: visible in"))
        #expect(drill.stdout.contains("delivered  journal"))
        let log = try stet("audit", "list", "--json").stdout
        #expect(log.contains(#""action":"drill""#) && log.contains(#""outcome":"ok""#))
        alertmanager.stop()
        // Down means no longer answering on its port, not only signalled.
        #expect(eventually { Self.alerts() == nil }, "\(alertmanager.output)")
        let down = try stet("drill", "monitor", "site-up", "--timeout", "1", environment: ci)
        #expect(down.status == 1)
        #expect(down.stdout.contains("failed  am"))
    }

    /// `spec.drill.every`: `stet run` sends the test alert on its own, confirmed in Alertmanager.
    @Test func aScheduledDrillReachesAlertmanager() throws {
        let text = try #require(repo.root.read("manifests/monitor.yaml").map { String(decoding: $0, as: UTF8.self) })
        try repo.root.write("manifests/monitor.yaml", text.replacingOccurrences(
            of: "  notify: [am, journal]\n", with: "  notify: [am, journal]\n  drill: {every: 2s}\n"))
        try repo.sign(["alice"])
        let alertmanager = try startAlertmanager()
        defer { alertmanager.stop() }
        let run = try BackgroundProcess(Binary.stet, ["run", "--interval", "0.5"], in: repo.root.path, environment: ci)
        defer { run.stop() }
        func verdicts() -> [[String: Any]] {
            let lines = (try? stet("audit", "list", "--kind", "drill", "--json").stdout) ?? ""
            return lines.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                .filter { $0["outcome"] as? String == "ok" }
        }
        #expect(eventually(timeout: 30) { !verdicts().isEmpty }, "\(run.output)")
        let evidence = verdicts().first?["reason"] as? String ?? ""
        #expect(evidence.contains("test alert delivered to am (visible in http://127.0.0.1:\(Self.alertmanagerPort)/api/v2/alerts)"),
                "\(evidence)")
        #expect(run.stop() == 0, "\(run.output)")
        let status = try stet("status", "--json")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
        let monitor = try #require((report["monitors"] as? [[String: Any]])?.first)
        #expect(((monitor["drill"] as? [String: Any])?["last"] as? [String: Any])?["ok"] as? Bool == true, "\(status.stdout)")
    }

    @Test func planWithoutALoopProbesOnceAndSaysSo() throws {
        let plan = try stet("plan")
        #expect(plan.stdout.contains("No `stet run` is running here"), "\(plan.combined)")
        #expect(plan.stdout.contains("Monitor/site-up  failing"))
    }
}
