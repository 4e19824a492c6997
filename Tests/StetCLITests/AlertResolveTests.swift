import Foundation
import StetCore
import StetProviders
import StetTesting
import Testing

/// Alerts that close: a pruned monitor's firing alert and Stet's own alerts are resolved in a
/// real Alertmanager (Debian prometheus-alertmanager), which otherwise keeps showing them until
/// its resolve timeout (5 minutes), and webhook receivers for good.
@Suite(.serialized) struct AlertResolveTests {
    var repo = RepositoryFixture()
    let ci = ["STET_KEY": "private/ci.key"]
    static let alertmanagerPort = 19194
    /// Nothing listens here: the monitor's probe fails, and fires at once (`for: 0s`).
    static let deadPort = 18311

    static let notifiers = """
        apiVersion: stet/v1
        kind: Notifier
        metadata: {name: am}
        spec:
          alertmanager: {url: "http://127.0.0.1:\(alertmanagerPort)"}
        ---
        apiVersion: stet/v1
        kind: Notifier
        metadata: {name: journal}
        spec:
          log: {}

        """

    static let monitor = """
        apiVersion: stet/v1
        kind: Monitor
        metadata: {name: gone}
        spec:
          probe:
            tcp: {address: "127.0.0.1:\(deadPort)"}
          interval: 300ms
          timeout: 250ms
          for: 0s
          notify: [am, journal]

        """

    init() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        #expect(try stet("trust", "pin", environment: ci).status == 0)
        try repo.root.write("manifests/notifiers.yaml", Self.notifiers)
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

    /// Active alerts in Alertmanager (a resolved one is no longer listed), or nil when it does
    /// not answer.
    static func alerts() -> [[String: Any]]? {
        guard case .success(let response) = PlainHTTP.request("GET", "http://127.0.0.1:\(alertmanagerPort)/api/v2/alerts", timeout: 1),
            response.status == 200
        else { return nil }
        return try? JSONSerialization.jsonObject(with: response.body) as? [[String: Any]]
    }

    /// The active alert whose label `name` is `value`.
    static func active(_ name: String, _ value: String) -> [String: Any]? {
        alerts()?.first { ($0["labels"] as? [String: String])?[name] == value }
    }

    /// Registers the monitor `gone` and runs `stet run` until its alert fires in Alertmanager and
    /// the alert is saved with the notifiers that got it.
    func fireMonitor(prune: Bool) throws -> BackgroundProcess {
        try repo.root.write("manifests/monitor.yaml", Self.monitor)
        try repo.sign(["alice"])
        let run = try BackgroundProcess(
            Binary.stet, ["run", "--interval", "0.5"] + (prune ? ["--prune"] : []), in: repo.root.path, environment: ci)
        #expect(eventually(timeout: 20) { Self.active("monitor", "gone") != nil }, "\(run.output)")
        #expect(eventually { String(decoding: repo.root.read(".stet/monitors.json") ?? Data(), as: UTF8.self).contains("sentTo") })
        return run
    }

    /// Removes the monitor from the release (its notifiers stay) and signs version + 1.
    func removeMonitor() throws {
        try FileManager.default.removeItem(atPath: repo.root.file("manifests/monitor.yaml"))
        try repo.sign(["alice"])
    }

    @Test func applyPruneResolvesTheAlertOfAFiringMonitor() throws {
        let alertmanager = try startAlertmanager()
        defer { alertmanager.stop() }
        let run = try fireMonitor(prune: false)
        #expect(run.stop() == 0)
        try removeMonitor()
        // Still firing in Alertmanager: only the resolve can end it within its resolve timeout.
        #expect(Self.active("monitor", "gone") != nil)
        let apply = try stet("apply", "--prune", "--auto-approve", environment: ci)
        #expect(apply.status == 0, "\(apply.combined)")
        #expect(apply.stdout.contains("unregister-monitor"), "\(apply.combined)")
        #expect(apply.stdout.contains("resolve of its firing alert sent to am, journal"), "\(apply.combined)")
        #expect(apply.stderr.contains("alert resolved: StetMonitorFailing monitor=gone gone recovered: unregistered"), "\(apply.combined)")
        #expect(eventually(timeout: 20) { Self.active("monitor", "gone") == nil })
        #expect(!String(decoding: repo.root.read(".stet/monitors.json") ?? Data(), as: UTF8.self).contains("gone"))
    }

    @Test func theLoopPruningAFiringMonitorResolvesItsAlert() throws {
        let alertmanager = try startAlertmanager()
        defer { alertmanager.stop() }
        let run = try fireMonitor(prune: true)
        defer { run.stop() }
        try removeMonitor()
        #expect(eventually(timeout: 20) { run.output.contains("unregister-monitor") }, "\(run.output)")
        #expect(eventually(timeout: 20) { Self.active("monitor", "gone") == nil }, "\(run.output)")
        #expect(eventually { run.output.contains("alert resolved: StetMonitorFailing monitor=gone gone recovered: unregistered") }, "\(run.output)")
        #expect(run.stop() == 0)
    }

    @Test func aRefusedReleaseRaisesStetReleaseRefusedAndAGoodReleaseResolvesIt() throws {
        let alertmanager = try startAlertmanager()
        defer { alertmanager.stop() }
        try repo.sign(["alice"])
        let run = try BackgroundProcess(Binary.stet, ["run", "--interval", "0.5"], in: repo.root.path, environment: ci)
        defer { run.stop() }
        #expect(eventually { run.output.contains("accepted release version 1") }, "\(run.output)")
        // An edit nobody signed: refused, and alerted.
        try repo.root.write("manifests/notifiers.yaml", Self.notifiers + "# an unsigned edit\n")
        #expect(eventually(timeout: 20) { Self.active("alertname", "StetReleaseRefused") != nil }, "\(run.output)")
        let refused = try #require(Self.active("alertname", "StetReleaseRefused"))
        #expect((refused["labels"] as? [String: String])?["source"] == "stet")
        // Signed: accepted, and the refusal's alert resolved.
        try repo.sign(["alice"])
        #expect(eventually(timeout: 20) { run.output.contains("accepted release version 2") }, "\(run.output)")
        #expect(eventually(timeout: 20) { Self.active("alertname", "StetReleaseRefused") == nil }, "\(run.output)")
        #expect(eventually {
            run.output.contains("alert resolved: StetReleaseRefused StetReleaseRefused recovered: release version 2 is in force")
        }, "\(run.output)")
        #expect(run.stop() == 0)
    }
}
