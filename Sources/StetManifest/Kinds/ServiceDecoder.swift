import StetCore

/// `kind: Service`: redundancy for one program.
enum ServiceDecoder {
    static let signals = ["SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGKILL"]
    static let defaultBackoff = (initial: StetDuration(milliseconds: 500), max: StetDuration.seconds(60))
    static let defaultHealthTimeout = StetDuration.seconds(2)

    static func decode(_ cursor: Cursor, metadata: Metadata?, references: inout [(ResourceID, Cursor)]) -> Service? {
        guard let spec = cursor.mapping() else { return nil }
        defer { spec.finish() }
        let replicas = spec.required("replicas", "how many copies run")?.int(in: 0...Service.maximumReplicas)
        let run = spec.required("run", "command and how to run it").flatMap { decodeRun($0, replicas: replicas) }
        let health = spec.field("health", decodeHealth)
        let backoff = spec.field("restart", default: defaultBackoff) { cursor in
            guard let restart = cursor.mapping() else { return nil }
            defer { restart.finish() }
            return restart.field("backoff", default: defaultBackoff, decodeBackoff)
        }
        let maxUnavailable = spec.field("update", default: 1) { cursor in
            guard let update = cursor.mapping() else { return nil }
            defer { update.finish() }
            return update.field("maxUnavailable", default: 1) { $0.int(in: 1...1000) }
        }
        let drift = spec.field("drift", default: .correct) { $0.oneOf(DriftMode.self) }
        let protect = spec.field("protect", default: false) { $0.bool() }
        let placement = spec.field("placement", default: (selector: [String: String](), spread: String?.none), decodePlacement)
        let failover = spec.field("failover", default: Service.Failover?.none) { cursor in decodeFailover(cursor).map(Optional.some) }
        let drill = spec.field("drill", default: Service.Drill?.none) { cursor in
            decodeDrill(cursor, references: &references).map(Optional.some)
        }
        guard let metadata, let replicas, let run, let health, let backoff, let maxUnavailable, let drift, let protect, let placement,
            let failover, let drill
        else { return nil }
        var service = Service(
            metadata: metadata, replicas: replicas, run: run, health: health, backoffInitial: backoff.initial,
            backoffMax: backoff.max, maxUnavailable: maxUnavailable, drift: drift, protect: protect)
        service.placement = placement.selector
        service.spread = placement.spread
        service.failover = failover
        if drill != nil {
            let field = spec.optional("drill") ?? cursor
            if replicas < 2 {
                field.error("expected at least 2 replicas for a drill: it kills one, and a single replica has no redundancy to test")
                return nil
            }
            if drift != .correct {
                field.error("expected drift: correct for a drill: with drift: \(drift.rawValue) nothing replaces the replica it kills")
                return nil
            }
        }
        service.drill = drill
        return service
    }

    /// The longest a drill may give a replacement to become healthy.
    static let maximumRecovery = StetDuration.seconds(300)

    /// `drill: {every: 7d, window: nightly, recoverWithin: 10s, host: false}`.
    static func decodeDrill(_ cursor: Cursor, references: inout [(ResourceID, Cursor)]) -> Service.Drill? {
        guard let drill = cursor.mapping() else { return nil }
        defer { drill.finish() }
        let every = drill.required("every", "how often the drill runs, such as 7d")?.duration()
        let window = drill.field("window") { cursor -> String? in
            guard let name = cursor.string() else { return nil }
            references.append((ResourceID(.maintenanceWindow, name), cursor))
            return name
        }
        let recover = drill.field("recoverWithin", default: .seconds(30)) { $0.duration(atMost: maximumRecovery) }
        let host = drill.field("host", default: false) { $0.bool() }
        guard let every, let window, let recover, let host else { return nil }
        return Service.Drill(every: every, window: window, recoverWithin: recover, host: host)
    }

    /// The longest a promote or demote command may run.
    static let maximumRoleTimeout = StetDuration.seconds(300)

