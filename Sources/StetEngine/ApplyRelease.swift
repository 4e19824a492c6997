public import Foundation
public import StetAudit
public import StetCore
public import StetManifest
public import StetPlanner
public import StetState

/// Applying a release (docs/architecture.md, "Plan, apply and the loop"): the one path of
/// `stet apply`, and later of a fleet's apply. In order, with the state lock held by the caller:
///
/// 1. `open`: the release to apply. A saved plan made for the release in force is applied on
///    that release, read back from its kept copy and verified again; otherwise the manifests'
///    release is verified (`ReleaseAcceptance.open`, which records a refusal), to be accepted
///    only once its plan is approved.
/// 2. `run`: record the actions an earlier run left without a result as interrupted; observe;
///    admit the saved plan (`PlanFile.admit`, a stale one is refused and recorded) or plan
///    afresh; ask for approval (a plan not approved is recorded, and nothing is accepted);
///    accept the new release; mark a saved plan applied; apply (`Applier`); unless told not to
///    (`Wait`), wait until every replica it started or replaced is healthy
///    (`Applier.awaitReady`): apply is done when the host is, as `stet status` will find it.
///
/// How approval is asked, and what the operator sees, are the caller's: `Hooks`.
public struct ApplyRelease: Sendable {
    public let acceptance: ReleaseAcceptance
    /// The release applied.
    public let release: ReleaseRef
    public let desired: DesiredState
    /// The verified release to accept once the plan is approved; nil when `release` is in force.
    public let candidate: Candidate?

    public struct Candidate: Sendable {
        public let passed: ReleaseGate.Passed
        public let gate: ReleaseGate
        public let commit: String?
    }

    /// Where a release to accept comes from: its gate, the git commit it was taken from, and
    /// how audit entries name it (a directory, a commit).
    public struct Source: Sendable {
        public let gate: ReleaseGate
        public let commit: String?
        public let name: String

        public init(gate: ReleaseGate, commit: String?, name: String) {
            self.gate = gate
            self.commit = commit
            self.name = name
        }
    }

    /// Step 1. `source` is asked for only when the manifests' release is needed (it may fetch
    /// from git). Throws a refusal after recording it, as `ReleaseAcceptance.open` does.
    public static func open(
        store: FileStateStore, saved: Plan?, by acting: ReleaseAcceptance.Operator, now: Date, source: () throws -> Source
    ) throws -> ApplyRelease {
        let releases = ReleaseStore(store: store)
        if let saved, try AcceptedRelease.load(from: store)?.release.isSameRelease(as: saved.release) == true,
            let inForce = try releases.inForce(trustFile: acting.repositoryTrust, now: now)
        {
            let audit = try OperatorLog.open(
                store: store, repositoryTrust: acting.repositoryTrust, key: acting.key, policy: nil, via: acting.via,
                lockTimeout: acting.lockTimeout)
            return ApplyRelease(
                acceptance: ReleaseAcceptance(store: store, audit: audit), release: releases.reference(), desired: inForce.desired,
                candidate: nil)
        }
        let source = try source()
        let (acceptance, passed) = try ReleaseAcceptance.open(source.gate, by: acting, action: "apply", source: source.name, now: now)
        var release = passed.release.release
        release.commit = source.commit
        return ApplyRelease(
            acceptance: acceptance, release: release, desired: passed.desired,
            candidate: Candidate(passed: passed, gate: source.gate, commit: source.commit))
    }

    /// What the operator answered.
    public enum Approval: Sendable {
        case approved
        /// Not approved: `how` ends the refusal entry's reason ("was declined"), `why` is its
        /// error, and `message` what `NotApproved` says.
        case withheld(how: String, why: String, message: String)
    }

    /// The plan was not approved: recorded, nothing accepted, nothing applied.
    public struct NotApproved: Error, CustomStringConvertible, Sendable {
        public let message: String
        public var description: String { message }
    }

    /// What the caller hears, in order. `approve` is asked only for a plan with changes;
    /// `progress` hears every action (changes and waits) start, report and end, from the
    /// threads that run them.
    public struct Hooks: Sendable {
        public var interrupted: @Sendable (Int) -> Void
        public var planned: @Sendable (Plan) -> Void
        /// A change started in a maintenance window ended after the window closed (recorded).
        public var overrun: @Sendable (WindowRecords.Overrun) -> Void = { _ in }
        public var approve: @Sendable (Plan) throws -> Approval
        public var progress: @Sendable (Applier.Event) -> Void
        /// A saved plan, approved and admitted, just before it is marked applied and its first
        /// action runs: a fleet claims it here (single use across the fleet). Throws to stop.
        public var claim: @Sendable (Plan) async throws -> Void

        public init(
            interrupted: @escaping @Sendable (Int) -> Void = { _ in }, planned: @escaping @Sendable (Plan) -> Void = { _ in },
            approve: @escaping @Sendable (Plan) throws -> Approval, progress: @escaping @Sendable (Applier.Event) -> Void = { _ in },
            claim: @escaping @Sendable (Plan) async throws -> Void = { _ in }
        ) {
            self.interrupted = interrupted
            self.planned = planned
            self.approve = approve
            self.progress = progress
            self.claim = claim
        }
    }

