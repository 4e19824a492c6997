public import Foundation
public import StetCrypto
public import StetManifest
public import StetCore
public import StetEngine
public import StetState

/// What nodes publish in etcd, each a DSSE envelope signed by the node's own key: its record
/// (`nodes/NAME`), its status (`status/NAME`) and, as leader, the assignments. A reader opens
/// one only with a key of the `node` role of its own pinned trust policy: etcd is transport,
/// never trust.
public enum FleetSigned {
    public static let nodeType = "application/vnd.stet.fleet-node+json"
    public static let assignmentType = "application/vnd.stet.fleet-assignment+json"
    public static let statusType = "application/vnd.stet.fleet-status+json"
    public static let primaryType = "application/vnd.stet.fleet-primary+json"
    public static let switchoverType = "application/vnd.stet.fleet-switchover+json"
    public static let appliedPlanType = "application/vnd.stet.fleet-applied-plan+json"
    public static let drainType = "application/vnd.stet.fleet-drain+json"

    public static func seal<T: Encodable>(_ value: T, type: String, key: PrivateKey) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var envelope = Envelope(payloadType: type, payload: try encoder.encode(value))
        try envelope.sign(with: key)
        return envelope.json()
    }

    /// The payload and the name of the node key that signed it, or why it cannot be taken.
    /// `role` is the trust role whose keys may sign it: `node`, or `operator` for an operator's
    /// request (`stet failover`).
    public static func open<T: Decodable>(
        _ data: Data, type: String, as: T.Type, trust: TrustPolicy, role: TrustPolicy.Role = .node
    ) -> Result<(T, String), FleetError> {
        let envelope: Envelope
        do {
            envelope = try Envelope(json: data)
        } catch {
            return .failure(FleetError("not a DSSE envelope: \(error)"))
        }
        guard envelope.payloadType == type else {
            return .failure(FleetError("payload type \"\(envelope.payloadType.prefix(80))\", expected \(type)"))
        }
        let roleKeys = trust.keys(in: role)
        guard let signer = envelope.validSigners(among: roleKeys.map(\.publicKey)).first,
            let name = roleKeys.first(where: { $0.publicKey == signer })?.name
        else {
            return .failure(FleetError("not signed by a\(role == .operator ? "n" : "") \(role.rawValue) key of the trust policy in force (version \(trust.version))"))
        }
        do {
            return .success((try JSONDecoder().decode(T.self, from: envelope.payload), name))
        } catch {
            return .failure(FleetError("signed by \(role.rawValue) key \(name), but the payload is not what it should be: \(error)"))
        }
    }
}

/// `nodes/NAME`: a node that is alive (the key is held by its lease).
public struct NodeRecord: Codable, Sendable, Equatable {
    public var name: String
    public var labels: [String: String]
    /// The node key's id (hex SHA-256 of the raw public key).
    public var keyID: String
    public var joinedAt: String
    /// The lease the record is written under: a record is live only under that very lease.
    public var lease: Int64

    public init(name: String, labels: [String: String], keyID: String, joinedAt: String, lease: Int64) {
        self.name = name
        self.labels = labels
        self.keyID = keyID
        self.joinedAt = joinedAt
        self.lease = lease
    }
}

/// `primary/SERVICE`: replica `index` of `service` on `node` is the primary. Written by that node
/// with a transaction that creates the key under its lease; the key's create revision is the
/// primary's fencing token. Taken only when signed by the node key `node` joined with, and held by
/// the lease the record names.
public struct PrimaryRecord: Codable, Sendable, Equatable {
    public var service: String
    public var node: String
    public var index: Int
    public var lease: Int64
    public var since: String

    public init(service: String, node: String, index: Int, lease: Int64, since: String) {
        self.service = service
        self.node = node
        self.index = index
        self.lease = lease
        self.since = since
    }
}

extension PrimaryRecord {
    /// The record in `value` (under `lease` at `primary/SERVICE`) when it may be taken: signed by a
    /// node key, for `service`, held by the lease it names, and, when its node is live
    /// (`liveKeyID` of that node's record), signed by the very key that node joined with.
    public static func verified(
        _ value: Data, lease: Int64, service: String, trust: TrustPolicy, liveKeyID: (String) -> String?
    ) -> PrimaryRecord? {
        guard case .success(let (record, signer)) = FleetSigned.open(value, type: FleetSigned.primaryType, as: PrimaryRecord.self, trust: trust),
            record.service == service, lease != 0, lease == record.lease, ResourceID.isValidName(record.node),
            (0..<Service.maximumReplicas).contains(record.index)
        else { return nil }
        if let keyID = liveKeyID(record.node), trust.keys[signer]?.publicKey.keyID != keyID { return nil }
        return record
    }
}

/// `plans/applied/ID`: saved plan `plan` was applied on `host` (its state directory
/// `stateDirectory`) at `appliedAt`, claimed by the operator's key with a transaction that creates
/// the key: a saved plan applies once across the fleet.
public struct AppliedPlan: Codable, Sendable, Equatable {
    public var plan: String
    public var host: String
    public var stateDirectory: String
    public var appliedAt: String

    public init(plan: String, host: String, stateDirectory: String, appliedAt: String) {
        self.plan = plan
        self.host = host
        self.stateDirectory = stateDirectory
        self.appliedAt = appliedAt
    }
}

