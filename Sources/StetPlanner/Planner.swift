public import Foundation
public import StetCore
import StetCrypto

/// The pure diff of docs/architecture.md, "Observing and planning": `(desired, observed, now) -> Plan`. No I/O; the same
/// input gives the same plan, byte for byte in JSON.
public struct Planner: Sendable {
    /// Plan the removal of resources that the release no longer declares (never of protected ones).
    public var prune: Bool
    /// Hold changes for maintenance windows (`WindowGate`); off only to classify changes.
    public var gate = true

    public init(prune: Bool = false) { self.prune = prune }

    public func plan(desired: DesiredState, observed: ObservedState, release: ReleaseRef, now: Date) -> Plan {
        var changes: [Change] = []
        var notices: [Notice] = []
        for name in desired.backupPolicies.keys.sorted() {
            backupPlan(desired.backupPolicies[name]!, observed, now: now, into: &changes, notices: &notices)
        }
        for name in observed.backups.keys.sorted() where desired.backupPolicies[name] == nil {
            removedBackup(observed.backups[name]!, observed, into: &changes, notices: &notices)
        }
        for name in desired.services.keys.sorted() {
            servicePlan(desired.services[name]!, desired, observed, into: &changes, notices: &notices)
        }
        for name in observed.services.keys.sorted() where desired.services[name] == nil {
            removedService(observed.services[name]!, observed, into: &changes, notices: &notices)
        }
        monitorPlan(desired, observed, into: &changes, notices: &notices)
        changes.sort(by: Self.order)
        let createdAt = RFC3339.format(now)
        var plan = Plan(id: "", createdAt: createdAt, release: release, changes: changes, notices: notices)
        if gate { WindowGate(desired).apply(to: &plan, desired: desired, now: now) }
        let fingerprint = ([createdAt, release.digest] + plan.changes.map { "\($0.id) \($0.precondition)" }).joined(separator: "\n")
        plan.id = "plan-" + SHA256.hash(Data(fingerprint.utf8)).hexString.prefix(16)
        return plan
    }

    /// `stet down`: every replica in `observed` stopped, each change saying it is stopped on
    /// request (the release still declares it).
    public static func down(_ observed: ObservedState, release: ReleaseRef, now: Date) -> Plan {
        var plan = Planner(prune: true).plan(desired: DesiredState(), observed: observed, release: release, now: now)
        for index in plan.changes.indices {
            plan.changes[index].reason = Reason("on-request", "stopped on request (`stet down`)")
        }
        return plan
    }

    /// Resources by kind (backups before services, monitors last), then name, then action
    /// (start before replace before stop), then replica.
    static func order(_ a: Change, _ b: Change) -> Bool {
        func kindRank(_ kind: ResourceKind) -> Int {
            switch kind {
            case .backupPolicy: 0
            case .service: 1
            case .monitor: 2
            case .notifier: 3
            case .maintenanceWindow: 4
            }
        }
        return (kindRank(a.resource.kind), a.resource.name, a.action.rank, a.resource.replica ?? -1)
            < (kindRank(b.resource.kind), b.resource.name, b.action.rank, b.resource.replica ?? -1)
    }

    /// The digest of the facts a change depends on (`ObservedState.facts(for:replica:scope:)`):
    /// the change's precondition.
    static func precondition(_ observed: ObservedState, _ resource: ResourceID, scope: FactScope = .state) -> String {
        Data(observed.facts(for: resource.whole, replica: resource.replica, scope: scope).utf8).sha256Reference
    }

    private func servicePlan(_ service: Service, _ desired: DesiredState, _ observedState: ObservedState, into changes: inout [Change], notices: inout [Notice]) {
        let resource = ResourceID(.service, service.metadata.name)
        let spec = Data(service.run.specText.utf8).sha256Reference
        let replicas = observedState.services[service.metadata.name]?.replicas ?? [:]
        /// `scope`: what the decision rests on, which the precondition records.
        func add(_ action: ServiceAction, _ index: Int, _ cause: ChangeCause, _ reason: Reason, _ replica: ObservedReplica?,
                 disruption: Disruption = .none, scope: FactScope = .state)
        {
            if cause == .drift, service.drift != .correct {
                notices.append(Notice(resource: resource.replica(index), mode: service.drift, reason: reason))
                return
            }
            changes.append(Change(
                resource: resource.replica(index), action: .service(action), cause: cause, reason: reason,
                before: replica.map { ["spec": $0.specHash, "pid": String($0.pid), "status": $0.status.rawValue] },
                after: action == .stopReplica ? nil : ["spec": spec, "port": service.run.portsStart.map { String($0 + index) } ?? ""],
                disruption: disruption, precondition: Self.precondition(observedState, resource.replica(index), scope: scope)))
        }
        let indices = desired.replicaIndices(of: service)
        for index in indices {
            let ofN = "replica \(index) of \(service.replicas)"
            guard let replica = replicas[index] else {
                add(.startReplica, index, .config, Reason("replica-missing", "\(ofN) is not running"), nil)
                continue
            }
            switch (replica.status, replica.specHash == spec) {
            case (.exited, true):
                add(.startReplica, index, .drift,
                    Reason("replica-exited", "\(ofN) " + (replica.lastExit ?? "exited")), replica)
            case (.exited, false):
                add(.startReplica, index, .config, Reason("spec-changed", "\(ofN) exited; starts with the new spec"), replica)
            case (.running, false):
                add(.replaceReplica, index, .config, Reason("spec-changed", "\(ofN) runs an older spec"), replica,
                    disruption: .restart)
            case (.running, true) where replica.health == .unhealthy:
                add(.replaceReplica, index, .drift, Reason("replica-unhealthy", "\(ofN) fails its health check"), replica,
                    disruption: .restart, scope: .stateAndHealth)
            case (.running, true):
                break
            }
        }
        for (index, replica) in replicas.sorted(by: { $0.key < $1.key }) where index >= service.replicas {
            add(.stopReplica, index, .config,
                Reason("scale-down", "the service has \(service.replicas) replica\(service.replicas == 1 ? "" : "s") now"),
                replica, disruption: replica.status == .running ? .restart : .none)
        }
        // In a fleet: replicas the leader assigned to another node (or to none) stop here.
        let here = Set(indices)
        for (index, replica) in replicas.sorted(by: { $0.key < $1.key }) where index < service.replicas && !here.contains(index) {
            add(.stopReplica, index, .config,
                Reason("assigned-elsewhere", "replica \(index) of \(service.replicas) is not assigned to this node"),
                replica, disruption: replica.status == .running ? .restart : .none)
        }
    }

    private func removedService(_ observed: ObservedService, _ observedState: ObservedState, into changes: inout [Change], notices: inout [Notice]) {
        let resource = ResourceID(.service, observed.name)
        guard prune, !observed.protect else {
            notices.append(Notice(
                resource: resource, mode: nil,
                reason: observed.protect
                    ? Reason("protected", "not in the release but protected: left running")
                    : Reason("not-in-release", "not in the release: left running (plan with --prune to stop it)")))
            return
        }
        for (index, replica) in observed.replicas.sorted(by: { $0.key < $1.key }) {
            changes.append(Change(
                resource: resource.replica(index), action: .service(.stopReplica), cause: .config,
                reason: Reason("removed", "the service is no longer in the release"),
                before: ["spec": replica.specHash, "pid": String(replica.pid), "status": replica.status.rawValue], after: nil,
                disruption: replica.status == .running ? .restart : .none,
                precondition: Self.precondition(observedState, resource.replica(index))))
        }
    }
}
