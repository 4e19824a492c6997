import StetCore

/// `kind: Monitor`: something to probe, and who hears when it fails.
enum MonitorDecoder {
    static let defaultTimeout = StetDuration.seconds(5)

    static func decode(_ cursor: Cursor, metadata: Metadata?, references: inout [(ResourceID, Cursor)]) -> Monitor? {
        guard let spec = cursor.mapping() else { return nil }
        defer { spec.finish() }
        var probe: Monitor.Probe?
        if let probeCursor = spec.required("probe", "http, tcp, exec, service or backup"),
            let probeMap = probeCursor.mapping()
        {
            defer { probeMap.finish() }
            if let (kind, value) = probeMap.exactlyOne(of: ["http", "tcp", "exec", "service", "backup"]) {
                switch kind {
                case "service", "backup":
                    if let name = value.string() {
                        let target = ResourceID(kind == "service" ? .service : .backupPolicy, name)
                        references.append((target, value))
                        probe = kind == "service" ? .service(name) : .backup(name)
                    }
                default:
                    probe = DocumentDecoder.decodeCheck(kind, value, forReplica: false).map(Monitor.Probe.check)
                }
            }
        }
        let interval = spec.field("interval", default: .seconds(30)) { $0.duration() }
        // Unset, the timeout is the default or the interval, whichever is shorter (as
        // Prometheus's scrape_timeout): a probe every second times out after a second.
        let timeout = spec.field("timeout", default: min(defaultTimeout, interval ?? defaultTimeout)) {
            $0.duration(atMost: .maximumTimeout)
        }
        let pendingFor = spec.field("for", default: .seconds(0)) { $0.duration(positive: false) }
        let severity = spec.field("severity", default: .warning) { $0.oneOf(Monitor.Severity.self) }
        let labels = spec.field("labels", default: [:]) { $0.stringMap(keyRule: DocumentDecoder.labelKeyProblem) }
        var notify: [String]? = []
        if let list = spec.optional("notify")?.list() {
            notify = list.compactMap { item in
                guard let name = item.string() else { return nil }
                references.append((ResourceID(.notifier, name), item))
                return name
            }
            if notify?.count != list.count { notify = nil }
        } else if spec.optional("notify") != nil {
            notify = nil
        }
        let drillEvery = spec.field("drill", default: StetDuration?.none) { cursor -> StetDuration?? in
            guard let drill = cursor.mapping() else { return nil }
            defer { drill.finish() }
            return drill.required("every", "how often a test alert goes through the notifiers, such as 7d")?.duration().map { .some($0) }
        }
        guard let metadata, let probe, let interval, let timeout, let pendingFor, let severity, let labels, let notify, let drillEvery
        else { return nil }
        if drillEvery != nil, notify.isEmpty {
            (spec.optional("drill") ?? cursor).error("expected notify: a drill proves that an alert reaches a notifier")
            return nil
        }
        if timeout > interval {
            (spec.optional("timeout") ?? cursor).error(
                "expected a timeout no longer than the interval (\(interval)): probes never overlap")
            return nil
        }
        var monitor = Monitor(
            metadata: metadata, probe: probe, interval: interval, timeout: timeout, pendingFor: pendingFor,
            severity: severity, labels: labels, notify: notify)
        monitor.drillEvery = drillEvery
        return monitor
    }
}
