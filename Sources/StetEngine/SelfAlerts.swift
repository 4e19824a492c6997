public import Foundation
public import StetCore

/// An alert about Stet itself (`source=stet`): what it is about, not what it says.
public struct SelfAlert: Hashable, Sendable {
    public enum Name: String, Sendable {
        /// A release (at the source, or the copy in force) that Stet cannot take.
        case releaseRefused = "StetReleaseRefused"
        /// A resource's corrections reached the self-heal budget.
        case budgetExhausted = "StetSelfHealBudgetExhausted"
        /// A resource's actions failed three times running.
        case providerFailing = "StetProviderFailing"
        /// The audit log was damaged and restarted after it.
        case auditDamaged = "StetAuditDamaged"
        /// A fleet node's lease expired (host dead or cut off), raised by a surviving node.
        case nodeDown = "StetNodeDown"
        /// This node cannot reach etcd or renew its lease: it starts and stops nothing.
        case fleetUnreachable = "StetFleetUnreachable"
        /// A release in etcd that this node refused (unsigned, rolled back, or not a release).
        case fleetReleaseRefused = "StetFleetReleaseRefused"
        /// A peer's audit log is not consistent with what this node witnessed of it (truncated or
        /// rewritten): raised by the witness, naming the node.
        case auditFork = "StetAuditFork"
        /// A drill of a resource failed: its promise did not hold when tested.
        case drillFailed = "StetDrillFailed"
        /// A change started in a maintenance window ran past its close.
        case windowOverrun = "StetWindowOverrun"
    }

    public let name: Name
    /// The resource it is about, for alerts kept per resource (a label of its own, so the
    /// alerts of two resources are two alerts).
    public let resource: ResourceID?
    /// The fleet node it is about (`StetNodeDown`), a label of its own.
    public let node: String?

    public init(_ name: Name, resource: ResourceID? = nil, node: String? = nil) {
        self.name = name
        self.resource = resource
        self.node = node
    }

    public var labels: [String: String] {
        var labels = ["alertname": name.rawValue, "severity": "critical", "source": "stet"]
        if let resource { labels["resource"] = resource.description }
        if let node { labels["node"] = node }
        return labels
    }
}

/// The self alerts that are firing, each about a condition: raised when it starts (to every
/// notifier of the release in force), sent again every `resendInterval` while it holds, so
/// Alertmanager keeps it past its resolve timeout, and resolved when it clears, to the
/// notifiers that got it, with a summary that says it recovered and how. Raising an alert that
/// fires already sends its new summary; resolving one that does not fire does nothing.
///
/// Kept in memory: a restarted `stet run` raises again what still holds.
public final class SelfAlerts: @unchecked Sendable {
    struct Firing {
        var message: AlertMessage
        var notifiers: [Notifier]
        var lastSent: Date
    }

    private let queue: NotificationQueue
    private let lock = NSLock()
    private var firing: [SelfAlert: Firing] = [:]
    /// A firing self alert is sent again this often.
    public var resendInterval: Double = 60

    init(queue: NotificationQueue) { self.queue = queue }

    /// The self alerts firing now.
    public var active: [SelfAlert] { lock.withLock { Array(firing.keys) } }

    public func raise(_ alert: SelfAlert, summary: String, desired: DesiredState, now: Date = Date()) {
        let notifiers = desired.notifiers.values.sorted { $0.metadata.name < $1.metadata.name }
        let message = lock.withLock { () -> AlertMessage in
            let startsAt = firing[alert]?.message.startsAt ?? RFC3339.format(now)
            let message = AlertMessage(labels: alert.labels, annotations: ["summary": summary], startsAt: startsAt)
            firing[alert] = Firing(message: message, notifiers: notifiers, lastSent: now)
            return message
        }
        for notifier in notifiers { queue.enqueue([message], to: notifier) }
    }

    /// The condition of `alert` cleared; `detail` says how.
    public func resolve(_ alert: SelfAlert, detail: String, now: Date = Date()) {
        guard let resolved = lock.withLock({ firing.removeValue(forKey: alert) }) else { return }
        var message = resolved.message
        message.endsAt = RFC3339.format(now)
        message.annotations["summary"] = "\(alert.name.rawValue) recovered: \(detail)"
        for notifier in resolved.notifiers { queue.enqueue([message], to: notifier) }
    }

    /// Sends again every firing self alert last sent `resendInterval` ago or more.
    public func resendDue(now: Date = Date()) {
        let due = lock.withLock { () -> [(AlertMessage, [Notifier])] in
            var due: [(AlertMessage, [Notifier])] = []
            for (alert, value) in firing where now.timeIntervalSince(value.lastSent) >= resendInterval {
                firing[alert]?.lastSent = now
                due.append((value.message, value.notifiers))
            }
            return due
        }
        for (message, notifiers) in due {
            for notifier in notifiers { queue.enqueue([message], to: notifier) }
        }
    }
}
