import Foundation
import StetAudit
import StetCore
import StetCrypto
import StetEngine
import StetFleet
import StetProviders
import StetServer
import StetState

/// What `stet run --listen` serves: metrics and status of the loop's release and host, from what
/// the loop recorded and last observed. Building a snapshot reads the replica records (no health
/// check), the backups as the loop's last pass found them (no restic), the monitors' saved
/// states and the end of the audit log; the server builds one at most once per pass and second.
struct LoopStatus: StatusSource {
    let loop: ReconcileLoop
    let store: FileStateStore
    let audit: AuditLog

    var version: Int { loop.lastObservation.passes }

    func snapshot() async -> StatusSnapshot {
        let report = try? await loop.statusReport()
        let release = loop.current.release.version
        let entries = audit.size
        let counts = loop.monitors.queue.snapshot
        let notifications = (delivered: counts.delivered, failedAttempts: counts.failedAttempts, waiting: counts.waiting)
        let roles = PrimaryRoles.load(from: store)
        return StatusSnapshot(
            statusJSON: Self.json(report), page: statusPage(report, release: release, roles: roles),
            gauges: { metrics in
                Self.setGauges(metrics, report: report, release: release, auditEntries: entries, notifications: notifications)
                Self.setPrimaryGauges(metrics, roles: roles)
                if let report { Self.setDrillAndWindowGauges(metrics, report: report) }
            })
    }

    private static func setGauges(
        _ metrics: StetMetrics, report: StatusReport?, release: Int, auditEntries: Int,
        notifications: (delivered: Int, failedAttempts: Int, waiting: Int)
    ) {
        metrics.gauge("release_version", "Version of the release in force.").set(to: Double(release))
        metrics.gauge("audit_entries", "Entries in the audit log.").set(to: Double(auditEntries))
        metrics.gauge("notifications_delivered", "Notifications delivered since start.").set(to: Double(notifications.delivered))
        metrics.gauge("notifications_failed_attempts", "Failed delivery attempts since start.").set(to: Double(notifications.failedAttempts))
        metrics.gauge("notifications_waiting", "Notifications waiting for their receiver.").set(to: Double(notifications.waiting))
        guard let report else { return }
        for service in report.services {
            let labels = [("service", service.resource.name)]
            metrics.gauge("replicas_desired", "Replicas the release promises.", labels).set(to: Double(service.promised))
            metrics.gauge("replicas_ready", "Replicas running and passing their health check.", labels).set(to: Double(service.ready))
        }
        for backup in report.backups {
            let name = backup.resource.name
            metrics.gauge("backup_healthy", "1 when the newest snapshot is within the RPO and the last check and restore test passed.",
                          [("policy", name)]).set(to: backup.healthy ? 1 : 0)
            if let newest = backup.newest {
                metrics.gauge("backup_last_success_timestamp_seconds", "Time of the newest snapshot (Unix seconds).", [("policy", name)])
                    .set(to: newest.timeIntervalSince1970)
            }
        }
        for monitor in report.monitors {
            let name = monitor.resource.name
            guard let state = monitor.state else { continue }
            metrics.gauge("probe_success", "1 when the monitor's last probe succeeded.", [("monitor", name)]).set(to: state.lastOK == true ? 1 : 0)
            metrics.gauge("probe_duration_seconds", "Duration of the monitor's last probe.", [("monitor", name)])
                .set(to: Double(state.lastDurationMs ?? 0) / 1000)
            for phase in ["inactive", "pending", "firing"] {
                metrics.gauge("alert_state", "1 for the alert state the monitor is in.", [("monitor", name), ("state", phase)])
                    .set(to: state.phase.rawValue == phase ? 1 : 0)
            }
        }
    }

    /// In a fleet: which active/passive services this node is the primary of, and how long the
    /// last failover it took over lasted.
    private static func setPrimaryGauges(_ metrics: StetMetrics, roles: PrimaryRoles?) {
        guard let roles else { return }
        for service in Set(roles.held.keys).union(roles.lastFailover.keys) {
            metrics.gauge("primary", "1 while this node's replica is the primary of the active/passive service.", [("service", service)])
                .set(to: roles.held[service] != nil ? 1 : 0)
            if let last = roles.lastFailover[service] {
                metrics.gauge("failover_duration_seconds", "From the primary's key being free to this node's replica promoted, at the last failover.",
                              [("service", service)]).set(to: Double(last.durationMs) / 1000)
            }
        }
    }

