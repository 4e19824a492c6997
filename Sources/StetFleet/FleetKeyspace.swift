public import Foundation
import StetCore

/// Where a fleet keeps what it shares in etcd (docs/architecture.md, "A fleet on etcd"): every
/// key under `/stet/<cluster>/`. Keys read back from etcd are parsed, never trusted: a key that
/// does not have one of these forms is ignored.
public struct FleetKeyspace: Sendable, Equatable {
    public let cluster: String

    /// `cluster` must be a DNS label: it becomes part of every key.
    public init(cluster: String) throws(FleetError) {
        guard ResourceID.isValidName(cluster) else {
            throw FleetError("cluster name \"\(cluster.prefix(80))\": expected a DNS label such as prod (lowercase letters, digits, '-')")
        }
        self.cluster = cluster
    }

    public var prefix: String { "/stet/\(cluster)/" }
    public var release: String { prefix + "release/current" }
    public var leader: String { prefix + "leader" }
    public var nodes: String { prefix + "nodes/" }
    public var assignments: String { prefix + "assignments/" }
    public var statuses: String { prefix + "status/" }
    public var primaries: String { prefix + "primary/" }
    public var switchovers: String { prefix + "switchover/" }
    public var appliedPlans: String { prefix + "plans/applied/" }
    public var checkpoints: String { prefix + "checkpoints/" }
    /// `checkpoints/NAME`: node NAME's latest audit checkpoint with its consistency proofs.
    public func checkpoint(_ node: String) -> String { checkpoints + node }
    /// `cosignatures/NAME/`: the witnesses' cosignatures of node NAME's checkpoints.
    public func cosignatures(of node: String) -> String { prefix + "cosignatures/\(node)/" }
    /// `cosignatures/NAME/WITNESS`: node WITNESS's cosigned note of NAME's latest checkpoint it took.
    public func cosignature(of node: String, by witness: String) -> String { cosignatures(of: node) + witness }
    /// `plans/applied/ID`: a saved plan applied somewhere in the fleet (single use across it).
    public func appliedPlan(_ id: String) -> String { appliedPlans + id }
    public func node(_ name: String) -> String { nodes + name }
    public func status(_ name: String) -> String { statuses + name }
    public func assignment(_ workload: Workload) -> String { assignments + workload.key }
    /// `primary/SERVICE`: the node whose replica is the primary, on that node's lease.
    public func primary(_ service: String) -> String { primaries + service }
    /// `switchover/SERVICE`: an operator's signed request to move the primary (`stet failover`).
    public func switchover(_ service: String) -> String { switchovers + service }
    /// `drains/SERVICE`: the node drilling its own loss for SERVICE asks the leader to place
    /// SERVICE's replicas elsewhere (signed by that node, on its lease). One key per service, created
    /// only when absent: one host drill of a service at a time.
    public func drain(_ service: String) -> String { prefix + "drains/\(service)" }

    /// What a key under the prefix is.
    public enum Entry: Sendable, Equatable {
        case release, leader
        case node(String)
        case assignment(Workload)
        case status(String)
        case primary(String)
        case switchover(String)
        case appliedPlan(String)
        case checkpoint(String)
        case cosignature(of: String, by: String)
        case drain(String)
    }

    public func parse(_ key: String) -> Entry? {
        guard key.hasPrefix(prefix) else { return nil }
        let rest = String(key.dropFirst(prefix.count))
        if rest == "release/current" { return .release }
        if rest == "leader" { return .leader }
        let parts = rest.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        switch parts.first {
        case "nodes" where parts.count == 2 && ResourceID.isValidName(parts[1]): return .node(parts[1])
        case "status" where parts.count == 2 && ResourceID.isValidName(parts[1]): return .status(parts[1])
        case "primary" where parts.count == 2 && ResourceID.isValidName(parts[1]): return .primary(parts[1])
        case "switchover" where parts.count == 2 && ResourceID.isValidName(parts[1]): return .switchover(parts[1])
        case "checkpoints" where parts.count == 2 && ResourceID.isValidName(parts[1]): return .checkpoint(parts[1])
        case "cosignatures" where parts.count == 3 && ResourceID.isValidName(parts[1]) && ResourceID.isValidName(parts[2]):
            return .cosignature(of: parts[1], by: parts[2])
        case "drains" where parts.count == 2 && ResourceID.isValidName(parts[1]): return .drain(parts[1])
        case "plans" where parts.count == 3 && parts[1] == "applied" && Plan.isValidID(parts[2]): return .appliedPlan(parts[2])
        case "assignments": return Workload(key: parts.dropFirst().joined(separator: "/")).map(Entry.assignment)
        default: return nil
        }
    }
}

/// What the leader assigns to a node: a replica of a service, a backup policy or a monitor.
public enum Workload: Hashable, Sendable, Comparable, CustomStringConvertible {
    case replica(service: String, index: Int)
    case backup(String)
    case monitor(String)

    /// The key under `assignments/`: `service/NAME/INDEX`, `backup/NAME`, `monitor/NAME`.
    public var key: String {
        switch self {
        case .replica(let service, let index): "service/\(service)/\(index)"
        case .backup(let name): "backup/\(name)"
        case .monitor(let name): "monitor/\(name)"
        }
    }

    public init?(key: String) {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 2, ResourceID.isValidName(parts[1]) else { return nil }
        switch (parts[0], parts.count) {
        case ("service", 3):
            // Digits only, no sign or leading zero: one key per replica.
            guard let index = Int(parts[2]), (0..<Service.maximumReplicas).contains(index), String(index) == parts[2] else { return nil }
            self = .replica(service: parts[1], index: index)
        case ("backup", 2): self = .backup(parts[1])
        case ("monitor", 2): self = .monitor(parts[1])
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .replica(let service, let index): "service/\(service) replica \(index)"
        case .backup(let name): "backuppolicy/\(name)"
        case .monitor(let name): "monitor/\(name)"
        }
    }

    public static func < (a: Workload, b: Workload) -> Bool { a.key < b.key }
}

public struct FleetError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
