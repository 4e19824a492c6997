public import Foundation
public import StetManifest
import StetCore

/// The assignments a node has taken, and the rules for taking more (docs/architecture.md, "A fleet
/// on etcd"): a value is taken only when it is signed by a node key of the node's own policy, for
/// the very key it is stored under, of an epoch no older than the newest taken, and, for a key
/// already taken, no older a decision (epoch, then sequence). Anything else is refused with a
/// reason and what was taken before stays. Pure: `FleetNode` feeds it what etcd holds.
public struct AssignmentBook: Sendable {
    public private(set) var accepted: [Workload: Assignment]
    public private(set) var maxEpoch: Int64
    /// The newest decision (epoch, sequence) taken per workload, kept after a deletion: an older
    /// decision put back after deleting the key is still refused.
    public private(set) var newest: [Workload: Decision]

    public struct Decision: Sendable, Comparable {
        public let epoch: Int64
        public let sequence: Int64
        public static func < (a: Decision, b: Decision) -> Bool { (a.epoch, a.sequence) < (b.epoch, b.sequence) }
    }

    public init(accepted: [Workload: Assignment] = [:], maxEpoch: Int64 = 0) {
        self.accepted = accepted
        self.maxEpoch = maxEpoch
        newest = accepted.mapValues { Decision(epoch: $0.epoch, sequence: $0.sequence) }
    }

    /// Takes `values` (full keys; nil: the key was deleted). `whole`: they are everything under
    /// `assignments/`, so a taken assignment whose key is missing goes. Returns the refusals, by key.
    public mutating func take(_ values: [String: Data?], keys: FleetKeyspace, trust: TrustPolicy, whole: Bool) -> [String: String] {
        var refused: [String: String] = [:]
        var verified: [(String, Workload, Assignment)] = []
        for (key, value) in values {
            guard case .assignment(let workload) = keys.parse(key) else {
                refused[key] = "not an assignment key"
                continue
            }
            guard let value else {
                // The leader removes the replicas a release no longer has.
                accepted[workload] = nil
                continue
            }
            switch FleetSigned.open(value, type: FleetSigned.assignmentType, as: Assignment.self, trust: trust) {
            case .failure(let error):
                refused[key] = error.description
            case .success(let (assignment, _)):
                guard assignment.workload == workload.key, ResourceID.isValidName(assignment.node), assignment.epoch > 0 else {
                    refused[key] = "signed for \(assignment.workload.prefix(80)) on \(assignment.node.prefix(80)), not for this key"
                    continue
                }
                verified.append((key, workload, assignment))
            }
        }
        // Oldest epoch first: a whole read taken while a new leader rewrites takes both.
        for (key, workload, assignment) in verified.sorted(by: { ($0.2.epoch, $0.2.sequence) < ($1.2.epoch, $1.2.sequence) }) {
            guard assignment.epoch >= maxEpoch else {
                refused[key] = "epoch \(assignment.epoch) is older than epoch \(maxEpoch), already seen"
                continue
            }
            let decision = Decision(epoch: assignment.epoch, sequence: assignment.sequence)
            if let taken = newest[workload], decision < taken {
                refused[key] = "an older decision (sequence \(assignment.sequence)) than one taken (sequence \(taken.sequence))"
                continue
            }
            maxEpoch = assignment.epoch
            accepted[workload] = assignment
            newest[workload] = decision
        }
        if whole {
            let present = Set(values.keys)
            for workload in Array(accepted.keys) where !present.contains(keys.assignment(workload)) { accepted[workload] = nil }
        }
        return refused
    }
}