/// `switchover/SERVICE`: an operator asks for the primary of `service` to move (`stet failover`),
/// to node `to` or to any healthy standby. Signed by an operator key; it lives on a short lease of
/// its own, and `id` tells one request from the next.
/// `drains/SERVICE`: a node drilling its own loss for one service asks the leader to place
/// that service's replicas on other nodes until `until` (or until the key, on the node's lease,
/// is gone). Signed by the node's key; a node can drain only itself.
public struct DrainRecord: Codable, Sendable, Equatable {
    public var service: String
    public var node: String
    /// RFC 3339: the leader ignores the drain after it.
    public var until: String

    public init(service: String, node: String, until: String) {
        self.service = service
        self.node = node
        self.until = until
    }
}

public struct SwitchoverRequest: Codable, Sendable, Equatable {
    public var cluster: String
    public var service: String
    public var to: String?
    /// The tenure of the role it moves: the node holding it and the create revision of its
    /// `primary/SERVICE`. Only that node gives the role up, once: a request replayed later, or
    /// seen again by the next primary, names a tenure that is over.
    public var fromNode: String
    public var fromRevision: Int64
    public var id: String
    public var requestedAt: String

    public init(cluster: String, service: String, to: String?, fromNode: String, fromRevision: Int64, id: String, requestedAt: String) {
        self.cluster = cluster
        self.service = service
        self.to = to
        self.fromNode = fromNode
        self.fromRevision = fromRevision
        self.id = id
        self.requestedAt = requestedAt
    }
}

/// `assignments/…`: the leader's decision that `node` runs `workload`, at fencing `epoch` (the
/// create revision of the `leader` key the leader holds).
public struct Assignment: Codable, Sendable, Equatable {
    public var workload: String
    public var node: String
    /// The release digest the leader placed from.
    public var release: String
    public var epoch: Int64
    public var leader: String
    /// The etcd revision the leader had seen when it decided: within one epoch, a later decision
    /// has a higher sequence, so an older one replayed into etcd is refused.
    public var sequence: Int64

    public init(workload: Workload, node: String, release: String, epoch: Int64, leader: String, sequence: Int64 = 0) {
        self.workload = workload.key
        self.node = node
        self.release = release
        self.epoch = epoch
        self.leader = leader
        self.sequence = sequence
    }

    /// The same decision, whenever it was made.
    public func decides(as other: Assignment) -> Bool {
        (workload, node, release, epoch, leader) == (other.workload, other.node, other.release, other.epoch, other.leader)
    }
}

/// `status/NAME`: what a node observes of its own share.
public struct NodeStatus: Codable, Sendable, Equatable {
    public struct Replica: Codable, Sendable, Equatable {
        public var service: String
        public var index: Int
        public var pid: Int32
        /// running, exited, unhealthy.
        public var state: String
        public var port: Int?
        /// Running, past a health check that passed after it started, and failing none since
        /// (absent from nodes of older versions).
        public var healthy: Bool?
    }

    public var node: String
    public var time: String
    public var release: String
    public var releaseVersion: Int
    /// False while the node cannot prove what it owns (it starts and stops nothing).
    public var acting: Bool
    public var leader: Bool
    public var replicas: [Replica]
    public var backups: [String]
    public var monitors: [String]
    /// Where the node's audit log lives (each node's log stays local) and how many entries it had.
    public var auditLog: String?
    public var auditEntries: Int?
    /// The services whose primary this node holds, and the last failover it took over.
    public var primaries: [Primary]?
    /// By service: the self-heal budget this node spent within the hour and the backoff it
    /// keeps, so the fleet spends one budget per service, not one per node.
    public var corrections: [String: CorrectionPolicy.Elsewhere]?

    public struct Primary: Codable, Sendable, Equatable {
        public var service: String
        public var index: Int
        public var since: String
        public var lastFailover: FailoverRecord?
    }
}

/// `fleet/share.json` in a node's state directory: what the fleet last assigned to this node, for
/// `stet status` on the host (which shows the node's share, not the whole release).
public struct FleetShare: Codable, Sendable, Equatable {
    public static let key = "fleet/share.json"

    public var cluster: String
    public var node: String
    public var replicas: [String: [Int]]
    public var backups: [String]
    public var monitors: [String]
    /// False while the node cannot prove what it owns (it starts and stops nothing), since `since`.
    public var acting = false
    public var since = RFC3339.format(Date())
    public var reason: String?

    /// What `assignments` give `node`.
    public init(cluster: String, node: String, assignments: [Workload: Assignment]) {
        self.cluster = cluster
        self.node = node
        var replicas: [String: [Int]] = [:]
        var backups: [String] = [], monitors: [String] = []
        for (workload, assignment) in assignments.sorted(by: { $0.key < $1.key }) where assignment.node == node {
            switch workload {
            case .replica(let service, let index): replicas[service, default: []].append(index)
            case .backup(let name): backups.append(name)
            case .monitor(let name): monitors.append(name)
            }
        }
        self.replicas = replicas
        self.backups = backups
        self.monitors = monitors
    }

    public func apply(to desired: DesiredState) -> DesiredState {
        var share = desired
        share.assignedReplicas = replicas.mapValues(Set.init)
        share.backupPolicies = desired.backupPolicies.filter { backups.contains($0.key) }
        share.monitors = desired.monitors.filter { monitors.contains($0.key) }
        return share
    }

    public static func load(from store: any StateStore) -> FleetShare? {
        guard let data = try? store.read(key) else { return nil }
        return try? JSONDecoder().decode(FleetShare.self, from: data)
    }
}
