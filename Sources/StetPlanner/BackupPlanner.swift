import Foundation
import StetCore
import StetCrypto

extension Planner {
    func backupPlan(_ policy: BackupPolicy, _ observedState: ObservedState, now: Date, into changes: inout [Change], notices: inout [Notice]) {
        let resource = ResourceID(.backupPolicy, policy.metadata.name)
        let observed = observedState.backups[policy.metadata.name]
        let precondition = Self.precondition(observedState, resource)
        func add(_ action: BackupAction, _ cause: ChangeCause, _ reason: Reason, disruption: Disruption = .none) {
            if cause == .drift, policy.drift != .correct {
                notices.append(Notice(resource: resource, mode: policy.drift, reason: reason))
                return
            }
            changes.append(Change(
                resource: resource, action: .backup(action), cause: cause, reason: reason, before: nil,
                after: action == .backup ? ["repository": policy.resticRepository, "paths": policy.paths.joined(separator: ",")] : nil,
                disruption: disruption, precondition: precondition))
        }
        let known = observed?.known ?? false
        var backingUp = false
        switch observed?.repository ?? .missing {
        case .unreadable(let error):
            notices.append(Notice(resource: resource, mode: nil, reason: Reason("repository-unreadable", error)))
            return
        case .missing:
            let cause: ChangeCause = known ? .drift : .config
            add(.initRepository, cause, known
                ? Reason("repository-missing", "the repository \(policy.resticRepository) is gone")
                : Reason("new-policy", "the repository \(policy.resticRepository) does not exist yet"))
            add(.backup, cause, Reason("no-snapshot", "the repository has no snapshot of this policy"))
            backingUp = true
        case .ready:
            break
        }
        let snapshots = observed?.repository == .ready ? observed?.snapshots ?? [] : []
        if backingUp {
            // Planned above.
        } else if let newest = observed?.newest(asOf: now) {
            let age = now.timeIntervalSince(newest)
            let ageText = StetDuration(seconds: max(0, age)).rounded
            if age >= policy.rpo.seconds {
                add(.backup, .drift, Reason("rpo-missed", "the newest snapshot is \(ageText) old, past the RPO of \(policy.rpo)"))
                backingUp = true
            } else if age >= policy.every.seconds {
                add(.backup, .schedule, Reason("backup-due", "due every \(policy.every); the newest snapshot is \(ageText) old"))
                backingUp = true
            }
        } else {
            add(.backup, known && observed?.lastBackup != nil ? .drift : .config,
                Reason("no-snapshot", "the repository has no snapshot of this policy"))
            backingUp = true
        }
        if !RetentionPolicy.isEmpty(policy.retention) {
            let removing = snapshots.count - RetentionPolicy.keep(snapshots, policy.retention).count
            if backingUp || removing > 0 {
                add(.forget, .schedule, Reason("retention", removing > 0
                    ? "the retention removes \(removing) of \(snapshots.count) snapshots" : "apply the retention after the backup"),
                    disruption: .data)
            }
        }
        if let future = observed?.future(asOf: now), let latest = future.map(\.time).max() {
            notices.append(Notice(resource: resource, mode: nil, reason: Reason(
                "snapshot-in-future",
                "\(future.count) snapshot\(future.count == 1 ? " is" : "s are") dated after now (the newest at "
                    + "\(RFC3339.format(latest))): this host's clock went back, or the clock of a host that "
                    + "backs up here is ahead; such snapshots count toward the RPO only once their time has come")))
        }
        if let every = policy.checkEvery, ObservedBackup.isDue(observed?.lastCheck, every: every, now: now) {
            add(.check, .schedule, Reason("check-due", "a check runs every \(every)"
                + (observed?.lastCheck.map { $0.ok ? "" : "; the last one failed: \($0.detail)" } ?? "; none ran yet")))
        }
        if let every = policy.restoreTestEvery, !snapshots.isEmpty || backingUp,
            ObservedBackup.isDue(observed?.lastRestoreTest, every: every, now: now)
        {
            add(.restoreTest, .schedule, Reason("restore-test-due", "a restore test runs every \(every)"
                + (observed?.lastRestoreTest.map { $0.ok ? "" : "; the last one failed: \($0.detail)" } ?? "; none ran yet")))
        }
    }

    func removedBackup(_ observed: ObservedBackup, _ observedState: ObservedState, into changes: inout [Change], notices: inout [Notice]) {
        let resource = ResourceID(.backupPolicy, observed.name)
        guard prune, !observed.protect else {
            notices.append(Notice(
                resource: resource, mode: nil,
                reason: Reason(observed.protect ? "protected" : "not-in-release",
                    "not in the release: no longer scheduled; its repository and snapshots are kept"
                        + (observed.protect ? " (protected)" : "; --prune forgets Stet's state for it"))))
            return
        }
        changes.append(Change(
            resource: resource, action: .backup(.removeState), cause: .config,
            reason: Reason("removed", "not in the release: Stet forgets its schedule; the repository and snapshots are kept"),
            before: nil, after: nil, disruption: .none, precondition: Self.precondition(observedState, resource)))
    }
}
