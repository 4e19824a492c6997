import Foundation
import StetAudit
import StetCore
import StetCrypto
import StetEngine
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
        let desired = loop.current.desired
        let report = try? await observedReport(desired)
        let release = loop.current.release.version
        let entries = audit.size
        let counts = loop.monitors.queue.snapshot
        let notifications = (delivered: counts.delivered, failedAttempts: counts.failedAttempts, waiting: counts.waiting)
        return StatusSnapshot(
            statusJSON: Self.json(report), page: statusPage(report, release: release),
            gauges: { metrics in
                Self.setGauges(metrics, report: report, release: release, auditEntries: entries, notifications: notifications)
            })
    }

    /// The status report from the loop's records and last observation; observes nothing.
    private func observedReport(_ desired: DesiredState) async throws -> StatusCommand.Report {
        var replicas = ReplicaProvider(store: store)
        replicas.checkHealth = false
        var observed = try await replicas.observe(desired, now: Date())
        observed.backups = loop.lastObservation.backups
        observed.monitors = try await MonitorRegistry(store: store).observe(desired, now: Date()).monitors
        return StatusCommand.report(desired: desired, observed: observed, store: store)
    }

    private static func setGauges(
        _ metrics: StetMetrics, report: StatusCommand.Report?, release: Int, auditEntries: Int,
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

    private static func json(_ report: StatusCommand.Report?) -> Data {
        guard let report else { return Data("{}".utf8) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return (try? encoder.encode(report)) ?? Data("{}".utf8)
    }

    private func statusPage(_ report: StatusCommand.Report?, release: Int) -> String {
        func html(_ text: String) -> String {
            text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
        }
        func badge(_ ok: Bool, _ text: String) -> String { "<span class=\"\(ok ? "ok" : "bad")\">\(html(text))</span>" }
        var rows: [String] = []
        for service in report?.services ?? [] {
            rows.append("<tr><td>\(html(service.resource.description))</td><td>\(badge(service.met, "\(service.ready)/\(service.promised) ready"))</td><td>"
                + html(service.status.lastAction.map { "\($0): \(service.status.lastOutcome ?? "")" } ?? "") + "</td></tr>")
        }
        for backup in report?.backups ?? [] {
            rows.append("<tr><td>\(html(backup.resource.description))</td><td>\(badge(backup.healthy, backup.healthy ? "healthy" : "unhealthy"))</td><td>"
                + html(backup.findings.joined(separator: "; ")) + "</td></tr>")
        }
        for monitor in report?.monitors ?? [] {
            let phase = monitor.state?.phase.rawValue ?? "not registered"
            rows.append("<tr><td>\(html(monitor.resource.description))</td><td>\(badge(phase == "inactive", phase == "inactive" ? "ok" : phase))</td><td>"
                + html(monitor.state?.lastDetail ?? "") + "</td></tr>")
        }
        let tail = Self.auditTail(store: store, count: 15).map { entry in
            "<tr><td>\(entry.seq)</td><td>\(html(entry.time))</td><td>\(html(entry.kind.rawValue))</td><td>\(html(entry.resource ?? ""))</td><td>"
                + html([entry.action, entry.outcome?.rawValue, entry.reason ?? entry.error].compactMap { $0 }.joined(separator: " · ")) + "</td></tr>"
        }
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>stet status</title>
            <style>
            body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
            table{border-collapse:collapse;margin-bottom:2em}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}
            .ok{color:#0a0;font-weight:600}.bad{color:#c00;font-weight:600}h1{font-size:20px}td:nth-child(2){white-space:nowrap}
            </style></head><body>
            <h1>stet — release version \(release)</h1>
            <table><tr><th>resource</th><th>health</th><th>detail</th></tr>
            \(rows.joined(separator: "\n"))
            </table>
            <h2>audit log, newest last</h2>
            <table><tr><th>seq</th><th>time</th><th>kind</th><th>resource</th><th>what</th></tr>
            \(tail.joined(separator: "\n"))
            </table></body></html>
            """
    }

    /// The last `count` entries, read from the end of the log file only.
    static func auditTail(store: FileStateStore, count: Int) -> [AuditEntry] {
        guard let fd = try? store.open(AuditLog.logKey, flags: O_RDONLY) else { return [] }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        let size = (try? handle.seekToEnd()) ?? 0
        let start = size > 262_144 ? size - 262_144 : 0
        try? handle.seek(toOffset: start)
        let data = (try? handle.readToEnd()) ?? Data()
        var lines = data.split(separator: 0x0A)
        if start > 0, !lines.isEmpty { lines.removeFirst() }
        return lines.suffix(count).compactMap { line in
            guard let envelope = try? Envelope(json: Data(line)) else { return nil }
            return try? AuditEntry.decode(payload: envelope.payload)
        }
    }
}
