import Foundation
import StetAudit
import StetCore
import StetPlanner
import StetProviders
import StetState

/// One pass of the loop, and the correction policy (backoff and budget) it applies.
extension ReconcileLoop {
    /// One pass over the dirty services: observe, plan, record drift, apply what may be applied.
    /// Every replica found dead here joins the pass, whichever service made it run: the pass
    /// records the exit, so no later look would see it as news.
    ///
    /// Backup policies are not part of it: a pass that looks at them hands them to the backup
    /// pass (`startBackupPass`), so restic never stands between a replica's exit and its
    /// correction.
    func reconcile() async throws {
        try stateLock.acquire(store: store, timeout: options.lockTimeout)
        defer { stateLock.release() }
        // Under the lock, before anything is planned: never a pass on a release older than the
        // one in force (`apply` holds the lock while it accepts and applies).
        try adoptAcceptedRelease()
        let passStarted = DispatchTime.now().uptimeNanoseconds
        let (onPass, lastObservation) = (self.onPass, self.lastObservation)
        defer {
            lastObservation.passEnded()
            onPass(Double(DispatchTime.now().uptimeNanoseconds - passStarted) / 1e9)
        }
        let withBackups = backupsDue
        backupsDue = false
        let services = dirty.union(try reapExited())
        dirty = []
        let now = Date()
        var observed = try await provider.observe(desired, now: now)
        observed.services = observed.services.filter { services.contains($0.key) }
        var scoped = desired
        scoped.services = desired.services.filter { services.contains($0.key) }
        scoped.backupPolicies = [:]
        if withBackups {
            observed.monitors = try await monitors.registry.observe(desired, now: now).monitors
            startBackupPass()
        } else {
            scoped.monitors = [:]
        }
        let plan = Planner(prune: options.prune).plan(
            desired: scoped, observed: observed, release: release, now: now)
        let allowed = try admit(plan, now: now)
        failedLastPass = false
        guard !allowed.isEmpty else { return }
        var toApply = plan
        toApply.changes = allowed
        let report = try await applier().apply(toApply, desired: desired, progress: progress)
        failedLastPass = report.failed
        recordOutcomes(report)
        for result in report.results where !result.outcome.ok && result.change.resource.hasPrefix("Service/") {
            // A failed change is retried after the service's backoff, whatever its cause: a
            // release whose command cannot start would otherwise be tried again at once, over
            // and over (backups are retried at the next interval).
            let name = String(result.change.resource.split(separator: "/").last ?? "")
            if let until = backoff[name]?.until, until > now {
                waiting[name] = until
            } else {
                let step = backOff(name, now: now)
                waiting[name] = step.until
                try ResourceStatus.update(result.change.resource, in: store) {
                    $0.backoffUntil = step.until
                    $0.backoffSeconds = step.delay
                }
            }
        }
        for change in allowed where change.resource.hasPrefix("Service/") {
            health.reset(ReplicaKey(service: String(change.resource.split(separator: "/").last ?? ""), index: change.replica ?? 0))
        }
    }

    /// The changes of `plan` that may go ahead now. Drift is recorded, and corrected only as
    /// backoff and budget allow; notices are recorded once. The same rules for every pass.
    func admit(_ plan: Plan, now: Date) throws -> [Change] {
        var allowed: [Change] = []
        var decisions: [String: Correction] = [:]
        for change in plan.changes {
            // Services are keyed by name; other kinds by their resource id.
            let name = change.resource.hasPrefix("Service/") ? String(change.resource.split(separator: "/").last ?? "") : change.resource
            guard change.cause == .drift else {
                allowed.append(change)
                continue
            }
            try audit.append(AuditRecord(
                kind: .drift, release: release, change: change.id, resource: change.resource, action: change.action,
                cause: change.cause.rawValue, reason: change.reason.message))
            // One backoff decision per service and pass: every replica that needs it is corrected.
            let decision = try decisions[name] ?? mayCorrect(name, change: change, now: now)
            if decisions[name] == nil {
                decisions[name] = decision
            } else if decision == .now {
                corrections[name, default: []].append(now)
            }
            switch decision {
            case .now: allowed.append(change)
            case .after(let date): waiting[name] = date
            case .never: break
            }
        }
        for notice in plan.notices {
            let key = "\(notice.resource)#\(notice.replica ?? -1):\(notice.reason.code)"
            guard !reportedNotices.contains(key) else { continue }
            reportedNotices.insert(key)
            try audit.append(AuditRecord(
                kind: .drift, release: release, resource: notice.resource,
                reason: notice.reason.message + (notice.mode.map { " (drift: \($0.rawValue), not corrected)" } ?? "")))
        }
        return allowed
    }

