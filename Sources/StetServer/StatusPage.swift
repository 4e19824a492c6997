/// The status page of `stet run --listen` (`/`): one self-contained HTML document, no external
/// assets, every text escaped. It knows rows, not Stet's types: the caller says what each
/// resource's badge and detail are.
public enum StatusPage {
    /// One resource: its name, whether it is well, the badge's text and a detail.
    public struct Resource: Sendable {
        public var name: String
        public var ok: Bool
        public var badge: String
        public var detail: String

        public init(name: String, ok: Bool, badge: String, detail: String) {
            self.name = name
            self.ok = ok
            self.badge = badge
            self.detail = detail
        }
    }

    /// One audit entry, as the page lists it.
    public struct AuditRow: Sendable {
        public var seq: Int
        public var time: String
        public var kind: String
        public var resource: String
        public var what: String

        public init(seq: Int, time: String, kind: String, resource: String, what: String) {
            self.seq = seq
            self.time = time
            self.kind = kind
            self.resource = resource
            self.what = what
        }
    }

    public static func html(release: Int, resources: [Resource], audit: [AuditRow]) -> String {
        let rows = resources.map { resource in
            "<tr><td>\(escape(resource.name))</td><td><span class=\"\(resource.ok ? "ok" : "bad")\">\(escape(resource.badge))</span></td>"
                + "<td>\(escape(resource.detail))</td></tr>"
        }
        let tail = audit.map { row in
            "<tr><td>\(row.seq)</td><td>\(escape(row.time))</td><td>\(escape(row.kind))</td><td>\(escape(row.resource))</td><td>"
                + escape(row.what) + "</td></tr>"
        }
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>stet status</title>
            <style>
            body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
            table{border-collapse:collapse;margin-bottom:2em}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}
            .ok{color:#0a0;font-weight:600}.bad{color:#c00;font-weight:600}h1{font-size:20px}td:nth-child(2){white-space:nowrap}
            </style></head><body>
            <h1>stet — release version \(release)</h1>
            <table><tr><th>resource</th><th>health</th><th>detail</th></tr>
            \(rows.joined(separator: "\n"))
            </table>
            <h2>audit log, newest last</h2>
            <table><tr><th>seq</th><th>time</th><th>kind</th><th>resource</th><th>what</th></tr>
            \(tail.joined(separator: "\n"))
            </table></body></html>
            """
    }

    /// Text for HTML content and attribute values.
    public static func escape(_ text: String) -> String {
        var escaped = ""
        escaped.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&#39;"
            default: escaped.append(character)
            }
        }
        return escaped
    }
}
