public import Foundation
public import StetCore
import StetCrypto

/// Restic's retention rules (`forget --keep-last/hourly/daily/weekly/monthly`), computed the way
/// restic computes them, so a plan knows whether `forget` would remove anything.
public enum RetentionPolicy {
    /// The ids of the snapshots `retention` keeps. Restic walks the snapshots newest first;
    /// each rule keeps a snapshot when its time falls in another bucket (hour, day, ISO week,
    /// month) than the last one it kept, until its count is used up.
    public static func keep(_ snapshots: [ObservedBackup.Snapshot], _ retention: BackupPolicy.Retention,
                            calendar: Calendar = .current) -> Set<String>
    {
        let newestFirst = snapshots.sorted { $0.time > $1.time }
        var rules: [(count: Int, bucket: (Date, Int) -> Int, last: Int?)] = []
        if let last = retention.last { rules.append((last, { _, index in index }, nil)) }
        func key(_ components: Set<Calendar.Component>, _ combine: @escaping (DateComponents) -> Int) -> (Date, Int) -> Int {
            { date, _ in combine(calendar.dateComponents(components, from: date)) }
        }
        if let hourly = retention.hourly {
            rules.append((hourly, key([.year, .month, .day, .hour]) { ($0.year! * 10_000 + $0.month! * 100 + $0.day!) * 100 + $0.hour! }, nil))
        }
        if let daily = retention.daily {
            rules.append((daily, key([.year, .month, .day]) { $0.year! * 10_000 + $0.month! * 100 + $0.day! }, nil))
        }
        if let weekly = retention.weekly {
            var iso = Calendar(identifier: .iso8601)
            iso.timeZone = calendar.timeZone
            rules.append((weekly, { date, _ in
                let parts = iso.dateComponents([.yearForWeekOfYear, .weekOfYear], from: date)
                return parts.yearForWeekOfYear! * 100 + parts.weekOfYear!
            }, nil))
        }
        if let monthly = retention.monthly {
            rules.append((monthly, key([.year, .month]) { $0.year! * 100 + $0.month! }, nil))
        }
        var kept: Set<String> = []
        for (index, snapshot) in newestFirst.enumerated() {
            for rule in rules.indices where rules[rule].count > 0 {
                let value = rules[rule].bucket(snapshot.time, index)
                if value != rules[rule].last {
                    kept.insert(snapshot.id)
                    rules[rule].last = value
                    rules[rule].count -= 1
                }
            }
        }
        return kept
    }

    public static func isEmpty(_ retention: BackupPolicy.Retention) -> Bool {
        [retention.last, retention.hourly, retention.daily, retention.weekly, retention.monthly].allSatisfy { $0 == nil }
    }
}

extension Planner {
    func backupPlan(_ policy: BackupPolicy, _ observedState: ObservedState, now: Date, into changes: inout [Change], notices: inout [Notice]) {
        let id = ResourceID(.backupPolicy, policy.metadata.name)
        let resource = id.description
        let observed = observedState.backups[policy.metadata.name]
        let precondition = Self.precondition(observedState, id)
        func add(_ action: BackupAction, _ cause: ChangeCause, _ reason: Reason, disruption: Disruption = .none) {
            if cause == .drift, policy.drift != .correct {
                notices.append(Notice(resource: resource, replica: nil, mode: policy.drift, reason: reason))
                return
            }
            changes.append(Change(
                resource: resource, action: action.rawValue, replica: nil, cause: cause, reason: reason, before: nil,
                after: action == .backup ? ["repository": policy.resticRepository, "paths": policy.paths.joined(separator: ",")] : nil,
                disruption: disruption, precondition: precondition))
        }
        let known = observed?.known ?? false
        var backingUp = false
        switch observed?.repository ?? .missing {
        case .unreadable(let error):
            notices.append(Notice(resource: resource, replica: nil, mode: nil, reason: Reason("repository-unreadable", error)))
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
        } else if let newest = observed?.newest {
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
                    ? "the retention removes \(removing) of \(snapshots.count) snapshots" : "apply the retention after the backup"))
            }
        }
        if let every = policy.checkEvery, observed?.lastCheck.map({ now.timeIntervalSince($0.at) >= every.seconds }) ?? true {
            add(.check, .schedule, Reason("check-due", "a check runs every \(every)"
                + (observed?.lastCheck.map { $0.ok ? "" : "; the last one failed: \($0.detail)" } ?? "; none ran yet")))
        }
        if let every = policy.restoreTestEvery, !snapshots.isEmpty || backingUp,
            observed?.lastRestoreTest.map({ now.timeIntervalSince($0.at) >= every.seconds }) ?? true
        {
            add(.restoreTest, .schedule, Reason("restore-test-due", "a restore test runs every \(every)"
                + (observed?.lastRestoreTest.map { $0.ok ? "" : "; the last one failed: \($0.detail)" } ?? "; none ran yet")))
        }
    }

    func removedBackup(_ observed: ObservedBackup, _ observedState: ObservedState, into changes: inout [Change], notices: inout [Notice]) {
        let id = ResourceID(.backupPolicy, observed.name)
        let resource = id.description
        guard prune, !observed.protect else {
            notices.append(Notice(
                resource: resource, replica: nil, mode: nil,
                reason: Reason(observed.protect ? "protected" : "not-in-release",
                    "not in the release: no longer scheduled; its repository and snapshots are kept"
                        + (observed.protect ? " (protected)" : "; --prune forgets Stet's state for it"))))
            return
        }
        changes.append(Change(
            resource: resource, action: BackupAction.removeState.rawValue, replica: nil, cause: .config,
            reason: Reason("removed", "not in the release: Stet forgets its schedule; the repository and snapshots are kept"),
            before: nil, after: nil, disruption: .none, precondition: Self.precondition(observedState, id)))
    }
}

extension Planner {
    /// Monitors: registered with the loop when new, updated when their spec changed, and
    /// unregistered (with `--prune`) when gone from the release.
    func monitorPlan(_ desired: DesiredState, _ observed: ObservedState, into changes: inout [Change], notices: inout [Notice]) {
        for name in desired.monitors.keys.sorted() {
            let monitor = desired.monitors[name]!
            let resource = ResourceID(.monitor, name).description
            let spec = Data(monitor.specText.utf8).sha256Reference
            let registered = observed.monitors[name]
            guard registered?.specHash != spec else { continue }
            changes.append(Change(
                resource: resource,
                action: (registered == nil ? MonitorAction.registerMonitor : MonitorAction.updateMonitor).rawValue, replica: nil,
                cause: .config,
                reason: registered == nil ? Reason("new-monitor", "not yet probed by stet run") : Reason("spec-changed", "the monitor's spec changed"),
                before: registered.map { ["spec": $0.specHash] }, after: ["spec": spec], disruption: .none,
                precondition: Self.precondition(observed, ResourceID(.monitor, name))))
        }
        for name in observed.monitors.keys.sorted() where desired.monitors[name] == nil {
            let resource = ResourceID(.monitor, name).description
            guard prune else {
                notices.append(Notice(resource: resource, replica: nil, mode: nil,
                    reason: Reason("not-in-release", "not in the release: still probed (plan with --prune to unregister it)")))
                continue
            }
            changes.append(Change(
                resource: resource, action: MonitorAction.unregisterMonitor.rawValue, replica: nil, cause: .config,
                reason: Reason("removed", "the monitor is no longer in the release"), before: ["spec": observed.monitors[name]!.specHash],
                after: nil, disruption: .none, precondition: Self.precondition(observed, ResourceID(.monitor, name))))
        }
    }
}
