public import StetCore

/// A plan as people read it: like a careful diff, grouped by resource, one line per change
/// with its cause and reason, and a summary of counts by cause. Reasons quote text from outside
/// (a manifest's repository string, restic's errors), which is escaped as on a terminal
/// (`TextEscaping`): one change is one line, whatever its reason holds.
public struct PlanText: Sendable {
    /// Colours a marker or a word; identity when not on a terminal.
    public var paint: Paint = { text, _ in text }

    public typealias Paint = @Sendable (_ text: String, _ colour: Colour) -> String

    public enum Colour: Sendable { case green, yellow, red, dim }

    public init() {}

    public func render(_ plan: Plan) -> String {
        (body(plan) + [summary(plan)]).joined(separator: "\n") + "\n"
    }

    /// The lines of `render` before its summary: the changes and notices per resource.
    public func body(_ plan: Plan) -> [String] {
        var lines: [String] = []
        let resources = (plan.changes.map(\.resource.whole) + plan.notices.map(\.resource.whole)).reduce(into: [ResourceID]()) {
            if !$0.contains($1) { $0.append($1) }
        }
        for resource in resources {
            lines.append(resource.description)
            for change in plan.changes where change.resource.whole == resource {
                let (marker, colour): (String, Colour) = switch change.action {
                case .service(.startReplica), .backup(.initRepository), .backup(.backup): ("+", .green)
                case .service(.stopReplica), .backup(.forget), .backup(.removeState): ("-", .red)
                default: ("~", .yellow)
                }
                let target = Self.target(change.resource)
                let plain = "  \(marker) \(change.action) \(target)"
                lines.append("  \(paint(marker, colour)) \(change.action) \(target)"
                    + String(repeating: " ", count: max(1, 36 - plain.count))
                    + "(\(change.cause.rawValue): \(TextEscaping.escape(change.reason.message)))")
                if let before = change.before?["spec"], let after = change.after?["spec"], before != after {
                    lines.append(paint("      spec \(before.suffix(12)) → \(after.suffix(12))", .dim))
                }
            }
            for notice in plan.notices where notice.resource.whole == resource {
                let target = Self.target(notice.resource)
                let why = notice.mode.map { "drift, \($0.rawValue): not corrected" }
                    ?? (notice.reason.code == WindowGate.waitCode ? "waits" : "left alone")
                lines.append("  \(paint("!", .yellow)) \(target) \(why): \(TextEscaping.escape(notice.reason.message))")
            }
        }
        return lines
    }

    /// The name, with the replica's index for a replica (`web#1`).
    static func target(_ resource: ResourceID) -> String {
        resource.replica.map { "\(resource.name)#\($0)" } ?? resource.name
    }

    /// The counts of a proposal's plan, which has no release and no id to apply it by.
    public func proposalSummary(_ plan: Plan) -> String {
        guard !plan.changes.isEmpty else {
            return "No changes: the host would match the proposal" + (plan.notices.isEmpty ? "." : " (\(plan.notices.count) notice\(plan.notices.count == 1 ? "" : "s")).")
        }
        let noun = plan.changes.count == 1 ? "change" : "changes"
        return "Proposal: \(plan.changes.count) \(noun) (\(counts(plan)))"
            + (plan.notices.isEmpty ? "" : ", \(plan.notices.count) notice\(plan.notices.count == 1 ? "" : "s")") + "; unsigned, not applicable."
    }

    func counts(_ plan: Plan) -> String {
        [ChangeCause.config, .drift, .schedule].compactMap { cause -> String? in
            let n = plan.changes.filter { $0.cause == cause }.count
            return n == 0 ? nil : "\(n) \(cause.rawValue)"
        }.joined(separator: ", ")
    }

    public func summary(_ plan: Plan) -> String {
        let release = "release version \(plan.release.version)"
        guard !plan.changes.isEmpty else {
            return "No changes: the host matches \(release)" + (plan.notices.isEmpty ? "." : " (\(plan.notices.count) notice\(plan.notices.count == 1 ? "" : "s")).")
        }
        let counts = [ChangeCause.config, .drift, .schedule].compactMap { cause -> String? in
            let n = plan.changes.filter { $0.cause == cause }.count
            return n == 0 ? nil : "\(n) \(cause.rawValue)"
        }
        let noun = plan.changes.count == 1 ? "change" : "changes"
        return "Plan \(plan.id): \(plan.changes.count) \(noun) (\(counts.joined(separator: ", ")))"
            + (plan.notices.isEmpty ? "" : ", \(plan.notices.count) notice\(plan.notices.count == 1 ? "" : "s")") + " for \(release)."
    }
}
