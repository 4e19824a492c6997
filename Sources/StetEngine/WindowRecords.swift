public import Foundation
public import StetAudit
public import StetCore
import StetPlanner

/// What maintenance windows leave in the audit log (docs/architecture.md, "Maintenance
/// windows"): each change that waits for a window, once per wait (kind `window`), and each
/// change started in a window that ended after the window closed (kind `window`, outcome
/// failed). A change started in a window names it in its reason, so its intent says so.
public enum WindowRecords {
    public struct Overrun: Sendable, Equatable {
        public var change: Change
        public var window: String
        public var closed: Date
        public var ended: Date
    }

    /// Records the changes of `plan` that wait for a window, except those whose wait is in
    /// `seen` (the loop records each wait once; `apply` records each run's).
    public static func recordWaits(_ plan: Plan, release: ReleaseRef, audit: any AuditSink, seen: inout Set<String>) throws {
        for notice in plan.notices where notice.reason.code == WindowGate.waitCode {
            let key = waitKey(notice)
            guard seen.insert(key).inserted else { continue }
            try audit.append(AuditRecord(
                kind: .window, release: release, resource: notice.resource.whole.description, action: "wait",
                reason: "\(notice.resource): \(notice.reason.message)"))
        }
    }

    public static func recordWaits(_ plan: Plan, release: ReleaseRef, audit: any AuditSink) throws {
        var seen: Set<String> = []
        try recordWaits(plan, release: release, audit: audit, seen: &seen)
    }

    /// A wait's identity: its resource and message without the time left (`, in 5h12m`).
    static func waitKey(_ notice: Notice) -> String {
        "\(notice.resource) " + notice.reason.message.replacing(/, in [0-9dhms]+\)/, with: ")")
    }

    /// The actions of `report` that started in an allow window and ended after it closed.
    public static func overruns(_ report: Applier.Report, desired: DesiredState) -> [Overrun] {
        let gate = WindowGate(desired)
        guard !gate.windows.isEmpty else { return [] }
        var found: [String: Overrun] = [:]
        for result in report.results + report.waited {
            let change = result.change
            let started = result.endedAt.addingTimeInterval(-result.seconds)
            let verdict = gate.verdict(
                for: change, labels: desired.labels(of: change.resource.whole), estimate: 0, now: started)
            guard case .inWindow(let name, let closes) = verdict, result.endedAt > closes else { continue }
            let overrun = Overrun(change: change, window: name, closed: closes, ended: result.endedAt)
            if let earlier = found[change.id], earlier.ended >= overrun.ended { continue }
            found[change.id] = overrun
        }
        return found.values.sorted { $0.change.id < $1.change.id }
    }

    public static func recordOverrun(_ overrun: Overrun, release: ReleaseRef, audit: any AuditSink) throws {
        try audit.append(AuditRecord(
            kind: .window, release: release, change: overrun.change.id, resource: overrun.change.resource.whole.description,
            action: "overrun",
            reason: "\(overrun.change.id) started in window \(overrun.window) and ended "
                + "\(StetDuration.approximate(seconds: overrun.ended.timeIntervalSince(overrun.closed))) after it closed "
                + "at \(RFC3339.format(overrun.closed))",
            outcome: .failed))
    }
}
