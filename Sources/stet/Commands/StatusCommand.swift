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
            For each service of the accepted release: replicas promised and ready, and per replica \
            its pid, port, health, restarts and last exit; the last action Stet took; the reconcile \
            loop's backoff and self-heal budget. Read-only.

            EXIT STATUS
              0   every promise is met
              1   error
              3   a promise is not met (fewer ready replicas than promised)
            """
    )

    @OptionGroup var planning: PlanningOptions

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

    func run() async throws {
        let gate = ReleaseGate(manifests: planning.manifests, trustFile: global.trust, store: global.store)
        let desired = try gate.open(accept: false, now: Date()).desired
        let provider = ReplicaProvider(store: global.store)
        let observed = try await provider.observe(desired, now: Date())
        var lines: [ServiceLine] = []
        for name in Set(desired.services.keys).union(observed.services.keys).sorted() {
            let resource = ResourceID(.service, name).description
            let promised = desired.services[name]?.replicas ?? 0
            let replicas = (observed.services[name]?.replicas ?? [:]).values.sorted { $0.index < $1.index }
            let ready = replicas.filter { $0.index < promised && $0.status == .running && ($0.health == .healthy || $0.health == .unchecked) }.count
            lines.append(ServiceLine(
                resource: resource, promised: promised, ready: ready, met: ready >= promised,
                replicas: replicas.map {
                    ReplicaLine(index: $0.index, pid: $0.pid, port: $0.port, status: $0.status.rawValue, health: $0.health.rawValue,
                                restarts: $0.restarts, lastExit: $0.lastExit)
                },
                status: ResourceStatus.load(resource, from: global.store)))
        }
        let out = Terminal.standardOutput
        if global.json {
            out.json(lines)
        } else {
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
            if lines.isEmpty { out.line("No services.") }
        }
        if lines.contains(where: { !$0.met }) { throw CommandFailure(status: ExitStatus.drift, message: nil) }
    }
}