    /// Each resource's last drill, and each maintenance window: open or not, when it opens next,
    /// and how many changes wait for it.
    private static func setDrillAndWindowGauges(_ metrics: StetMetrics, report: StatusReport) {
        let drills = report.services.compactMap { line in line.drill.map { (line.resource, $0) } }
            + report.monitors.compactMap { line in line.drill.map { (line.resource, $0) } }
        for (resource, drill) in drills {
            guard let last = drill.last else { continue }
            let labels = [("resource", resource.description)]
            metrics.gauge("drill_success", "1 when the resource's last drill passed.", labels).set(to: last.ok ? 1 : 0)
            metrics.gauge("drill_duration_seconds", "How long the resource's last drill took (a service: kill to healthy replacement).", labels)
                .set(to: last.seconds)
            metrics.gauge("drill_last_timestamp_seconds", "When the resource's last drill started (Unix seconds).", labels)
                .set(to: last.at.timeIntervalSince1970)
        }
        for window in report.windows {
            let labels = [("window", window.resource.name)]
            metrics.gauge("window_open", "1 while the maintenance window is open.", labels).set(to: window.open ? 1 : 0)
            if let next = window.nextOpening {
                metrics.gauge("window_next_open_timestamp_seconds", "When the maintenance window opens next (Unix seconds).", labels)
                    .set(to: next.timeIntervalSince1970)
            }
            metrics.gauge("window_waiting_changes", "Changes waiting for the maintenance window.", labels).set(to: Double(window.waiting.count))
        }
    }

    private static func json(_ report: StatusReport?) -> Data {
        guard let report else { return Data("{}".utf8) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return (try? encoder.encode(report)) ?? Data("{}".utf8)
    }

    private static func drillRow(_ resource: ResourceID, _ last: Drills.Verdict) -> StatusPage.Resource {
        StatusPage.Resource(
            name: "\(resource) drill", ok: last.ok, badge: last.ok ? "drill passed" : "drill failed",
            detail: "\(RFC3339.format(last.at)): \(last.detail)")
    }

    private func statusPage(_ report: StatusReport?, release: Int, roles: PrimaryRoles?) -> String {
        var resources: [StatusPage.Resource] = []
        for (service, held) in (roles?.held ?? [:]).sorted(by: { $0.key < $1.key }) {
            let last = roles?.lastFailover[service]
            resources.append(StatusPage.Resource(
                name: "service/\(service) primary", ok: true, badge: "primary: replica \(held.index)",
                detail: "since \(held.since)" + (last.map { "; last failover \($0.durationMs) ms" + ($0.from.map { " from \($0)" } ?? "") } ?? "")))
        }
        for service in report?.services ?? [] {
            resources.append(StatusPage.Resource(
                name: service.resource.description, ok: service.met, badge: "\(service.ready)/\(service.promised) ready",
                detail: service.status.lastAction.map { "\($0): \(service.status.lastOutcome ?? "")" } ?? ""))
        }
        for line in report?.services ?? [] {
            guard let drill = line.drill, let last = drill.last else { continue }
            resources.append(Self.drillRow(line.resource, last))
        }
        for window in report?.windows ?? [] {
            let state = window.open ? "open" + (window.closesText.map { " until \($0)" } ?? "")
                : "closed" + (window.nextOpeningText.map { ", opens \($0)" } ?? "")
            resources.append(StatusPage.Resource(
                name: window.resource.description, ok: !(window.open && window.mode == .deny), badge: "\(window.mode.rawValue): \(state)",
                detail: window.waiting.isEmpty ? "nothing waits for it" : "\(window.waiting.count) waiting: " + window.waiting.joined(separator: "; ")))
        }
        for backup in report?.backups ?? [] {
            resources.append(StatusPage.Resource(
                name: backup.resource.description, ok: backup.healthy, badge: backup.healthy ? "healthy" : "unhealthy",
                detail: backup.findings.joined(separator: "; ")))
        }
        for monitor in report?.monitors ?? [] {
            let phase = monitor.state?.phase.rawValue ?? "not registered"
            resources.append(StatusPage.Resource(
                name: monitor.resource.description, ok: phase == "inactive", badge: phase == "inactive" ? "ok" : phase,
                detail: monitor.state?.lastDetail ?? ""))
        }
        for line in report?.monitors ?? [] {
            guard let last = line.drill?.last else { continue }
            resources.append(Self.drillRow(line.resource, last))
        }
        let audit = AuditReader(store: store).tail(15).map { entry in
            StatusPage.AuditRow(
                seq: entry.seq, time: entry.time, kind: entry.kind.rawValue, resource: entry.resource ?? "",
                what: [entry.action, entry.outcome?.rawValue, entry.reason ?? entry.error].compactMap { $0 }.joined(separator: " · "))
        }
        return StatusPage.html(release: release, resources: resources, audit: audit)
    }
}
