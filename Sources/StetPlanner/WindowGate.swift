public import Foundation
public import StetCore

/// Maintenance windows applied to changes (docs/architecture.md, "Maintenance windows"): which
/// changes may start now, and which wait, for which window, until when. Pure: the same
/// windows, change and `now` give the same verdict.
///
/// - A **deny** window that governs a change holds it while open, and holds a disruptive
///   change that would still run when it opens.
/// - A **correction** (cause drift: a dead replica restarted, an unhealthy one replaced) and a
///   change that disrupts nothing run unless a deny window holds them.
/// - Any other disruptive change (a new spec, a scale-down, a forget) governed by an **allow**
///   window starts only while one is open and only when its worst case (`estimate`) ends
///   before that window closes; otherwise it waits for the next opening.
public struct WindowGate: Sendable {
    public enum Verdict: Equatable, Sendable {
        /// No window has a say.
        case run
        /// An allow window is open and the change fits in it.
        case inWindow(name: String, closes: Date)
        /// Held: by a deny window (until it closes) or waiting for an allow window to open
        /// (`opens` nil: no opening in sight).
        case wait(name: String, opens: Date?, why: String)
    }

    public let windows: [MaintenanceWindow]

    public init(_ desired: DesiredState) {
        windows = desired.windows.values.sorted { $0.name < $1.name }
    }

    /// Each window's span open at one moment and its next span, worked out once for all the
    /// changes judged at that moment.
    public final class Spans: @unchecked Sendable {
        let now: Date
        private var open: [String: DateInterval?] = [:]
        private var next: [String: DateInterval?] = [:]

        public init(at now: Date) { self.now = now }

        func open(_ window: MaintenanceWindow) -> DateInterval? {
            if let known = open[window.name] { return known }
            let span = window.openSpan(at: now)
            open[window.name] = .some(span)
            return span
        }

        func next(_ window: MaintenanceWindow) -> DateInterval? {
            if let known = next[window.name] { return known }
            let span = window.nextSpan(after: now)
            next[window.name] = .some(span)
            return span
        }
    }

    /// The verdict on `change` of a resource carrying `labels`, whose worst case takes
    /// `estimate` seconds, at `now`.
    public func verdict(for change: Change, labels: [String: String], estimate: Double, now: Date) -> Verdict {
        verdict(for: change, labels: labels, estimate: estimate, spans: Spans(at: now))
    }

    /// The same, with the spans of `spans.now` shared between calls.
    public func verdict(for change: Change, labels: [String: String], estimate: Double, spans: Spans) -> Verdict {
        let now = spans.now
        let governing = windows.filter { $0.governs(labels: labels, disruption: change.disruption) }
        guard !governing.isEmpty else { return .run }
        let end = now.addingTimeInterval(estimate)
        for deny in governing where deny.mode == .deny {
            if let open = spans.open(deny) {
                return .wait(name: deny.name, opens: open.end,
                             why: "held by deny window \(deny.name) until \(deny.describe(open.end, from: now))")
            }
            if change.disruption != .none, let next = spans.next(deny), next.start < end {
                return .wait(name: deny.name, opens: next.end,
                             why: "would still run when deny window \(deny.name) opens at \(deny.describe(next.start, from: now)); "
                                + "held until it closes at \(deny.describe(next.end, from: now))")
            }
        }
        guard change.cause != .drift, change.disruption != .none else { return .run }
        let allows = governing.filter { $0.mode == .allow }
        guard !allows.isEmpty else { return .run }
        var tooShort: (MaintenanceWindow, DateInterval)?
        for allow in allows {
            guard let open = spans.open(allow) else { continue }
            if open.end >= end { return .inWindow(name: allow.name, closes: open.end) }
            tooShort = tooShort ?? (allow, open)
        }
        // The allow window opening first (after any that is open but too short).
        let next = allows.compactMap { allow in spans.next(allow).map { (allow, $0) } }
            .filter { $0.1.duration >= estimate }
            .min { $0.1.start < $1.1.start }
        let waitFor = next?.0 ?? tooShort?.0 ?? allows[0]
        var why = next.map { "waits for window \($0.0.name) (opens \($0.0.describe($0.1.start, from: now)), "
            + "in \(StetDuration.approximate(seconds: $0.1.start.timeIntervalSince(now))))" }
            ?? "waits for window \(waitFor.name), which opens for no span long enough"
        if let (window, open) = tooShort {
            why = "would not finish before window \(window.name) closes at \(window.describe(open.end, from: now)) "
                + "(takes up to \(StetDuration.approximate(seconds: estimate))); " + why
        }
        return .wait(name: waitFor.name, opens: next?.1.start, why: why)
    }

    /// The longest `change` may take, in seconds, as far as the release says: the stop
    /// timeout of what it stops, and the readiness bound (start period, then `failureThreshold`
    /// checks) of what it starts. A forget, whose time restic decides, counts as 10 minutes.
    public static func estimate(_ change: Change, desired: DesiredState) -> Double {
        switch change.action {
        case .service(let action):
            guard let service = desired.services[change.resource.name] else { return 60 }
            let stop = service.run.stopTimeout.seconds
            let ready = service.health.map { $0.startPeriod.seconds + $0.interval.seconds * Double($0.failureThreshold) + $0.timeout.seconds } ?? 1
            switch action {
            case .startReplica: return ready
            case .replaceReplica: return stop + ready
            case .stopReplica: return stop
            }
        case .backup(.forget): return 600
        case .backup, .monitor: return 60
        }
    }

    /// `plan`'s changes gated: those that wait become notices (code `window-wait`) and leave
    /// the plan; those started in an allow window say so in their reason.
    public func apply(to plan: inout Plan, desired: DesiredState, now: Date) {
        guard !windows.isEmpty else { return }
        var kept: [Change] = []
        let spans = Spans(at: now)
        for var change in plan.changes {
            let labels = desired.labels(of: change.resource.whole)
            switch verdict(for: change, labels: labels, estimate: Self.estimate(change, desired: desired), spans: spans) {
            case .run:
                kept.append(change)
            case .inWindow(let name, let closes):
                let window = windows.first { $0.name == name }
                change.reason.message += " (in window \(name) until \(window?.describe(closes, from: now) ?? RFC3339.format(closes)))"
                kept.append(change)
            case .wait(_, _, let why):
                plan.notices.append(Notice(
                    resource: change.resource, mode: nil,
                    reason: Reason(Self.waitCode, "\(change.action) (\(change.cause.rawValue): \(change.reason.message)) \(why)")))
            }
        }
        plan.changes = kept
    }

    /// The code of a notice for a change that waits for a window.
    public static let waitCode = "window-wait"

    /// The first moment after `now` at which any window opens or closes: when waiting work
    /// may start, or work must stop starting.
    public func nextTransition(after now: Date) -> Date? {
        windows.flatMap { window -> [Date] in
            if let open = window.openSpan(at: now) { return [open.end] }
            return window.nextSpan(after: now).map { [$0.start] } ?? []
        }.filter { $0 > now }.min()
    }
}
