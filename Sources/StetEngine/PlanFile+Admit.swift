public import Foundation
public import StetAudit
public import StetCore
public import StetCrypto
public import StetState
import StetPlanner

/// Whether a saved plan may be applied now (docs/architecture.md, "Plan files"), decided in one place from
/// what the plan carries and what is observed, never from a change's reason (reasons explain;
/// they never drive apply).
extension PlanFile {
    /// A saved plan that may not be applied any more (exit 12): made for another release,
    /// applied already, or planned from facts that no longer hold. Plan again.
    public struct Stale: Error, CustomStringConvertible, Sendable {
        public let message: String
        public var description: String { message }
    }

    /// Where the marker of an applied plan is (`plans/applied/<id>`): written before the plan's
    /// first action, so a plan is single use even across a crash.
    public static func appliedKey(_ id: String) -> String { "plans/applied/\(id)" }

    /// The signed plan in `data` (from `source`), its signature and form checked (`open`): it
    /// names the release it was made for. Throws `Refused`.
    public static func read(_ data: Data, source: String, trust: AuditTrust) throws -> Plan {
        try open(data, source: source, trust: trust).0
    }

    /// Admits `plan` (read by `read`) for applying on `release`, the release being applied: it
    /// was made for that release (version and digest); it was never applied (`appliedKey`); and
    /// every change's precondition holds in `observed` (`holds`). Reads only. Throws `Stale`.
    public static func admit(
        _ plan: Plan, release: ReleaseRef, store: any StateStore, observed: ObservedState, desired: DesiredState, now: Date
    ) throws {
        guard plan.release.isSameRelease(as: release) else {
            throw Stale(message:
                "plan \(plan.id) is for release version \(plan.release.version) (\(plan.release.digest)), not the release being "
                    + "applied, version \(release.version) (\(release.digest))")
        }
        guard try store.read(appliedKey(plan.id)) == nil else {
            throw Stale(message: "plan \(plan.id) was applied already; a saved plan is single use")
        }
        for change in plan.changes where !holds(change, in: observed) {
            throw Stale(message: "plan \(plan.id) is stale: \(change.id) was planned from facts that no longer hold; plan again")
        }
        try admitWindows(plan, release: release, observed: observed, desired: desired, now: now)
    }

    /// Refuses (`Stale`) a plan any of whose changes would have to wait for a maintenance window
    /// at `now`: checked when a saved plan is admitted, and again once a plan is approved.
    public static func admitWindows(
        _ plan: Plan, release: ReleaseRef, observed: ObservedState, desired: DesiredState, now: Date
    ) throws {
        // A plan saved inside a window is applied only while its changes may still start. What a
        // change is (its cause and disruption) is worked out again here, not taken from the plan:
        // a signed plan that calls a replacement a correction does not pass a window for it.
        let gate = WindowGate(desired)
        guard !gate.windows.isEmpty else { return }
        var planner = Planner(prune: true)
        planner.gate = false
        let fresh = Dictionary(
            planner.plan(desired: desired, observed: observed, release: release, now: now).changes.map { ($0.id, $0) },
            uniquingKeysWith: { first, _ in first })
        let spans = WindowGate.Spans(at: now)
        for saved in plan.changes {
            var change = fresh[saved.id] ?? saved
            if fresh[saved.id] == nil {
                change.cause = .config
                change.disruption = Self.disruption(of: saved)
            }
            let verdict = gate.verdict(
                for: change, labels: desired.labels(of: change.resource.whole), estimate: WindowGate.estimate(change, desired: desired),
                spans: spans)
            if case .wait(_, _, let why) = verdict {
                throw Stale(message: "plan \(plan.id) cannot start now: \(saved.id) \(why)")
            }
        }
    }

    /// The most a change of this action can disrupt, whatever the plan says.
    static func disruption(of change: Change) -> Disruption {
        switch change.action {
        case .service(.replaceReplica), .service(.stopReplica): .restart
        case .backup(.forget): .data
        default: change.disruption
        }
    }

    /// True when the facts `change` was planned from hold in `observed`: its precondition is the
    /// digest of `ObservedState.facts(for:replica:scope:)` in the scope the planner chose, and
    /// that text names its scope, so the digest equals the facts of at most one scope.
    public static func holds(_ change: Change, in observed: ObservedState) -> Bool {
        FactScope.allCases.contains { scope in
            Data(observed.facts(for: change.resource.whole, replica: change.resource.replica, scope: scope).utf8).sha256Reference
                == change.precondition
        }
    }

    /// Marks `plan` as applied, before its first action.
    public static func markApplied(_ plan: Plan, in store: any StateStore, now: Date) throws {
        try store.write(appliedKey(plan.id), Data(RFC3339.format(now).utf8))
    }

    /// Saves `plan` signed by the operator whose log is `audit` to `path`: the `save-plan` entry
    /// first (under `inForce`, the release in force), then the file, written atomically.
    public static func save(_ plan: Plan, to path: String, key: PrivateKey, audit: any AuditSink, inForce: ReleaseRef) throws {
        try audit.append(AuditRecord(
            kind: .result, release: inForce, plan: plan.id, action: "save-plan",
            reason: "plan of \(plan.changes.count) changes for release version \(plan.release.version) saved to \(path)",
            outcome: .ok))
        try AtomicFile.write(try sign(plan, with: key), to: path, mode: 0o644)
    }
}
