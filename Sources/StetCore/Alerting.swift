public import Foundation

/// A monitor's alert as Prometheus defines its states: inactive → pending (first failure, at
/// `activeAt`) → firing (still failing `for` later) → resolved (back to inactive).
public struct AlertState: Codable, Hashable, Sendable {
    public enum Phase: String, Codable, Sendable {
        case inactive, pending, firing
    }

    public var phase: Phase
    /// When the failure that the alert is about began.
    public var activeAt: Date?
    /// The same moment on the boot clock: how long the failure has lasted is measured on it, so
    /// a wall clock stepped forward does not fire an alert early and one stepped back does not
    /// hold it (`for:`). Nil in states written before it was kept.
    public var activeSince: BootInstant?
    /// When it started firing.
    public var firedAt: Date?
    public var lastProbe: Date?
    public var lastOK: Bool?
    public var lastDetail: String?
    public var lastDurationMs: Int?

    public init(phase: Phase = .inactive) { self.phase = phase }

    /// What a probe result changes, for notifications.
    public enum Transition: Equatable, Sendable {
        case none
        case pending
        case firing
        case resolved
        /// Pending, then healthy again before `for`: nothing was ever sent.
        case cleared
    }

    /// Applies one probe result at `now` (and `boot`, the same moment on the boot clock).
    public mutating func record(
        ok: Bool, detail: String, durationMs: Int, at now: Date, boot: BootInstant = .now(), pendingFor: StetDuration
    ) -> Transition {
        lastProbe = now
        lastOK = ok
        lastDetail = detail
        lastDurationMs = durationMs
        switch (phase, ok) {
        case (.inactive, true), (.firing, false):
            return .none
        case (.inactive, false):
            activeAt = now
            activeSince = boot
            if pendingFor.milliseconds == 0 {
                phase = .firing
                firedAt = now
                return .firing
            }
            phase = .pending
            return .pending
        case (.pending, false):
            let failing: Double
            if let activeSince, !activeSince.boot.isEmpty, !boot.boot.isEmpty {
                guard let seconds = boot.seconds(since: activeSince) else {
                    // Pending since another boot: how long is unknown; counted from now.
                    self.activeSince = boot
                    return .none
                }
                failing = seconds
            } else {
                // Kept by an earlier Stet, or the boot id could not be read: the wall clock.
                guard let activeAt else { return .none }
                failing = now.timeIntervalSince(activeAt)
            }
            guard failing >= pendingFor.seconds else { return .none }
            phase = .firing
            firedAt = now
            return .firing
        case (.pending, true):
            phase = .inactive
            activeAt = nil
            activeSince = nil
            return .cleared
        case (.firing, true):
            phase = .inactive
            activeAt = nil
            activeSince = nil
            firedAt = nil
            return .resolved
        }
    }
}

/// One alert as receivers get it (Alertmanager's API v2 shape, used for every notifier).
public struct AlertMessage: Codable, Hashable, Sendable {
    public var labels: [String: String]
    public var annotations: [String: String]
    /// RFC 3339.
    public var startsAt: String
    /// Set when resolved (RFC 3339).
    public var endsAt: String?
    public var generatorURL: String?

    public init(labels: [String: String], annotations: [String: String], startsAt: String, endsAt: String? = nil) {
        self.labels = labels
        self.annotations = annotations
        self.startsAt = startsAt
        self.endsAt = endsAt
    }

    /// The labels of a monitor's alert: `alertname`, `monitor`, `severity` and its own labels.
    public static func labels(for monitor: Monitor) -> [String: String] {
        var labels = monitor.labels
        labels["alertname"] = "StetMonitorFailing"
        labels["monitor"] = monitor.metadata.name
        labels["severity"] = monitor.severity.rawValue
        return labels
    }
}
