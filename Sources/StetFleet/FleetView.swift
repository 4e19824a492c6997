public import Foundation
public import StetCore
public import StetManifest

/// The fleet as `stet status --cluster` and `stet apply --cluster` see it: one read of every key,
/// each value verified under the reader's trust policy as a node would. What does not verify is
/// listed as ignored, never shown as fact.
public struct FleetView: Sendable, Encodable {
    public struct Node: Sendable, Encodable {
        public var name: String
        public var labels: [String: String]
        public var leader: Bool
        /// Seconds the node's lease has left (nil: unknown).
        public var leaseLeft: Int?
        public var joinedAt: String
        public var status: NodeStatus?
        /// The workloads assigned to it, as `service/web/0`, `backup/NAME`, `monitor/NAME`.
        public var assigned: [String]
    }

    public var cluster: String
    public var reachable: Bool
    public var error: String?
    public var leader: String?
    public var epoch: Int64?
    public var release: ReleaseRef?
    public var releaseProblem: String?
    public var nodes: [Node]
    /// Assigned to a node whose lease is gone (it moves as soon as a leader sees it).
    public var orphaned: [String: String]
    /// Statuses of nodes that are not live: their last word.
    public var departed: [NodeStatus]
    /// Keys whose value does not verify, and why.
    public var ignored: [String: String]
    /// The primary of each active/passive service, as `primary/SERVICE` holds it.
    public var primaries: [String: PrimaryRecord] = [:]

    public static func read(client: EtcdClient, keyspace: FleetKeyspace, trust: TrustPolicy, scratch: String) async -> FleetView {
        var view = FleetView(
            cluster: keyspace.cluster, reachable: true, error: nil, leader: nil, epoch: nil, release: nil, releaseProblem: nil, nodes: [],
            orphaned: [:], departed: [], ignored: [:])
        let kvs: [EtcdClient.KeyValue]
        do {
            kvs = try await client.list(prefix: keyspace.prefix).kvs
        } catch {
            view.reachable = false
            view.error = "\(error)"
            return view
        }
        var records: [String: (NodeRecord, Int64)] = [:]
        var statuses: [String: NodeStatus] = [:]
        var assignments: [Workload: Assignment] = [:]
        var primaries: [String: (Data, Int64)] = [:]
        for kv in kvs {
            let shown = String(kv.key.dropFirst(keyspace.prefix.count))
            switch keyspace.parse(kv.key) {
            case .node(let name):
                switch FleetSigned.open(kv.value, type: FleetSigned.nodeType, as: NodeRecord.self, trust: trust) {
                case .success(let (record, signer)) where record.name == name && trust.keys[signer]?.publicKey.keyID == record.keyID
                    && kv.lease != 0 && kv.lease == record.lease:
                    records[name] = (record, kv.lease)
                case .success: view.ignored[shown] = "the record names another node"
                case .failure(let error): view.ignored[shown] = error.description
                }
            case .status(let name):
                switch FleetSigned.open(kv.value, type: FleetSigned.statusType, as: NodeStatus.self, trust: trust) {
                case .success(let (status, _)) where status.node == name: statuses[name] = status
                case .success: view.ignored[shown] = "the status names another node"
                case .failure(let error): view.ignored[shown] = error.description
                }
            case .assignment(let workload):
                switch FleetSigned.open(kv.value, type: FleetSigned.assignmentType, as: Assignment.self, trust: trust) {
                case .success(let (assignment, _)) where assignment.workload == workload.key: assignments[workload] = assignment
                case .success: view.ignored[shown] = "signed for another key"
                case .failure(let error): view.ignored[shown] = error.description
                }
            case .leader:
                if let name = String(data: kv.value, encoding: .utf8), ResourceID.isValidName(name) {
                    view.leader = name
                    view.epoch = kv.createRevision
                }
            case .primary(let service):
                primaries[service] = (kv.value, kv.lease)
            case .release, .switchover, .appliedPlan, .checkpoint, .cosignature, .drain, nil:
                break
            }
        }
        if let judged = try? await FleetPublish(client: client, keyspace: keyspace, trust: trust).inForce(scratch: scratch) {
            view.release = judged.release
            view.releaseProblem = judged.problem
        }
        for (service, (value, lease)) in primaries {
            if let record = PrimaryRecord.verified(value, lease: lease, service: service, trust: trust, liveKeyID: { records[$0]?.0.keyID }) {
                view.primaries[service] = record
            } else {
                view.ignored["primary/" + service] = "not a primary record signed by its node's key under its lease"
            }
        }
        for (name, (record, lease)) in records.sorted(by: { $0.key < $1.key }) {
            let left = lease == 0 ? nil : try? await client.timeToLive(lease)
            view.nodes.append(Node(
                name: name, labels: record.labels, leader: view.leader == name, leaseLeft: left ?? nil, joinedAt: record.joinedAt,
                status: statuses[name],
                assigned: assignments.filter { $0.value.node == name }.keys.sorted().map(\.key)))
        }
        for (workload, assignment) in assignments where records[assignment.node] == nil { view.orphaned[workload.key] = assignment.node }
        view.departed = statuses.filter { records[$0.key] == nil }.values.sorted { $0.node < $1.node }
        return view
    }

    /// Whether the fleet runs `release` as its assignments say: every live node reports it, every
    /// replica of every service is assigned to a live node, and each runs there.
    public func converged(on release: ReleaseRef, desired: DesiredState) -> (done: Bool, waitingFor: [String]) {
        var waiting: [String] = []
        for node in nodes where node.status?.release != release.digest {
            waiting.append("node \(node.name) to take release version \(release.version)")
        }
        var assignedTo: [String: String] = [:]
        for node in nodes { for key in node.assigned { assignedTo[key] = node.name } }
        for service in desired.services.values.sorted(by: { $0.metadata.name < $1.metadata.name }) {
            for index in 0..<max(service.replicas, 0) {
                let key = "service/\(service.metadata.name)/\(index)"
                guard let node = assignedTo[key] else {
                    waiting.append("\(key) to be assigned to a live node")
                    continue
                }
                if !(nodes.first { $0.name == node }?.status?.replicas.contains {
                    "service/\($0.service)/\($0.index)" == key && $0.state == "running"
                } ?? false) {
                    waiting.append("\(key) to run on \(node)")
                }
            }
        }
        return (waiting.isEmpty, waiting)
    }
}