    /// `failover: {mode: primary, promote: [cmd…], demote: [cmd…], fence: demote|stop,
    /// prefer: {zone: a}, timeout: 10s}`: one primary among the replicas across a fleet.
    static func decodeFailover(_ cursor: Cursor) -> Service.Failover? {
        guard let failover = cursor.mapping() else { return nil }
        defer { failover.finish() }
        let mode = failover.required("mode", "primary: one replica is the primary, the others standbys").flatMap { cursor -> String? in
            guard let text = cursor.string() else { return nil }
            guard text == "primary" else {
                cursor.error("expected mode primary, found \"\(text.prefix(40))\"")
                return nil
            }
            return text
        }
        let promote = failover.field("promote", default: []) { $0.stringList(nonEmpty: true) }
        let demote = failover.field("demote", default: []) { $0.stringList(nonEmpty: true) }
        let fence = failover.field("fence", default: .demote) { $0.oneOf(Service.Failover.Fence.self) }
        let prefer = failover.field("prefer", default: [:]) { $0.stringMap(keyRule: DocumentDecoder.labelKeyProblem) }
        let timeout = failover.field("timeout", default: .seconds(10)) { $0.duration(atMost: maximumRoleTimeout) }
        guard mode != nil, let promote, let demote, let fence, let prefer, let timeout else { return nil }
        if demote.isEmpty && fence == .demote {
            cursor.error("expected a demote command, or fence: stop (a primary that cannot be demoted must be stopped to be fenced)")
            return nil
        }
        return Service.Failover(promote: promote, demote: demote, fence: fence, prefer: prefer, timeout: timeout)
    }

    /// `placement: {selector: {zone: a}, spread: zone}`: where a fleet runs the replicas (one host ignores it).
    static func decodePlacement(_ cursor: Cursor) -> (selector: [String: String], spread: String?)? {
        guard let placement = cursor.mapping() else { return nil }
        defer { placement.finish() }
        let selector = placement.field("selector", default: [:]) { $0.stringMap(keyRule: DocumentDecoder.labelKeyProblem) }
        let spread = placement.field("spread", default: String?.none) { cursor -> String?? in
            guard let label = cursor.string() else { return nil }
            if let problem = DocumentDecoder.labelKeyProblem(label) {
                cursor.error(problem)
                return nil
            }
            return .some(label)
        }
        guard let selector, let spread else { return nil }
        return (selector, spread)
    }

    /// `replicas`, when known, bounds `ports.start`: replica *i* gets `start + i`, and the last
    /// one's port must exist.
    static func decodeRun(_ cursor: Cursor, replicas: Int?) -> Service.Run? {
        guard let run = cursor.mapping() else { return nil }
        defer { run.finish() }
        let command = run.required("command", "a list: program and arguments")?.stringList(nonEmpty: true)
        let workingDir = run.field("workingDir") { $0.string() }
        let env = run.field("env", default: [:]) { $0.stringMap(keyRule: envKeyProblem) }
        let portsStart = run.field("ports") { cursor -> Int? in
            guard let ports = cursor.mapping() else { return nil }
            defer { ports.finish() }
            guard let startCursor = ports.required("start", "the first replica's port"),
                let start = startCursor.int(in: 1...65535)
            else { return nil }
            if let replicas, replicas > 1, start > 65536 - replicas {
                startCursor.error("expected a start of at most \(65536 - replicas) for \(replicas) replicas: "
                    + "replica \(replicas - 1) would get PORT=\(start + replicas - 1), beyond 65535")
                return nil
            }
            return start
        }
        let stopSignal = run.field("stopSignal", default: "SIGTERM") { cursor -> String? in
            guard let text = cursor.string() else { return nil }
            let signal = text.hasPrefix("SIG") ? text : "SIG" + text
            guard signals.contains(signal) else {
                cursor.error("expected one of \(signals.joined(separator: ", ")), found \"\(text)\"")
                return nil
            }
            return signal
        }
        let stopTimeout = run.field("stopTimeout", default: .seconds(10)) { $0.duration(atMost: .maximumTimeout) }
        let user = run.field("user") { cursor -> String? in
            guard let name = cursor.string() else { return nil }
            if let problem = userProblem(name) {
                cursor.error(problem)
                return nil
            }
            return name
        }
        guard let command, let workingDir, let env, let portsStart, let stopSignal, let stopTimeout, let user else { return nil }
        return Service.Run(
            command: command, workingDir: workingDir, env: env, portsStart: portsStart, stopSignal: stopSignal,
            stopTimeout: stopTimeout, user: user)
    }

