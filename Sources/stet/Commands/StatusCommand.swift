import ArgumentParser
import Foundation
import StetAudit
import StetCore
import StetCrypto
import StetEngine
import StetFleet
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

            On a fleet node, status shows this host's share and whether it acts. With --cluster \
            URL: the fleet as etcd holds it, every value verified under this host's trust policy: \
            nodes, labels, lease time left, the leader and its epoch, what each node is assigned \
            and runs, nodes that are down, and values that do not verify (ignored, and said).

            --export FILE also writes what was observed, signed by the operator key (--key or \
            STET_KEY), with the time, this host's name and the release in force: CI plans a pull \
            request against it (`stet plan --proposal DIR --observed FILE`) without access to the \
            host. The export is recorded in the audit log (action export-status).

            EXIT STATUS
              0   every promise is met
              1   error
              10  the copy of the release in force fails verification
              3   a promise is not met (fewer ready replicas than promised, a backup past its RPO
                  or whose last check or restore test failed)
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("Also write the observed state, signed, to FILE (for `stet plan --proposal --observed`).", valueName: "file"))
    var export: String?

    @OptionGroup var key: KeyOption

    @OptionGroup var fleet: ClusterOptions

    /// `drill  passed 2026-12-01T02:00:03Z in 0.64s; next 2026-12-08T02:00:03Z` (or FAILED, with why).
    func drillText(_ resource: ResourceID?, _ drill: StatusReport.DrillLine, _ out: Terminal) -> String {
        var text = (resource.map { "\($0)  " } ?? "") + "drill  "
        if let last = drill.last {
            text += (last.ok ? out.green("passed") : out.red("FAILED")) + " \(RFC3339.format(last.at)) in \(String(format: "%.2f", last.seconds))s"
            if !last.ok { text += ": \(TextEscaping.escape(last.detail))" }
        } else {
            text += "none yet"
        }
        if let next = drill.next { text += "; next \(RFC3339.format(next))" }
        return text
    }

    func run() async throws {
        if fleet.cluster != nil {
            let view = try await FleetCommands.read(fleet, global)
            FleetCommands.printStatus(view, json: global.json)
            if !view.reachable { throw CommandFailure(status: ExitStatus.error, message: nil) }
            return
        }
        // The key is checked before anything is observed: a missing one is said at once.
        let exportKey = try export.map { _ in try PrivateKey(contentsOfFile: try key.path()) }
        let inForce = try ReleaseStore(store: global.store).inForce(trustFile: global.trust, now: Date())
        let now = Date()
        // A fleet node shows its own share (`stet status --cluster` shows the fleet).
        let share = FleetShare.load(from: global.store)
        let desired = share.map { $0.apply(to: inForce?.desired ?? DesiredState()) } ?? inForce?.desired ?? DesiredState()
        let observed = try await HostProvider(store: global.store).observe(desired, now: now)
        let report = StatusReport(desired: desired, observed: observed, store: global.store, now: now)
        if let export, let privateKey = exportKey {
            let session = try OperatorSession(global: global, key: privateKey, policy: nil)
            let snapshot = ObservedSnapshot(
                observed: observed, release: inForce?.accepted.release ?? ReleaseRef.none, host: Checkpoint.hostName, createdAt: now)
            try snapshot.export(to: export, key: privateKey, audit: session.log)
            try session.close()
        }
        let (lines, backups, monitors, loopRunning) = (report.services, report.backups, report.monitors, report.loopRunning)
        let out = Terminal.standardOutput
        if global.json {
            out.json(report)
        } else {
            if let share {
                out.line("fleet      node \(share.node) of cluster \(share.cluster): this host's share (`stet status --cluster URL` for the fleet)")
                if !share.acting {
                    out.warning("not acting since \(share.since): \(share.reason ?? "the fleet lease is not renewed"); what runs keeps running, nothing is started or stopped")
                }
                for (service, held) in (PrimaryRoles.load(from: global.store)?.held ?? [:]).sorted(by: { $0.key < $1.key }) {
                    out.line("primary    service/\(service): replica \(held.index) on this node since \(held.since)")
                }
            }
            if let inForce {
                out.line("release    version \(inForce.accepted.version) (\(inForce.accepted.digest)), in force since \(RFC3339.format(inForce.accepted.acceptedAt))")
                for warning in inForce.release.report.warnings { out.warning(warning) }
            } else {
                out.line("No release is in force here yet: `stet apply` (or `stet verify --accept`) accepts one.")
            }
            for window in report.windows {
                let state = window.open
                    ? (window.mode == .deny ? out.red("open (deny)") : out.green("open")) + (window.closesText.map { " until \($0)" } ?? "")
                    : "closed" + (window.nextOpeningText.map { ", opens \($0)" } ?? "")
                out.line("\(window.resource)  \(window.mode.rawValue)  \(state)")
                for waiting in window.waiting { out.line("  waiting  \(waiting)") }
            }
            for monitor in monitors {
                if let drill = monitor.drill { out.line(drillText(monitor.resource, drill, out)) }
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
                if let drill = line.drill { out.line("  " + drillText(nil, drill, out)) }
                if line.status.budgetExhausted == true {
                    out.line("  " + out.red("self-heal budget exhausted") + ": \(line.status.correctionsLastHour ?? 0) corrections in the last hour; Stet stopped correcting it")
                } else if let until = line.status.backoffUntil, until > Date() {
                    out.line("  backing off until \(RFC3339.format(until)) (\(line.status.backoffSeconds ?? 0) s)")
                }
            }
            if lines.isEmpty && backups.isEmpty { out.line("No services or backup policies.") }
            if let export { out.line("Observed state exported to \(export), signed.") }
        }
        if !report.promisesMet {
            throw CommandFailure(status: ExitStatus.drift, message: nil)
        }
    }
}
