import Foundation
import StetCore
public import StetEngine
import StetProviders

/// A host drill (`spec.drill.host`, docs/architecture.md "Drills"): this node drills its own loss
/// for one service. A primary held here is handed over first, as a planned switchover that must
/// end in time (when another node runs a standby); then the node drains itself for the service
/// (`drains/SERVICE`, signed, on its lease, created only when absent: one host drill of a
/// service at a time), the leader places the service's replicas on other nodes, and the drill
/// proves that they are healthy there, and that another node holds the primary, in time. The drain is removed at the end, whatever happened; placement being
/// stable, the replicas stay where they moved.
extension FleetNode {
    /// Why a host drill of `name` cannot start now, or nil: the service must run a replica here,
    /// another live node must be able to run it, and every replica must run.
    public func hostDrillProblem(service name: String) -> (reason: String, busy: Bool)? {
        if let other = lock.withLock({ state.drains[name]?.subtracting([me]).sorted().first }) {
            // One host drill of a service at a time across the fleet (the drain key is created
            // only when absent, which settles a race; this spares the attempt).
            return ("node \(other) is drilling its loss for \(name)", true)
        }
        return problem(name).map { ($0, false) }
    }

    private func problem(_ name: String) -> String? {
        let (service, mine, others, lease) = lock.withLock { () -> (Service?, Int, Int, Int64?) in
            let service = state.release?.desired.services[name]
            let mine = replicasAssignedHere(name)
            let others = state.nodes.values.filter { node in
                node.name != me && (service?.placement ?? [:]).allSatisfy { node.labels[$0.key] == $0.value }
            }.count
            return (service, mine, others, state.lease)
        }
        guard let service else { return "service \(name) is not in the fleet's release" }
        guard mine > 0 else { return "no replica of \(name) is assigned to node \(me)" }
        guard others > 0 else { return "no other live node can run \(name): drilling the loss of \(me) would take it down" }
        guard lease != nil else { return "node \(me) holds no lease" }
        let healthy = healthyReplicas(name, replicas: service.replicas, including: true)
        guard healthy.count == service.replicas else {
            return "\(healthy.count) of \(service.replicas) replicas of \(name) are healthy in the fleet; a drill starts only when the service meets its promise"
        }
        return nil
    }

    public func drillHostLoss(service name: String, within bound: Double) async -> HostDrillOutcome {
        let started = Date()
        if let problem = hostDrillProblem(service: name) { return .notStarted(problem.reason, busy: problem.busy) }
        let (release, lease, held) = lock.withLock { (state.release?.desired, state.lease, state.primaries[name]) }
        guard let service = release?.services[name], let lease else { return .notStarted("the release or the lease changed") }
        var evidence: [String] = []
        // 1. A primary held here moves first, demoted before another node promotes, when another
        // node runs a standby to promote; otherwise it moves with the replicas (step 2).
        if let held, !healthyReplicas(name, replicas: service.replicas, including: false).isEmpty {
            let replicas = ReplicaProvider(store: store)
            await letGo(name, held, why: .release("host drill of \(name): planned switchover away from node \(me)"), replicas)
            var moved: (node: String, seconds: Double)?
            while Date().timeIntervalSince(started) < bound {
                if let record = currentPrimary(name), record.node != me {
                    moved = (record.node, Date().timeIntervalSince(started))
                    break
                }
                await Self.sleep(0.02)
            }
            guard let moved else {
                return HostDrillOutcome(ok: false, seconds: Date().timeIntervalSince(started),
                                        detail: "switchover: no other node's replica became the primary of \(name) within \(Drills.format(bound))")
            }
            evidence.append("switchover: primary on node \(moved.node) after \(Drills.format(moved.seconds))")
        }
        // 2. The node drains itself for the service; the leader moves the replicas.
        let until = RFC3339.format(Date().addingTimeInterval(bound + 30))
        let key = keys.drain(name)
        guard let sealed = try? FleetSigned.seal(DrainRecord(service: name, node: me, until: until), type: FleetSigned.drainType, key: self.key),
            let written = try? await client.transaction([.absent(key)], success: [.put(key, sealed, lease: lease)])
        else {
            return HostDrillOutcome(ok: false, seconds: Date().timeIntervalSince(started), detail: "could not write \(key) to etcd")
        }
        guard written.succeeded else { return .notStarted("another node is drilling its loss for \(name)", busy: true) }
        let drained = Date()
        var away: Double?
        while Date().timeIntervalSince(started) < bound {
            let here = lock.withLock { replicasAssignedHere(name) } > 0
            let primaryAway = service.failover == nil || currentPrimary(name).map { $0.node != me } ?? false
            if !here, primaryAway, healthyReplicas(name, replicas: service.replicas, including: false).count == service.replicas {
                away = Date().timeIntervalSince(drained)
                break
            }
            await Self.sleep(0.05)
        }
        // Only this drill's key: created by it, still under this node's lease.
        _ = try? await client.transaction([.createRevision(key, written.revision)], success: [.delete(key)])
        let seconds = Date().timeIntervalSince(started)
        guard let away else {
            let elsewhere = healthyReplicas(name, replicas: service.replicas, including: false)
            let primary = service.failover == nil ? "" : "; primary " + (currentPrimary(name).map { "on node \($0.node)" } ?? "held by no node")
            return HostDrillOutcome(ok: false, seconds: seconds, detail: (evidence + [
                "loss of node \(me): \(elsewhere.count) of \(service.replicas) replicas of \(name) healthy on other nodes within \(Drills.format(bound))"
                    + primary,
            ]).joined(separator: "; "))
        }
        let placed = healthyReplicas(name, replicas: service.replicas, including: false).sorted { $0.key < $1.key }
            .map { "\($0.key)→\($0.value)" }.joined(separator: ", ")
        let primary = service.failover == nil ? "" : currentPrimary(name).map { ", primary on node \($0.node)" } ?? ""
        evidence.append("loss of node \(me): every replica of \(name) healthy on other nodes \(Drills.format(away)) after the drain (\(placed)\(primary))")
        return HostDrillOutcome(ok: true, seconds: seconds, detail: evidence.joined(separator: "; "))
    }