    /// The applier of the loop's passes, with the loop's providers.
    func applier() -> Applier {
        var host = HostProvider(store: store)
        host.replicas = provider
        host.backups = backups
        host.monitors = monitors.registry
        return Applier(provider: host, audit: audit, store: store, release: release)
    }

    /// Tells the hooks about each action as it ends (called on the thread that applies).
    var progress: @Sendable (Applier.Result) -> Void {
        let log = self.log
        let onAction = self.onAction
        return { result in
            onAction(result.change, result.outcome)
            log("\(result.outcome.ok ? "ok" : "failed")  \(result.change.id)  \(result.outcome.ok ? result.outcome.detail : result.outcome.error ?? "")")
        }
    }

    /// Counts failures per resource: a provider that fails the same resource three times
    /// running is alerted on, once.
    func recordOutcomes(_ report: Applier.Report) {
        for result in report.results {
            let key = result.change.resource
            if result.outcome.ok {
                consecutiveFailures[key] = 0
            } else {
                consecutiveFailures[key, default: 0] += 1
                if consecutiveFailures[key] == 3 {
                    monitors.selfAlert(
                        "StetProviderFailing",
                        summary: "\(key) failed three times running: \(result.outcome.error ?? "")", desired: desired)
                }
            }
        }
    }

    /// Records how replicas that ended ended (reaping this process's own children), and returns
    /// their services.
    private func reapExited() throws -> Set<String> {
        var ended: Set<String> = []
        for records in try provider.records().values {
            for var record in records.values where record.exitedAt == nil {
                guard !ProcessTable.isAlive(record.pid, startTime: record.startTime) else { continue }
                record.lastExit = ProcessTable.reap(record.pid) ?? "exited"
                record.exitedAt = Date()
                try provider.save(record)
                ended.insert(record.service)
            }
        }
        return ended
    }

    /// Whether a drift correction may go ahead now, or when to look again.
    enum Correction: Equatable {
        case now
        /// Backing off: the resource is looked at again at that time.
        case after(Date)
        /// The budget is spent.
        case never
    }

    /// Backoff and budget for a drift correction of `service`. Records the correction when it
    /// may go ahead.
    private func mayCorrect(_ service: String, change: Change, now: Date) throws -> Correction {
        let window = corrections[service, default: []].filter { now.timeIntervalSince($0) < 3600 }
        corrections[service] = window
        if window.count >= options.budget {
            if !budgetAlerted.contains(service) {
                budgetAlerted.insert(service)
                try audit.append(AuditRecord(
                    kind: .alert, release: release, resource: change.resource, action: "self-heal-budget",
                    reason: "\(window.count) corrective actions in the last hour reached the budget of \(options.budget); "
                        + "Stet stops correcting \(change.resource) until the hour has passed or a release changes it",
                    outcome: .failed))
                try ResourceStatus.update(change.resource, in: store) {
                    $0.budgetExhausted = true
                    $0.correctionsLastHour = window.count
                }
                log("self-heal budget of \(change.resource) exhausted")
                monitors.selfAlert(
                    "StetSelfHealBudgetExhausted", summary: "stet stopped correcting \(change.resource) after \(window.count) corrections in an hour",
                    desired: desired)
            }
            return .never
        }
        budgetAlerted.remove(service)
        if let until = backoff[service]?.until, now < until { return .after(until) }
        let step = backOff(service, now: now)
        corrections[service, default: []].append(now)
        try ResourceStatus.update(change.resource, in: store) {
            $0.backoffUntil = step.until
            $0.backoffSeconds = step.delay
            $0.correctionsLastHour = window.count + 1
            $0.budgetExhausted = false
        }
        return .now
    }

    /// The next step of `service`'s backoff, from `now`: the first is `restart.backoff.initial`;
    /// each attempt soon after the last (the last one did not hold) doubles it, up to the maximum.
    private func backOff(_ service: String, now: Date) -> (until: Date, delay: Double) {
        let spec = desired.services[service]
        let initial = spec?.backoffInitial.seconds ?? 0.5
        let maximum = spec?.backoffMax.seconds ?? 60
        var state = backoff[service, default: Backoff()]
        state.attempts = now.timeIntervalSince(state.last) < max(maximum, 10) ? state.attempts + 1 : 1
        let delay = min(maximum, initial * pow(2, Double(min(state.attempts, 64) - 1)))
        state.last = now
        state.until = now.addingTimeInterval(delay)
        backoff[service] = state
        return (state.until, delay)
    }
}
