public import Foundation
public import StetCore
import StetCrypto
public import StetState

/// The monitors the reconcile loop runs, with their alert states (`STATE/monitors.json`), so a
/// restart of `stet run` neither resets a pending timer nor fires a firing alert again.
public final class MonitorRegistry: Provider, @unchecked Sendable {
    public static let key = "monitors.json"
    public let store: any StateStore
    private let lock = NSLock()

    public init(store: any StateStore) { self.store = store }

    public struct Entry: Codable, Sendable, Equatable {
        public var specHash: String
        public var state: AlertState
        /// When the firing alert was last sent (re-sent well within Alertmanager's resolve timeout).
        public var lastSent: Date?

        public init(specHash: String, state: AlertState, lastSent: Date?) {
            self.specHash = specHash
            self.state = state
            self.lastSent = lastSent
        }
    }

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
                guard entries[name] != nil else { return .done("was not registered") }
                entries[name] = nil
                try save(entries)
                return .done("unregistered")
            }
        } catch {
            return .failed("\(error)")
        }
    }
}
