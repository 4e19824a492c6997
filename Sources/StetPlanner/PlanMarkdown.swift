public import StetCore

/// A plan as a pull request comment: a summary table by cause, then the changes per resource.
///
/// Reasons quote text from outside (a repository string from a manifest, restic's errors, how a
/// replica ended), and the comment is rendered as Markdown with HTML: such text could end its
/// table row, add a heading, an image that calls out, a link with misleading words, or a
/// `<details>` that folds away every change after it. Each cell is therefore text only (`cell`).
public enum PlanMarkdown {
    public static func render(_ plan: Plan) -> String {
        var lines = ["### stet plan for release version \(plan.release.version)", ""]
        guard !plan.changes.isEmpty || !plan.notices.isEmpty else {
            return (lines + ["No changes: the host matches release version \(plan.release.version).", ""]).joined(separator: "\n")
        }
        lines += ["| cause | changes |", "|---|---|"] + causeRows(plan)
        lines += [""] + changeTable(plan)
        lines += ["", "<sub>plan \(plan.id), release digest `\(plan.release.digest)`</sub>", ""]
        return lines.joined(separator: "\n")
    }

    /// One row per cause with changes (`| config | 2 |`), and the notices.
    private static func causeRows(_ plan: Plan) -> [String] {
        var rows: [String] = []
        for cause in [ChangeCause.config, .drift, .schedule] {
            let count = plan.changes.filter { $0.cause == cause }.count
            if count > 0 { rows.append("| \(cause.rawValue) | \(count) |") }
        }
        if !plan.notices.isEmpty { rows.append("| notices | \(plan.notices.count) |") }
        return rows
    }

    /// The ordered changes, then the notices, one row each.
    static func changeTable(_ plan: Plan) -> [String] {
        var lines = ["| resource | action | cause | why |", "|---|---|---|---|"]
        for change in plan.changes {
            lines.append("| `\(change.resource)` | \(change.action) | \(change.cause.rawValue) | \(cell(change.reason.message)) |")
        }
        for notice in plan.notices {
            lines.append("| `\(notice.resource)` | — | \(notice.mode?.rawValue ?? "notice") | \(cell(notice.reason.message)) |")
        }
        return lines
    }

    /// Characters that Markdown (GitHub's, with tables and strikethrough) or HTML read as markup
    /// inside a table cell.
    static let markup: Set<Character> = ["\\", "`", "*", "_", "~", "[", "]", "<", ">", "&", "|"]

    /// `text` as the text of one table cell, shown as written: control characters, newlines and
    /// invisible formatting escaped as on a terminal (`TextEscaping`), then every character of
    /// `markup` escaped with a backslash.
    public static func cell(_ text: String) -> String {
        var out = ""
        for character in TextEscaping.escape(text) {
            if markup.contains(character) { out.append("\\") }
            out.append(character)
        }
        return out
    }
}
