import Foundation
import StetCore
import StetEngine
import StetProviders
import StetState
import StetTesting
import Testing

/// Stet's own alerts fire while their condition holds and resolve, saying they recovered,
/// when it clears; through the notifiers' queue, here to a `log` notifier.
@Suite struct SelfAlertsTests {
    final class Lines: @unchecked Sendable {
        private let lock = NSLock()
        private var lines: [String] = []
        func add(_ line: String) { lock.withLock { lines.append(line) } }
        var all: [String] { lock.withLock { lines } }
    }

    let lines = Lines()
    let engine: MonitorEngine
    let desired: DesiredState

    init() {
        let store = MemoryStateStore()
        let lines = self.lines
        engine = MonitorEngine(
            store: store, replicas: ReplicaProvider(store: store), backups: BackupProvider(store: store), log: { lines.add($0) })
        var desired = DesiredState()
        desired.notifiers["journal"] = Notifier(metadata: Metadata(name: "journal"), target: .log)
        self.desired = desired
    }

    @Test func aSelfAlertFiresUntilItsConditionClearsThenSaysItRecovered() {
        let refused = SelfAlert(.releaseRefused)
        // Nothing fires: nothing to resolve.
        engine.selfAlerts.resolve(refused, detail: "release version 1 is in force")
        engine.selfAlerts.raise(refused, summary: "stet refused the release in manifests: file-modified", desired: desired)
        #expect(eventually { lines.all.contains("alert firing: StetReleaseRefused stet refused the release in manifests: file-modified") })
        #expect(engine.selfAlerts.active == [refused])
        // Sent again while it holds.
        engine.selfAlerts.resendInterval = 0
        engine.selfAlerts.resendDue()
        #expect(eventually { lines.all.filter { $0.hasPrefix("alert firing: StetReleaseRefused") }.count == 2 })
        engine.selfAlerts.resolve(refused, detail: "release version 2 is in force")
        #expect(eventually { lines.all.contains("alert resolved: StetReleaseRefused StetReleaseRefused recovered: release version 2 is in force") })
        #expect(engine.selfAlerts.active.isEmpty)
        #expect(lines.all.filter { $0.hasPrefix("alert resolved") }.count == 1)
    }

    @Test func alertsPerResourceAreKeptApart() {
        let web = SelfAlert(.providerFailing, resource: ResourceID(.service, "web"))
        let db = SelfAlert(.providerFailing, resource: ResourceID(.service, "db"))
        #expect(web.labels["resource"] == "Service/web" && web.labels["source"] == "stet")
        engine.selfAlerts.raise(web, summary: "Service/web failed three times running", desired: desired)
        engine.selfAlerts.raise(db, summary: "Service/db failed three times running", desired: desired)
        engine.selfAlerts.resolve(web, detail: "start-replica of Service/web#0 succeeded")
        #expect(engine.selfAlerts.active == [db])
        #expect(eventually { lines.all.contains { $0.hasPrefix("alert resolved: StetProviderFailing") } })
    }
}
