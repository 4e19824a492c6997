public import Foundation
public import StetAudit
public import StetCore
import StetPlanner
public import StetState

/// One reconcile of the services it is given, on any provider (docs/architecture.md, "Plan, apply and the loop"): observe,
/// plan, admit, apply. Admitting records each drift in the audit log and lets corrections go
/// ahead only as the `CorrectionPolicy` allows; its decisions are applied here (held back,
/// status files, alerts). The reconcile loop runs one of these per pass; engine tests run it on
/// the in-memory provider with the clock they choose.
///
/// Not thread-safe: one owner calls it (the loop's thread).
public final class Reconciler {
    /// What a pass tells the daemon it runs in.
    public struct Hooks: Sendable {
        public var log: @Sendable (String) -> Void = { _ in }
        /// An alert about Stet itself (`StetSelfHealBudgetExhausted`, `StetProviderFailing`): what it
        /// is about, its summary, and the release in force, whose notifiers receive it.
        public var selfAlert: @Sendable (SelfAlert, String, DesiredState) -> Void = { _, _, _ in }
        /// The condition of a self alert cleared (the resource is corrected again, its action
        /// succeeded), with how; an alert that does not fire is left alone.
        public var selfAlertCleared: @Sendable (SelfAlert, String) -> Void = { _, _ in }
        /// Each action as it ends (called on the thread that applies).
        public var progress: @Sendable (Applier.Result) -> Void = { _ in }

        public init() {}
    }

    /// What a pass did.
    public struct Outcome: Sendable {
        public var plan: Plan
        /// The changes that went ahead.
        public var allowed: [Change]
        public var report: Applier.Report?
        /// Resources held back, and when to look at them again.
        public var retry: [ResourceID: Date]
        public var failed: Bool { report?.failed ?? false }
    }

    /// The changes of a plan that may go ahead now, and the resources held back.
    public struct Admission: Sendable {
        public var allowed: [Change]
        public var retry: [ResourceID: Date]
        /// The drift entries of the replica starts that go ahead, by change id, not yet appended:
        /// each goes into the log with its start's intent, in one append and one fsync before the
        /// spawn (`Applier.preceding`), or on its own when the start is not tried
        /// (`recordUntried`). The drift of every other change is appended when it is admitted.
        public var drift: [String: AuditRecord] = [:]
        /// The backoff steps and counts of the corrections that go ahead, for their status
        /// files, written once the pass has acted (`recordCorrections`): nothing but the intent
        /// stands between a replica's exit and its replacement.
        public var corrections: [ResourceID: CorrectionPolicy.Correction] = [:]
    }

    public let audit: any AuditSink
    public let store: any StateStore
    public let prune: Bool
    public var hooks: Hooks
    public private(set) var policy: CorrectionPolicy

    /// In a fleet: the budget spent and backoff kept by the other nodes (`CorrectionPolicy.elsewhere`).
    public func setElsewhere(_ elsewhere: [ResourceID: CorrectionPolicy.Elsewhere]) { policy.elsewhere = elsewhere }
    /// Notices already recorded: each is recorded once.
    private var reportedNotices: Set<String> = []
    /// Waits for a window already recorded, until a window opens or closes.
    private var reportedWaits: Set<String> = []

    /// The wall clock jumped by `seconds` (`CorrectionPolicy.shift`).
    public func clockJumped(by seconds: Double) { policy.shift(by: seconds) }

    /// A window opened or closed: waits seen after it are recorded again.
    public func forgetWindowWaits() { reportedWaits = [] }

    public init(audit: any AuditSink, store: any StateStore, budget: Int, prune: Bool, hooks: Hooks = Hooks()) {
        self.audit = audit
        self.store = store
        self.prune = prune
        self.hooks = hooks
        policy = CorrectionPolicy(budget: budget)
    }

