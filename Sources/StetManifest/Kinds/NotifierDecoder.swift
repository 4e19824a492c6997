import StetCore

/// `kind: Notifier`: where alerts go.
enum NotifierDecoder {
    static func decode(_ cursor: Cursor, metadata: Metadata?) -> Notifier? {
        guard let spec = cursor.mapping() else { return nil }
        defer { spec.finish() }
        var target: Notifier.Target?
        if let (kind, value) = spec.exactlyOne(of: ["alertmanager", "webhook", "exec", "log"]) {
            switch kind {
            case "alertmanager", "webhook":
                if let map = value.mapping() {
                    defer { map.finish() }
                    if let url = map.required("url", "an http:// URL")?.string() {
                        if let problem = DocumentDecoder.urlProblem(url) {
                            map.optional("url")?.error(problem)
                        } else {
                            target = kind == "webhook" ? .webhook(url: url) : .alertmanager(url: url)
                        }
                    }
                }
            case "exec":
                if let map = value.mapping() {
                    defer { map.finish() }
                    target = map.required("command", "a list: program and arguments")?.stringList(nonEmpty: true)
                        .map(Notifier.Target.exec)
                }
            default:
                if value.isNull {
                    target = .log
                } else if let map = value.mapping() {
                    map.finish()
                    target = .log
                }
            }
        }
        guard let metadata, let target else { return nil }
        return Notifier(metadata: metadata, target: target)
    }
}