    /// A user name as useradd takes it (a lower-case letter or `_`, then up to 31 lower-case
    /// letters, digits, `_` or `-`), and not root: a replica running as root could change
    /// Stet's state and audit log.
    static func userProblem(_ name: String) -> String? {
        let bytes = Array(name.utf8)
        func allowed(_ byte: UInt8, first: Bool) -> Bool {
            (byte >= 0x61 && byte <= 0x7A) || byte == 0x5F || (!first && ((byte >= 0x30 && byte <= 0x39) || byte == 0x2D))
        }
        guard (1...32).contains(bytes.count), allowed(bytes[0], first: true), bytes.dropFirst().allSatisfy({ allowed($0, first: false) })
        else {
            let shown = name.count > 40 ? String(name.prefix(40)) + "…" : name
            return "expected a user name (a lower-case letter or '_', then up to 31 lower-case letters, digits, '_' or '-'), "
                + "found \"\(shown)\""
        }
        if name == "root" {
            return "expected an unprivileged user: a replica running as root could change Stet's state and audit log"
        }
        return nil
    }

    static func envKeyProblem(_ key: String) -> String? {
        guard !key.isEmpty, !key.utf8.contains(UInt8(ascii: "=")), !key.utf8.contains(0) else {
            return "expected an environment variable name without '=', found \"\(key)\""
        }
        return key == "PORT" ? "PORT is set by Stet from run.ports.start" : nil
    }

    static func decodeHealth(_ cursor: Cursor) -> Service.Health? {
        guard let health = cursor.mapping() else { return nil }
        defer { health.finish() }
        let check = health.exactlyOne(of: ["http", "tcp", "exec"]).flatMap {
            DocumentDecoder.decodeCheck($0.0, $0.1, forReplica: true)
        }
        let interval = health.field("interval", default: .seconds(10)) { $0.duration() }
        // Unset, the timeout is the default or the interval, whichever is shorter (as a
        // monitor's): a check every 500ms times out after 500ms.
        let timeout = health.field("timeout", default: min(defaultHealthTimeout, interval ?? defaultHealthTimeout)) {
            $0.duration(atMost: .maximumTimeout)
        }
        let threshold = health.field("failureThreshold", default: 3) { $0.int(in: 1...1000) }
        let startPeriod = health.field("startPeriod", default: .seconds(0)) { $0.duration(positive: false) }
        guard let check, let interval, let timeout, let threshold, let startPeriod else { return nil }
        if timeout > interval {
            (health.optional("timeout") ?? cursor).error("expected a timeout no longer than the interval (\(interval))")
            return nil
        }
        return Service.Health(
            check: check, interval: interval, timeout: timeout, failureThreshold: threshold, startPeriod: startPeriod)
    }

    static func decodeBackoff(_ cursor: Cursor) -> (initial: StetDuration, max: StetDuration)? {
        guard let backoff = cursor.mapping() else { return nil }
        defer { backoff.finish() }
        let initial = backoff.field("initial", default: defaultBackoff.initial) { $0.duration() }
        let max = backoff.field("max", default: defaultBackoff.max) { $0.duration() }
        guard let initial, let max else { return nil }
        if max < initial {
            (backoff.optional("max") ?? cursor).error("expected max (\(max)) to be at least initial (\(initial))")
            return nil
        }
        return (initial, max)
    }
}
