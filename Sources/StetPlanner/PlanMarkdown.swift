public import StetCore

/// A plan as a pull request comment: a summary table by cause, then the changes per resource.
public enum PlanMarkdown {
    public static func render(_ plan: Plan) -> String {
        var lines = ["### stet plan for release version \(plan.release.version)", ""]
        guard !plan.changes.isEmpty || !plan.notices.isEmpty else {
            return (lines + ["No changes: the host matches release version \(plan.release.version).", ""]).joined(separator: "\n")
        }
        lines += ["| cause | changes |", "|---|---|"]
        for cause in [ChangeCause.config, .drift, .schedule] {
            let count = plan.changes.filter { $0.cause == cause }.count
            if count > 0 { lines.append("| \(cause.rawValue) | \(count) |") }
        }
        if !plan.notices.isEmpty { lines.append("| notices | \(plan.notices.count) |") }
        lines += ["", "| resource | action | cause | why |", "|---|---|---|---|"]
        func cell(_ text: String) -> String { text.replacingOccurrences(of: "|", with: "\\|") }
        for change in plan.changes {
            let target = change.replica.map { "#\($0)" } ?? ""
            lines.append("| `\(change.resource)\(target)` | \(change.action) | \(change.cause.rawValue) | \(cell(change.reason.message)) |")
        }
        for notice in plan.notices {
            lines.append("| `\(notice.resource)\(notice.replica.map { "#\($0)" } ?? "")` | — | \(notice.mode?.rawValue ?? "notice") | \(cell(notice.reason.message)) |")
        }
        lines += ["", "<sub>plan \(plan.id), release digest `\(plan.release.digest)`</sub>", ""]
        return lines.joined(separator: "\n")
    }
}