    /// One pass over `services` (and the registered monitors when `monitors`; never backup
    /// policies, which have a pass of their own) of `desired`, observed through `provider` and
    /// applied through it.
    public func reconcile(
        _ services: Set<String>, monitors: Bool, desired: DesiredState, release: ReleaseRef, provider: any Provider, now: Date
    ) async throws -> Outcome {
        var observed = try await provider.observe(desired, now: now)
        observed.services = observed.services.filter { services.contains($0.key) }
        observed.backups = [:]
        var scoped = desired
        scoped.services = desired.services.filter { services.contains($0.key) }
        scoped.backupPolicies = [:]
        if !monitors {
            scoped.monitors = [:]
            observed.monitors = [:]
        }
        let plan = Planner(prune: prune).plan(
            desired: scoped, observed: observed, release: ReleaseRef(version: release.version, digest: release.digest), now: now)
        let admission = try admit(plan, desired: desired, release: release, now: now)
        var outcome = Outcome(plan: plan, allowed: admission.allowed, report: nil, retry: admission.retry)
        guard !admission.allowed.isEmpty else { return outcome }
        let report = try await Self.apply(
            admission, of: plan, with: Applier(provider: provider, audit: audit, store: store, release: release), desired: desired,
            progress: hooks.progress)
        outcome.report = report
        recordOutcomes(report, desired: desired)
        try recordOverruns(report, desired: desired, release: release)
        for result in report.results where !result.outcome.ok && result.change.resource.kind == .service {
            // A failed change is retried after the service's backoff, whatever its cause (backups
            // are retried at the next interval).
            let resource = result.change.resource.whole
            let retry = policy.recordFailure(of: resource, backoff: CorrectionPolicy.Backoff(desired.services[resource.name]), now: now)
            outcome.retry[resource] = retry.at
            if case .backedOff(let until, let seconds) = retry {
                try ResourceStatus.update(resource, in: store) {
                    $0.backoffUntil = until
                    $0.backoffSeconds = seconds
                }
            }
        }
        return outcome
    }

    /// The changes of `plan` that may go ahead now. Drift is recorded, and corrected only as the
    /// correction policy allows; notices are recorded once. The same rules for every pass.
    public func admit(_ plan: Plan, desired: DesiredState, release: ReleaseRef, now: Date) throws -> Admission {
        // Backoff and budget are kept per resource, whichever of its replicas drifted.
        let keys = plan.changes.map(\.resource.whole)
        let decisions = policy.decide(
            zip(plan.changes, keys).map { change, key in
                CorrectionPolicy.Request(
                    key: key, cause: change.cause,
                    backoff: CorrectionPolicy.Backoff(key.kind == .service ? desired.services[key.name] : nil))
            },
            now: now)
        var admission = Admission(allowed: [], retry: [:])
        // Drift is recorded now, in one append, except a replica start's, which goes with its
        // intent (`Admission.drift`): between a replica's exit and its replacement, one fsync.
        var heldDrift: [AuditRecord] = []
        for (change, (key, decision)) in zip(plan.changes, zip(keys, decisions)) {
            if change.cause == .drift {
                let drift = AuditRecord(
                    kind: .drift, release: release, change: change.id, resource: change.resource.whole.description,
                    action: change.action.rawValue, cause: change.cause.rawValue, reason: change.reason.message)
                let goesAhead: Bool
                switch decision {
                case .apply, .correct: goesAhead = true
                case .after, .budgetSpent: goesAhead = false
                }
                if goesAhead, change.action == .service(.startReplica) {
                    admission.drift[change.id] = drift
                } else {
                    heldDrift.append(drift)
                }
            }
            switch decision {
            case .apply:
                admission.allowed.append(change)
            case .correct(let correction):
                if let correction {
                    hooks.selfAlertCleared(
                        SelfAlert(.budgetExhausted, resource: key),
                        "Stet corrects \(key) again (\(correction.inLastHour) corrections in the last hour)")
                    admission.corrections[key] = correction
                }
                admission.allowed.append(change)
            case .after(let date):
                admission.retry[key] = date
            case .budgetSpent(let count, let first):
                if !heldDrift.isEmpty {
                    try audit.append(heldDrift, now: Date())
                    heldDrift = []
                }
                if first { try budgetSpent(change, corrections: count, desired: desired, release: release) }
            }
        }
        try audit.append(heldDrift, now: Date())
        try WindowRecords.recordWaits(plan, release: release, audit: audit, seen: &reportedWaits)
        for notice in plan.notices where notice.reason.code != WindowGate.waitCode {
            let key = "\(notice.resource):\(notice.reason.code)"
            guard !reportedNotices.contains(key) else { continue }
            reportedNotices.insert(key)
            try audit.append(AuditRecord(
                kind: .drift, release: release, resource: notice.resource.whole.description,
                reason: notice.reason.message + (notice.mode.map { " (drift: \($0.rawValue), not corrected)" } ?? "")))
        }
        return admission
    }