    /// How many replicas of `service` the leader assigned to this node (under the lock).
    private func replicasAssignedHere(_ service: String) -> Int {
        state.accepted.filter { workload, assignment in
            guard case .replica(let name, _) = workload else { return false }
            return name == service && assignment.node == me
        }.count
    }

    /// The verified primary of `service` as etcd holds it now.
    private func currentPrimary(_ service: String) -> PrimaryRecord? {
        lock.withLock {
            guard let kv = state.mirror[keys.primary(service)] else { return nil }
            return verifiedPrimary(kv, service: service)
        }
    }

    /// Replica index → node, for the replicas of `service` that live nodes report healthy (their
    /// signed statuses), on other nodes only unless `including` this one.
    private func healthyReplicas(_ service: String, replicas: Int, including: Bool) -> [Int: String] {
        let (statuses, live) = lock.withLock { (state.mirror.filter { $0.key.hasPrefix(keys.statuses) }, state.nodes) }
        var found: [Int: String] = [:]
        for (key, kv) in statuses {
            guard case .status(let name) = keys.parse(key), including || name != me, live[name] != nil,
                case .success(let (status, signer)) = FleetSigned.open(kv.value, type: FleetSigned.statusType, as: NodeStatus.self, trust: trust),
                status.node == name, trust.keys[signer]?.publicKey.keyID == live[name]?.keyID
            else { continue }
            for replica in status.replicas where replica.service == service && replica.healthy == true && (0..<replicas).contains(replica.index) {
                found[replica.index] = name
            }
        }
        return found
    }

    /// The live nodes' drains, as the leader honours them (under the lock): signed by the node's
    /// own key, on its live lease, not past `until`.
    func readDrains() {
        var drains: [String: Set<String>] = [:]
        let now = Date()
        for (key, kv) in state.mirror {
            guard case .drain(let service) = keys.parse(key),
                case .success(let (drain, signer)) = FleetSigned.open(kv.value, type: FleetSigned.drainType, as: DrainRecord.self, trust: trust),
                drain.service == service, let record = state.nodes[drain.node], trust.keys[signer]?.publicKey.keyID == record.keyID,
                kv.lease != 0, kv.lease == record.lease, let until = RFC3339.parse(drain.until), until > now
            else { continue }
            drains[service, default: []].insert(drain.node)
        }
        state.drains = drains
    }
}
