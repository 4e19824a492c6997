import Foundation
import StetCore
import StetProviders
import StetState
import Testing

/// Unregistering a monitor resolves the alert it has out, at every notifier that got it, once.
@Suite struct MonitorRegistryResolveTests {
    final class Deliveries: @unchecked Sendable {
        private let lock = NSLock()
        private var sent: [(AlertMessage, String)] = []
        func add(_ alerts: [AlertMessage], _ notifier: Notifier) { lock.withLock { sent += alerts.map { ($0, notifier.metadata.name) } } }
        var all: [(AlertMessage, String)] { lock.withLock { sent } }
    }

    static let unregister = Change(
        resource: ResourceID(.monitor, "site"), action: .monitor(.unregisterMonitor), cause: .config,
        reason: Reason("removed", "not in the release"), before: nil, after: nil, disruption: .none, precondition: "")

    static func notifier(_ name: String, _ target: Notifier.Target) -> Notifier { Notifier(metadata: Metadata(name: name), target: target) }

    func registry(_ entry: MonitorRegistry.Entry, failing: Set<String> = []) throws -> (MonitorRegistry, Deliveries) {
        let deliveries = Deliveries()
        let registry = MonitorRegistry(store: MemoryStateStore()) { alerts, notifier in
            if failing.contains(notifier.metadata.name) { return "refused" }
            deliveries.add(alerts, notifier)
            return nil
        }
        try registry.save(["site": entry])
        return (registry, deliveries)
    }

    static func firing() -> MonitorRegistry.Entry {
        var state = AlertState(phase: .firing)
        state.activeAt = Date(timeIntervalSince1970: 1_790_000_000)
        let alert = AlertMessage(
            labels: ["alertname": "StetMonitorFailing", "monitor": "site"], annotations: ["summary": "site is failing: refused"],
            startsAt: "2026-09-21T12:26:40Z")
        return MonitorRegistry.Entry(
            specHash: "sha256:1", state: state, lastSent: Date(), alert: alert,
            sentTo: [notifier("am", .alertmanager(url: "http://127.0.0.1:9")), notifier("journal", .log)])
    }

    @Test func unregisteringAFiringMonitorResolvesItsAlertAtEveryNotifierThatGotIt() async throws {
        let (registry, deliveries) = try registry(Self.firing())
        let outcome = await registry.perform(Self.unregister, desired: DesiredState())
        #expect(outcome.ok)
        #expect(outcome.detail == "unregistered; resolve of its firing alert sent to am, journal")
        #expect(deliveries.all.map(\.1) == ["am", "journal"])
        for (alert, _) in deliveries.all {
            #expect(alert.endsAt != nil)
            #expect(alert.startsAt == "2026-09-21T12:26:40Z")
            #expect(alert.labels == ["alertname": "StetMonitorFailing", "monitor": "site"])
            #expect(alert.annotations["summary"] == "site recovered: unregistered, it is no longer in the release")
        }
        #expect(try registry.load().isEmpty)
        // Once: unregistering again sends nothing.
        #expect(await registry.perform(Self.unregister, desired: DesiredState()).detail == "was not registered")
        #expect(deliveries.all.count == 2)
    }

    @Test func aNotifierThatCannotBeReachedIsNamedAndTheMonitorIsUnregisteredAnyway() async throws {
        let (registry, deliveries) = try registry(Self.firing(), failing: ["am"])
        let outcome = await registry.perform(Self.unregister, desired: DesiredState())
        #expect(outcome.ok)
        #expect(outcome.detail == "unregistered; resolve of its firing alert sent to journal; the resolve did not reach am (refused)")
        #expect(deliveries.all.map(\.1) == ["journal"])
        #expect(try registry.load().isEmpty)
    }

    @Test func aMonitorThatIsNotFiringSendsNothing() async throws {
        var pending = Self.firing()
        pending.state.phase = .pending
        pending.alert = nil
        let (registry, deliveries) = try registry(pending)
        #expect(await registry.perform(Self.unregister, desired: DesiredState()).detail == "unregistered")
        #expect(deliveries.all.isEmpty)
    }
}