    /// Applies the changes `admission` let go ahead, of `plan`, with `applier`: the deferred
    /// drift goes with its start's intent, and afterwards, also when applying ends early, the
    /// drift of what was not tried is appended and the corrections' status written. The one way
    /// the service pass and the backup pass apply.
    public static func apply(
        _ admission: Admission, of plan: Plan, with applier: Applier, desired: DesiredState,
        progress: @escaping @Sendable (Applier.Result) -> Void
    ) async throws -> Applier.Report {
        var applier = applier
        applier.preceding = admission.drift
        var toApply = plan
        toApply.changes = admission.allowed
        let report: Applier.Report
        do {
            report = try await applier.apply(toApply, desired: desired, progress: progress)
        } catch {
            // Every drift found is in the log, and the status says what went ahead, even when
            // the pass ends early.
            try? recordUntried(admission, applier: applier, audit: applier.audit)
            try? recordCorrections(admission, store: applier.store)
            throw error
        }
        try recordUntried(admission, applier: applier, audit: applier.audit)
        try recordCorrections(admission, store: applier.store)
        return report
    }

    /// Records the drift of the starts whose intent `applier` did not append (an earlier change
    /// of their resource failed, or the pass ended early): every drift found is in the log.
    static func recordUntried(_ admission: Admission, applier: Applier, audit: any AuditSink) throws {
        let written = applier.intents.ids
        let untried = admission.allowed.filter { !written.contains($0.id) }.compactMap { admission.drift[$0.id] }
        try audit.append(untried, now: Date())
    }

    /// Writes the backoff and the count of corrections into the status of each resource that
    /// a correction of this pass went ahead for.
    static func recordCorrections(_ admission: Admission, store: any StateStore) throws {
        for (key, correction) in admission.corrections.sorted(by: { $0.key.description < $1.key.description }) {
            try ResourceStatus.update(key, in: store) {
                $0.backoffUntil = correction.until
                $0.backoffSeconds = correction.seconds
                $0.correctionsLastHour = correction.inLastHour
                $0.budgetExhausted = false
            }
        }
    }

    /// Counts failures per resource: a provider that fails the same resource three times
    /// running is alerted on, once; an action of it that succeeds clears the alert.
    public func recordOutcomes(_ report: Applier.Report, desired: DesiredState) {
        for result in report.results {
            let resource = result.change.resource.whole
            let alert = SelfAlert(.providerFailing, resource: resource)
            if policy.recordOutcome(of: resource, ok: result.outcome.ok) {
                hooks.selfAlert(alert, "\(resource) failed three times running: \(result.outcome.error ?? "")", desired)
            } else if result.outcome.ok {
                hooks.selfAlertCleared(alert, "\(result.change.action.rawValue) of \(result.change.resource) succeeded")
            }
        }
    }

    /// Changes started in a maintenance window that ended after it closed: recorded and alerted.
    public func recordOverruns(_ report: Applier.Report, desired: DesiredState, release: ReleaseRef) throws {
        for overrun in WindowRecords.overruns(report, desired: desired) {
            try WindowRecords.recordOverrun(overrun, release: release, audit: audit)
            hooks.log("\(overrun.change.id) ran past window \(overrun.window)")
            hooks.selfAlert(
                SelfAlert(.windowOverrun, resource: overrun.change.resource.whole),
                "\(overrun.change.id) ran past maintenance window \(overrun.window), which closed at \(RFC3339.format(overrun.closed))",
                desired)
        }
    }

    /// The budget of `change`'s resource was found spent: recorded, shown in its status, alerted.
    private func budgetSpent(_ change: Change, corrections count: Int, desired: DesiredState, release: ReleaseRef) throws {
        let resource = change.resource.whole
        try audit.append(AuditRecord(
            kind: .alert, release: release, resource: resource.description, action: "self-heal-budget",
            reason: "\(count) corrective actions in the last hour reached the budget of \(policy.budget); "
                + "Stet stops correcting \(resource) until the hour has passed or a release changes it",
            outcome: .failed))
        try ResourceStatus.update(resource, in: store) {
            $0.budgetExhausted = true
            $0.correctionsLastHour = count
        }
        hooks.log("self-heal budget of \(resource) exhausted")
        hooks.selfAlert(
            SelfAlert(.budgetExhausted, resource: resource), "stet stopped correcting \(resource) after \(count) corrections in an hour",
            desired)
    }
}
