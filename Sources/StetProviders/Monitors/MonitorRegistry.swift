public import Foundation
public import StetCore
import StetCrypto
public import StetState

/// The monitors the reconcile loop runs, with their alert states (`STATE/monitors.json`), so a
/// restart of `stet run` neither resets a pending timer nor fires a firing alert again.
///
/// Unregistering a monitor whose alert is firing resolves that alert, here and only here, at
/// every notifier that got it (`Entry.alert`, `Entry.sentTo`): so `apply --prune` and the
/// loop's pruning both close what they leave, and a receiver never keeps an alert about a
/// monitor that is gone.
public final class MonitorRegistry: Provider, @unchecked Sendable {
    public static let key = "monitors.json"
    public let store: any StateStore
    /// Hands a resolve to a notifier: nil when it was delivered (or queued, in `stet run`, behind
    /// the alerts already waiting for that notifier), otherwise why not.
    public let deliver: @Sendable ([AlertMessage], Notifier) -> String?
    private let lock = NSLock()

    /// `deliver` defaults to sending at once, each send bounded by the sender's timeout.
    public init(store: any StateStore, deliver: (@Sendable ([AlertMessage], Notifier) -> String?)? = nil) {
        self.store = store
        self.deliver = deliver ?? { alerts, notifier in NotifierSender(log: { _ in }).send(alerts, to: notifier) }
    }

    public struct Entry: Codable, Sendable, Equatable {
        public var specHash: String
        public var state: AlertState
        /// When the firing alert was last sent (re-sent well within Alertmanager's resolve timeout).
        public var lastSent: Date?
        /// The firing alert as it was sent, and the notifiers it was sent to (as the release that
        /// sent it declared them): what unregistering the monitor resolves. Nil when no alert is out.
        public var alert: AlertMessage?
        public var sentTo: [Notifier]?

        public init(specHash: String, state: AlertState, lastSent: Date?, alert: AlertMessage? = nil, sentTo: [Notifier]? = nil) {
            self.specHash = specHash
            self.state = state
            self.lastSent = lastSent
            self.alert = alert
            self.sentTo = sentTo
        }
    }

    /// The summary of a resolved alert: the monitor recovered (`detail`: how).
    public static func recoveredSummary(_ monitor: String, _ detail: String) -> String { "\(monitor) recovered: \(detail)" }

    public func load() throws -> [String: Entry] {
        try lock.withLock {
            guard let data = try store.read(Self.key) else { return [:] }
            do { return try JSONCoding.decoder.decode([String: Entry].self, from: data) } catch {
                throw StateError.corrupt(Self.key, "\(error)")
            }
        }
    }

    public func save(_ entries: [String: Entry]) throws {
        try lock.withLock { try store.write(Self.key, try JSONCoding.encoder.encode(entries)) }
    }

    public static func specHash(_ monitor: Monitor) -> String { Data(monitor.specText.utf8).sha256Reference }

    public func observe(_ desired: DesiredState, now: Date) async throws -> ObservedState {
        var observed = ObservedState()
        // A name Stet would not have registered is not a monitor: passed over.
        for (name, entry) in try load() where ResourceID.isValidName(name) {
            observed.monitors[name] = ObservedMonitor(name: name, specHash: entry.specHash, state: entry.state)
        }
        return observed
    }

    /// Registering a monitor as it is registered already, or unregistering one that is not,
    /// changes nothing and says so. A failure names the monitor (`ActionOutcome.naming`).
    public func perform(_ change: Change, desired: DesiredState) async -> ActionOutcome {
        await performing(change, desired: desired).naming(change)
    }

    private func performing(_ change: Change, desired: DesiredState) async -> ActionOutcome {
        guard case .monitor(let action) = change.action else { return .failed("not a monitor change") }
        let name = change.resource.name
        do {
            var entries = try load()
            switch action {
            case .registerMonitor, .updateMonitor:
                guard let monitor = desired.monitors[name] else { return .failed("not in the release") }
                var entry = entries[name] ?? Entry(specHash: "", state: AlertState(), lastSent: nil)
                guard entry.specHash != Self.specHash(monitor) else {
                    return .done(action == .registerMonitor ? "already registered" : "already up to date")
                }
                entry.specHash = Self.specHash(monitor)
                entries[name] = entry
                try save(entries)
                return .done(action == .registerMonitor ? "registered" : "updated; its alert state carries on")
            case .unregisterMonitor:
                guard let entry = entries[name] else { return .done("was not registered") }
                entries[name] = nil
                try save(entries)
                // Resolved once unregistered: a receiver never shows resolved what Stet still probes.
                return .done("unregistered" + resolve(entry, of: name, now: Date()))
            }
        } catch {
            return .failed("\(error)")
        }
    }

    /// Resolves the firing alert of an unregistered monitor at every notifier that got it, and
    /// says so (for the action's outcome). A notifier that cannot be reached is named; the
    /// monitor stays unregistered, since a receiver that is gone must not hold a removal back.
    private func resolve(_ entry: Entry, of name: String, now: Date) -> String {
        guard entry.state.phase == .firing, var alert = entry.alert, let notifiers = entry.sentTo, !notifiers.isEmpty else { return "" }
        alert.endsAt = RFC3339.format(now)
        alert.annotations["summary"] = Self.recoveredSummary(name, "unregistered, it is no longer in the release")
        var reached: [String] = []
        var failed: [String] = []
        for notifier in notifiers {
            if let problem = deliver([alert], notifier) { failed.append("\(notifier.metadata.name) (\(problem))") } else {
                reached.append(notifier.metadata.name)
            }
        }
        return (reached.isEmpty ? "" : "; resolve of its firing alert sent to \(reached.joined(separator: ", "))")
            + (failed.isEmpty ? "" : "; the resolve did not reach \(failed.joined(separator: ", "))")
    }
}