    /// A saved plan, read and signature-checked (`PlanFile.read`), and where it came from.
    public struct SavedPlan: Sendable {
        public let plan: Plan
        public let source: String

        public init(_ plan: Plan, source: String) {
            self.plan = plan
            self.source = source
        }
    }

    /// No trust policy to check a saved plan's signature with.
    public struct NoTrustPolicy: Error, CustomStringConvertible, Sendable {
        public let source: String
        public var description: String { "no trust policy to check \(source)'s signature with: pin one (`stet trust pin`)" }
    }

    /// The saved plan in `data` (from `source`), signed by an operator key of the trust policy in
    /// force and in the planner's form (`PlanFile.read`). Throws `PlanFile.Refused` (the caller
    /// records it) or `NoTrustPolicy`.
    public static func readPlan(_ data: Data, source: String, store: FileStateStore, repositoryTrust: String) throws -> SavedPlan {
        guard let policy = try OperatorLog.policyInForce(store: store, repositoryTrust: repositoryTrust, policy: nil) else {
            throw NoTrustPolicy(source: source)
        }
        let trust = AuditTrust(policy.keys(in: .operator).map { (name: $0.name, publicKey: $0.publicKey) })
        return SavedPlan(try PlanFile.read(data, source: source, trust: trust), source: source)
    }

    /// Whether `run` waits, after applying, until the replicas it started or replaced are
    /// healthy.
    public enum Wait: Sendable, Equatable {
        case none
        /// At most `timeout` seconds per replica; nil: the bound its health settings give
        /// (`ReplicaHealth.waitLimit`).
        case healthy(timeout: Double?)
    }

    public struct Outcome: Sendable {
        public let plan: Plan
        public let report: Applier.Report
        /// Actions of an earlier run recorded as interrupted.
        public let interrupted: Int
        /// The release accepted by this apply, if any.
        public let accepted: ReleaseRef?
    }

    /// Step 2, through `provider`.
    public func run(
        provider: any Provider, saved: SavedPlan?, prune: Bool, wait: Wait = .none, hooks: Hooks,
        now: @Sendable () -> Date = { Date() }
    ) async throws -> Outcome {
        let store = acceptance.store
        let audit = acceptance.audit
        let interrupted = try Applier.recoverInterrupted(store: store, audit: audit, release: ReleaseStore(store: store).reference())
        if interrupted > 0 { hooks.interrupted(interrupted) }
        let observed = try await provider.observe(desired, now: now())
        let plan: Plan
        if let saved {
            do {
                try PlanFile.admit(saved.plan, release: release, store: store, observed: observed, desired: desired, now: now())
            } catch let stale as PlanFile.Stale {
                try acceptance.recordRefusal(action: "apply", reason: "saved plan \(saved.source) was refused", error: stale.message)
                throw stale
            }
            plan = saved.plan
        } else {
            plan = Planner(prune: prune).plan(desired: desired, observed: observed, release: release, now: now())
        }
        hooks.planned(plan)
        try WindowRecords.recordWaits(plan, release: release, audit: audit)
        if !plan.changes.isEmpty, case .withheld(let how, let why, let message) = try hooks.approve(plan) {
            try acceptance.recordRefusal(
                action: "apply", reason: "plan \(plan.id) for release version \(release.version) \(how)", error: why)
            throw NotApproved(message: message)
        }
        // An approval that came after a window closed does not start what the window governs.
        if !plan.changes.isEmpty {
            do {
                try PlanFile.admitWindows(plan, release: release, observed: observed, desired: desired, now: now())
            } catch let stale as PlanFile.Stale {
                try acceptance.recordRefusal(action: "apply", reason: "plan \(plan.id) was approved too late", error: stale.message)
                throw stale
            }
        }
        // Approved (or nothing to approve): only now does a new release come into force.
        let accepted = try candidate.map { try acceptance.acceptNewest($0.passed, gate: $0.gate, commit: $0.commit, now: now()) }
        guard !plan.changes.isEmpty else {
            return Outcome(plan: plan, report: Applier.Report(), interrupted: interrupted, accepted: accepted)
        }
        if saved != nil {
            try await hooks.claim(plan)
            try PlanFile.markApplied(plan, in: store, now: now())
        }
        var applier = Applier(provider: provider, audit: audit, store: store, release: release)
        applier.events = hooks.progress
        var report = try await applier.apply(plan, desired: desired)
        if case .healthy(let timeout) = wait {
            report.waited = try await applier.awaitReady(after: report, plan: plan, desired: desired, timeout: timeout)
        }
        for overrun in WindowRecords.overruns(report, desired: desired) {
            try WindowRecords.recordOverrun(overrun, release: release, audit: audit)
            hooks.overrun(overrun)
        }
        return Outcome(plan: plan, report: report, interrupted: interrupted, accepted: accepted)
    }
}
