import ArgumentParser
import Foundation
import StetCore
import StetEngine
import StetManifest
import StetProviders
import StetState

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show each resource's health as an outcome: what was promised, what runs.",
        discussion: """
            For each backup policy: healthy only when the newest snapshot is younger than the RPO \
            and the last check and restore test passed. For each service: replicas promised and \
            ready, and per replica its pid, port, health, restarts and last exit; the last action \
            Stet took; the reconcile loop's backoff and self-heal budget. Read-only.

            What was promised is the release in force: the copy kept in the state directory when \
            it was accepted, verified again under the pinned trust policy. The working directory's \
            manifests play no part (an unsigned edit there changes nothing until a release is \
            signed and applied), so status works from any directory with --state-dir.

            EXIT STATUS
              0   every promise is met
              1   error
              10  the copy of the release in force fails verification
              3   a promise is not met (fewer ready replicas than promised, a backup past its RPO
                  or whose last check or restore test failed)
            """
    )

    @OptionGroup var global: GlobalOptions

    struct ReplicaLine: Encodable {
        var index: Int
        var pid: Int32
        var port: Int?
        var status: String
        var health: String
        var restarts: Int
        var lastExit: String?
    }

    struct ServiceLine: Encodable {
        var resource: String
        var promised: Int
        var ready: Int
        var met: Bool
        var replicas: [ReplicaLine]
        var status: ResourceStatus
    }

    struct BackupLine: Encodable {
        var resource: String
        var healthy: Bool
        var findings: [String]
        var snapshots: Int
        /// The newest snapshot's time.
        var newest: Date?
        var status: ResourceStatus
    }

    struct MonitorLine: Encodable {
        var resource: String
        var registered: Bool
        var state: AlertState?
    }

    struct Report: Encodable {
        var services: [ServiceLine]
        var backups: [BackupLine]
        var monitors: [MonitorLine]
        var loopRunning: Bool
    }

    /// Everything `status` shows, observed now (each replica's health check run, each backup
    /// repository opened). The status server does not observe: it passes what the reconcile
    /// loop last observed and recorded to `report(desired:observed:store:)`.
    static func report(desired: DesiredState, store: FileStateStore) async throws -> Report {
        report(desired: desired, observed: try await HostProvider(store: store).observe(desired, now: Date()), store: store)
    }

    /// Everything `status` shows, from `observed`: for the command, `/status` and the status page.
    static func report(desired: DesiredState, observed: ObservedState, store: FileStateStore) -> Report {
        var lines: [ServiceLine] = []
        for name in Set(desired.services.keys).union(observed.services.keys).sorted() {
            let resource = ResourceID(.service, name).description
            let promised = desired.services[name]?.replicas ?? 0
            let replicas = (observed.services[name]?.replicas ?? [:]).values.sorted { $0.index < $1.index }
            let ready = observed.services[name]?.ready(promised: promised) ?? 0
            lines.append(ServiceLine(
                resource: resource, promised: promised, ready: ready, met: ready >= promised,
                replicas: replicas.map {
                    ReplicaLine(index: $0.index, pid: $0.pid, port: $0.port, status: $0.status.rawValue, health: $0.health.rawValue,
                                restarts: $0.restarts, lastExit: $0.lastExit)
                },
                status: ResourceStatus.load(resource, from: store)))
        }
        var backups: [BackupLine] = []
        for name in desired.backupPolicies.keys.sorted() {
            let resource = ResourceID(.backupPolicy, name).description
            let health = BackupHealth.evaluate(desired.backupPolicies[name]!, observed.backups[name], now: Date())
            backups.append(BackupLine(
                resource: resource, healthy: health.healthy, findings: health.findings,
                snapshots: observed.backups[name]?.snapshots.count ?? 0, newest: observed.backups[name]?.newest, status: ResourceStatus.load(resource, from: store)))
        }
        let monitors = desired.monitors.keys.sorted().map { name in
            MonitorLine(resource: ResourceID(.monitor, name).description, registered: observed.monitors[name] != nil,
                        state: observed.monitors[name]?.state)
        }
        return Report(
            services: lines, backups: backups, monitors: monitors, loopRunning: StateLock.isHeld(store: store, name: "run.lock"))
    }

    func run() async throws {
        let inForce = try ReleaseStore(store: global.store).inForce(trustFile: global.trust, now: Date())
        let report = try await Self.report(desired: inForce?.desired ?? DesiredState(), store: global.store)
        let (lines, backups, monitors, loopRunning) = (report.services, report.backups, report.monitors, report.loopRunning)
        let out = Terminal.standardOutput
        if global.json {
            out.json(report)
        } else {
            if let inForce {
                out.line("release    version \(inForce.accepted.version) (\(inForce.accepted.digest)), in force since \(RFC3339.format(inForce.accepted.acceptedAt))")
                for warning in inForce.release.report.warnings { out.warning(warning) }
            } else {
                out.line("No release is in force here yet: `stet apply` (or `stet verify --accept`) accepts one.")
            }
            for monitor in monitors {
                guard let state = monitor.state, monitor.registered else {
                    out.line("\(monitor.resource)  " + out.yellow("not registered") + " (apply the release; `stet run` probes it)")
                    continue
                }
                let phase = switch state.phase {
                case .inactive: out.green("ok")
                case .pending: out.yellow("pending") + (state.activeAt.map { " since \(RFC3339.format($0))" } ?? "")
                case .firing: out.red("firing") + (state.firedAt.map { " since \(RFC3339.format($0))" } ?? "")
                }
                out.line("\(monitor.resource)  \(phase)" + (state.lastDetail.map { "  last probe: \($0)" } ?? "")
                    + (state.lastProbe.map { " at \(RFC3339.format($0))" } ?? ""))
            }
            if !monitors.isEmpty && !loopRunning {
                out.line(out.yellow("No `stet run` is running here: monitors are not probed and alert no one."))
            }
            for backup in backups {
                out.line("\(backup.resource)  \(backup.healthy ? out.green("healthy") : out.red("unhealthy"))  \(backup.snapshots) snapshots")
                for finding in backup.findings { out.line("  \(finding)") }
                if let action = backup.status.lastAction {
                    out.line("  last action  \(action): \(backup.status.lastOutcome ?? "")" + (backup.status.lastError.map { " (\($0))" } ?? "")
                        + (backup.status.lastAt.map { " at \(RFC3339.format($0))" } ?? ""))
                }
            }
            for line in lines {
                let verdict = line.met ? out.green("met") : out.red("not met")
                out.line("\(line.resource)  \(line.ready)/\(line.promised) ready: \(verdict)")
                for replica in line.replicas {
                    let health = switch replica.health {
                    case "healthy": out.green(replica.health)
                    case "unhealthy": out.red(replica.health)
                    default: replica.health
                    }
                    out.line("  #\(replica.index)  pid \(replica.pid)" + (replica.port.map { "  port \($0)" } ?? "")
                        + "  \(replica.status)  \(health)  restarts \(replica.restarts)"
                        + (replica.status == "exited" ? "  \(replica.lastExit ?? "")" : ""))
                }
                if let action = line.status.lastAction {
                    out.line("  last action  \(action): \(line.status.lastOutcome ?? "")" + (line.status.lastError.map { " (\($0))" } ?? "")
                        + (line.status.lastAt.map { " at \(RFC3339.format($0))" } ?? ""))
                }
                if line.status.budgetExhausted == true {
                    out.line("  " + out.red("self-heal budget exhausted") + ": \(line.status.correctionsLastHour ?? 0) corrections in the last hour; Stet stopped correcting it")
                } else if let until = line.status.backoffUntil, until > Date() {
                    out.line("  backing off until \(RFC3339.format(until)) (\(line.status.backoffSeconds ?? 0) s)")
                }
            }
            if lines.isEmpty && backups.isEmpty { out.line("No services or backup policies.") }
        }
        if lines.contains(where: { !$0.met }) || backups.contains(where: { !$0.healthy }) {
            throw CommandFailure(status: ExitStatus.drift, message: nil)
        }
    }
}
