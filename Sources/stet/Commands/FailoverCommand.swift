import ArgumentParser
import Foundation
import StetAudit
import StetCore
import StetCrypto
import StetFleet
import StetManifest

/// `stet failover SERVICE [--to NODE] --cluster URLS`: a planned switchover of an active/passive
/// service's primary, for maintenance. The operator's signed request goes to etcd; the node of the
/// primary demotes its replica first and only then lets `primary/SERVICE` go, so the next primary
/// is promoted after the old one stopped being one.
struct FailoverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "failover",
        abstract: "Move the primary of an active/passive service to another node (a planned switchover).",
        discussion: """
            For a Service with spec.failover (mode primary) in a fleet (--cluster). Stet writes a \
            switchover request signed by the operator key (--key or STET_KEY) to etcd. The node \
            holding the primary runs the service's demote command (killed at its timeout, then \
            the replica is stopped), then frees primary/SERVICE; the requested node (--to), or \
            else the healthiest standby, takes it and runs its promote command. There is never \
            a moment with two primaries. Stet waits until the new primary is promoted and says \
            how long it took. The request and its outcome are recorded in this host's audit log.

            EXIT STATUS
              0   the primary moved (or already runs on --to)
              1   error, or no new primary within --timeout
              10  refused (the key is not an operator key of the trust policy)
            """
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var key: KeyOption
    @OptionGroup var fleet: ClusterOptions

    @Argument(help: ArgumentHelp("The active/passive service.", valueName: "service"))
    var service: String

    @Option(help: ArgumentHelp("The node whose replica becomes the primary (default: the healthiest standby).", valueName: "node"))
    var to: String?

    @Option(help: ArgumentHelp("How long to wait for the new primary (a duration such as 30s).", valueName: "duration"))
    var timeout = "60s"

    func validate() throws {
        guard ResourceID.isValidName(service) else { throw ValidationError("\(service.prefix(80)): expected a service name (a DNS label)") }
        if let to, !ResourceID.isValidName(to) { throw ValidationError("--to \(to.prefix(80)): expected a node name (a DNS label)") }
        guard let limit = StetDuration(parsing: timeout), limit.seconds > 0, limit.seconds <= 3600 else {
            throw ValidationError("--timeout \(timeout.prefix(40)): expected a duration from 1s to 1h")
        }
        guard fleet.cluster != nil else { throw ValidationError("--cluster is required: a switchover moves a primary between fleet nodes") }
    }

    func run() async throws {
        let privateKey = try PrivateKey(contentsOfFile: try key.path())
        let trust = try FleetCommands.trust(global)
        let session = try OperatorSession(global: global, key: privateKey, policy: trust)
        defer { try? session.close() }
        let keyspace = try fleet.keyspace()
        let limit = StetDuration(parsing: timeout)?.seconds ?? 60
        let out = Terminal.standardOutput
        let view = try await FleetCommands.read(fleet, global)
        guard view.reachable else {
            throw CommandFailure(status: ExitStatus.error, message: "cluster \(keyspace.cluster): etcd is unreachable: \(view.error ?? "no answer")")
        }
        guard let old = view.primaries[service] else {
            throw CommandFailure(
                status: ExitStatus.error,
                message: "service \(service) has no primary in cluster \(keyspace.cluster) now: nothing to switch over "
                    + "(is it a Service with spec.failover, and does a replica run?)")
        }
        if let to {
            guard let node = view.nodes.first(where: { $0.name == to }) else {
                throw CommandFailure(status: ExitStatus.error, message: "--to \(to): no live node of that name in cluster \(keyspace.cluster)")
            }
            guard node.assigned.contains(where: { $0.hasPrefix("service/\(service)/") }) else {
                throw CommandFailure(status: ExitStatus.error, message: "--to \(to): the node runs no replica of \(service)")
            }
            if old.node == to {
                out.line("the primary of \(service) already runs on \(to) (replica \(old.index))")
                return
            }
        }
        let release = view.release ?? .none
        let resource = "service/\(service)"
        let reason = "switchover of the primary from node \(old.node)" + (to.map { " to node \($0)" } ?? "")
        _ = try session.log.append([AuditRecord(kind: .intent, release: release, resource: resource, action: "switchover", reason: reason)])
        let started = Date()
        let outcome: Result<PrimaryRecord, CommandFailure> = try await FleetCommands.withClient(fleet) { client in
            // The request lives on a lease of its own: it ends with the wait even if this command dies.
            let lease = try await client.grantLease(ttl: Int(limit.rounded(.up)) + 5)
            defer { Task { try? await client.revoke(lease.id) } }
            // The tenure to end: the key's creation as etcd holds it, still naming the primary read above.
            guard let current = try await client.get(keyspace.primary(service)),
                PrimaryRecord.verified(current.value, lease: current.lease, service: service, trust: trust, liveKeyID: { _ in nil }) == old
            else {
                return .failure(CommandFailure(status: ExitStatus.error, message: "the primary of \(service) changed meanwhile; look again (`stet status --cluster`)"))
            }
            let request = SwitchoverRequest(
                cluster: keyspace.cluster, service: service, to: to, fromNode: old.node, fromRevision: current.createRevision,
                id: String(format: "%08x%08x", UInt32.random(in: 0...UInt32.max), UInt32.random(in: 0...UInt32.max)),
                requestedAt: RFC3339.format(started, milliseconds: true))
            _ = try await client.put(keyspace.switchover(service), try FleetSigned.seal(request, type: FleetSigned.switchoverType, key: privateKey), lease: lease.id)
            out.line("asked node \(old.node) to hand the primary of \(service) over" + (to.map { " to \($0)" } ?? ""))
            let result = try await Self.waitForNewPrimary(client, keyspace, trust: trust, service: service, from: old, to: to, until: started.addingTimeInterval(limit))
            try? await client.revoke(lease.id)
            return result
        }
        let ms = Int(Date().timeIntervalSince(started) * 1000)
        switch outcome {
        case .success(let new):
            _ = try session.log.append([AuditRecord(
                kind: .result, release: release, resource: resource, action: "switchover", reason: reason, outcome: .ok, durationMs: ms)])
            if global.json {
                out.json(["service": service, "from": old.node, "to": new.node, "index": String(new.index), "durationMs": String(ms)])
            } else {
                out.line("the primary of \(service) is replica \(new.index) on node \(new.node) (was replica \(old.index) on \(old.node)), promoted "
                    + String(format: "%.2f s", Double(ms) / 1000) + " after the request")
            }
        case .failure(let failure):
            _ = try session.log.append([AuditRecord(
                kind: .result, release: release, resource: resource, action: "switchover", reason: reason, outcome: .failed,
                error: failure.message, durationMs: ms)])
            throw failure
        }
    }

    /// Polls etcd until `primary/SERVICE` names a node other than `from`'s (and `to`, when given)
    /// and that node's status says its replica is promoted.
    static func waitForNewPrimary(
        _ client: EtcdClient, _ keyspace: FleetKeyspace, trust: TrustPolicy, service: String, from: PrimaryRecord, to: String?, until deadline: Date
    ) async throws -> Result<PrimaryRecord, CommandFailure> {
        while Date() < deadline {
            if let kv = try? await client.get(keyspace.primary(service)),
                let record = PrimaryRecord.verified(kv.value, lease: kv.lease, service: service, trust: trust, liveKeyID: { _ in nil }),
                record.node != from.node || record.lease != from.lease, to == nil || record.node == to,
                let statusKV = try? await client.get(keyspace.status(record.node)),
                case .success(let (status, _)) = FleetSigned.open(statusKV.value, type: FleetSigned.statusType, as: NodeStatus.self, trust: trust),
                status.node == record.node, status.primaries?.contains(where: { $0.service == service && $0.index == record.index }) ?? false
            {
                return .success(record)
            }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        return .failure(CommandFailure(
            status: ExitStatus.error, message: "no new primary of \(service)" + (to.map { " on \($0)" } ?? "") + " was promoted in time"))
    }
}
