public import StetCore

/// An unsigned proposal as people read it (`stet plan --proposal`): a heading that says it is
/// unsigned and cannot be applied, what it changes in the desired state per resource and field
/// (`DesiredDiff`), and the ordered plan against the host's observed state.
///
/// Everything shown comes from unsigned input or from a snapshot: values are escaped as on a
/// terminal (text) or as table cells (`PlanMarkdown.cell`), and at most `maximumRows` field
/// rows and `maximumRows` changes are shown, followed by how many more there are.
public struct ProposalReport: Sendable {
    public var diff: DesiredDiff
    public var plan: Plan
    /// What the diff is against (`release version 3 (sha256:…), in force`).
    public var base: String
    /// Where the observed state comes from (`this host, observed now`).
    public var observed: String
    /// Said under the heading (a snapshot taken under another release than the base).
    public var warnings: [String] = []

    /// The most field rows, and the most changes, shown by `text` and `markdown`.
    public static let maximumRows = 500

    public static let heading = "Unsigned proposal: a preview, not applicable."
    static let advice = "It cannot be saved or applied: sign it as a release (`stet release sign`), then plan and apply that."

    public init(diff: DesiredDiff, plan: Plan, base: String, observed: String) {
        self.diff = diff
        self.plan = plan
        self.base = base
        self.observed = observed
    }

    /// Field rows in order, as (resource, change, field), with how many rows were left out.
    func fieldRows() -> (rows: [(DesiredDiff.Resource, DesiredDiff.Field?)], more: Int) {
        var rows: [(DesiredDiff.Resource, DesiredDiff.Field?)] = []
        var total = 0
        for resource in diff.resources {
            let fields: [DesiredDiff.Field?] = resource.fields.isEmpty ? [nil] : resource.fields
            total += fields.count + resource.moreFields
            for field in fields where rows.count < Self.maximumRows { rows.append((resource, field)) }
        }
        return (rows, total - rows.count)
    }

    public func text(paint: @escaping PlanText.Paint = { text, _ in text }) -> String {
        func show(_ value: String?) -> String { value.map { TextEscaping.escape($0) } ?? "(none)" }
        var lines = [paint(Self.heading, .yellow), Self.advice, "Compared with: \(base).", "Observed: \(TextEscaping.escape(observed))."]
        lines += warnings.map { paint("warning", .yellow) + ": " + TextEscaping.escape($0) } + [""]
        lines.append(diff.isEmpty
            ? "Desired state: no resource differs."
            : "Desired state: \(diff.count(.added)) added, \(diff.count(.changed)) changed, \(diff.count(.removed)) removed.")
        let (rows, more) = fieldRows()
        var last: ResourceID?
        for (resource, field) in rows {
            if resource.resource != last {
                lines.append("\(resource.resource)  \(resource.change.rawValue)")
                last = resource.resource
            }
            guard let field else { continue }
            switch (field.old, field.new) {
            case (nil, let new): lines.append("  \(paint("+", .green)) \(field.path): \(show(new))")
            case (let old, nil): lines.append("  \(paint("-", .red)) \(field.path): \(show(old))")
            case (let old, let new): lines.append("  \(paint("~", .yellow)) \(field.path): \(show(old)) → \(show(new))")
            }
        }
        if more > 0 { lines.append("… \(more) more fields not shown (--format json lists every resource)") }
        lines += ["", "Changes against the observed state:"]
        var renderer = PlanText()
        renderer.paint = paint
        var shown = plan
        shown.changes = Array(plan.changes.prefix(Self.maximumRows))
        shown.notices = Array(plan.notices.prefix(Self.maximumRows))
        lines.append(renderer.body(shown).joined(separator: "\n"))
        let hidden = plan.changes.count - shown.changes.count + plan.notices.count - shown.notices.count
        if hidden > 0 { lines.append("… \(hidden) more changes and notices not shown (--format json lists them all)") }
        lines.append(renderer.proposalSummary(plan))
        return lines.joined(separator: "\n") + "\n"
    }

    /// For a pull request comment: a summary table, the field diff, then the ordered changes.
    public func markdown() -> String {
        var lines = ["### stet plan for an unsigned proposal (not applicable)", "",
                     "> " + PlanMarkdown.cell(Self.heading) + " " + Self.advice, "",
                     "Compared with " + PlanMarkdown.cell(base) + "; observed: " + PlanMarkdown.cell(observed) + ".", ""]
        for warning in warnings { lines += ["> **Warning:** " + PlanMarkdown.cell(warning), ""] }
        lines += ["| | count |", "|---|---|"]
        for change in [DesiredDiff.Change.added, .changed, .removed] {
            lines.append("| resources \(change.rawValue) | \(diff.count(change)) |")
        }
        for cause in [ChangeCause.config, .drift, .schedule] {
            let count = plan.changes.filter { $0.cause == cause }.count
            if count > 0 { lines.append("| \(cause.rawValue) changes | \(count) |") }
        }
        if plan.changes.isEmpty { lines.append("| changes | 0 |") }
        if !plan.notices.isEmpty { lines.append("| notices | \(plan.notices.count) |") }
        lines += ["", "#### Desired state"]
        if diff.isEmpty {
            lines += ["", "No resource differs."]
        } else {
            lines += ["", "| resource | change | field | old | new |", "|---|---|---|---|---|"]
            let (rows, more) = fieldRows()
            for (resource, field) in rows {
                lines.append("| `\(resource.resource)` | \(resource.change.rawValue) | "
                    + (field.map { "`\(PlanMarkdown.cell($0.path))` | \(Self.cell($0.old)) | \(Self.cell($0.new))" } ?? "— | — | —") + " |")
            }
            if more > 0 { lines += ["", "… \(more) more fields not shown."] }
        }
        lines += ["", "#### Changes against the observed state", ""]
        if plan.changes.isEmpty && plan.notices.isEmpty {
            lines.append("No changes: the host would match the proposal.")
        } else {
            var shown = plan
            shown.changes = Array(plan.changes.prefix(Self.maximumRows))
            shown.notices = Array(plan.notices.prefix(Self.maximumRows))
            lines += PlanMarkdown.changeTable(shown)
            let hidden = plan.changes.count - shown.changes.count + plan.notices.count - shown.notices.count
            if hidden > 0 { lines += ["", "… \(hidden) more changes and notices not shown."] }
        }
        lines.append("")
        return lines.joined(separator: "\n")
    }

    static func cell(_ value: String?) -> String { value.map { PlanMarkdown.cell($0) } ?? "—" }
}
