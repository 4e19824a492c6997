import ArgumentParser
import Foundation
import StetAudit
import StetCore
import StetCrypto
import StetEngine
import StetManifest
import StetProviders
import StetServer
import StetState

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Keep the host matching the accepted release: the reconcile loop.",
        discussion: """
            Watches every replica (a pidfd each: an exit is seen at once), runs health checks on \
            their intervals, and corrects drift: a replica that exited or fails its checks is \
            started or replaced, each action signed into the audit log with the drift that caused \
            it. Corrections back off per service (restart.backoff) and stop after --budget per \
            service per hour, with an alert entry. A new signed release is picked up by digest \
            (checked every --interval, or at once on SIGHUP); a release that does not verify is \
            refused and recorded, and the one in force stays; a release file the host cannot read \
            (an I/O error) is no refusal: it is logged and looked at again at the next check. \
            A release that another command accepted meanwhile (`stet apply`, `stet verify \
            --accept`) is taken at once from the state directory, before the next pass: the loop \
            never acts on a release older than the one in force. \
            SIGTERM or SIGINT: the current actions finish, then exit 0. Replicas keep running. \
            Under systemd (Type=notify, packaging/stet.service): READY=1 after the first pass, \
            WATCHDOG=1 every half of WatchdogSec while the loop turns, STOPPING=1 on a signal, \
            written to $NOTIFY_SOCKET; state in /var/lib/stet unless --state-dir says otherwise.

            EXIT STATUS
              0   stopped by a signal (or --once: the pass succeeded)
              1   error (--once: an action failed)
              10  the audit log or the operator key was refused
              11  another stet process holds the state lock past --lock-timeout
            """
    )

    @OptionGroup var planning: PlanningOptions

    @OptionGroup var global: GlobalOptions

    @OptionGroup var key: KeyOption

    @Option(help: ArgumentHelp("Seconds between checks for a new release.", valueName: "seconds"))
    var interval: Double = 10

    @Option(help: ArgumentHelp("Corrective actions per service per hour before Stet stops correcting it.", valueName: "n"))
    var budget = 10

    @Flag(help: "One pass, then exit.")
    var once = false

    @Option(help: ArgumentHelp("With --source: how often to fetch (a duration, e.g. 30s; default: --interval).", valueName: "duration"))
    var poll: String?

    @Option(help: ArgumentHelp(
        "Serve /metrics, /healthz, /status and a status page on HOST:PORT (e.g. 127.0.0.1:9464): what the loop last saw, "
            + "to at most 256 clients at once (a quarter of the open-file limit), each with 10 s per request.",
        valueName: "host:port"))
    var listen: String?

    func validate() throws {
        try Seconds.check(interval, "--interval", 0.1...StetDuration.maximumTimeout.seconds)
        if budget < 0 { throw ValidationError("--budget \(budget): expected 0 or more corrective actions") }
        if let poll {
            guard let every = StetDuration(parsing: poll) else { throw ValidationError("--poll \(poll): expected a duration such as 30s") }
            try Seconds.check(every.seconds, "--poll", 0.1...StetDuration.maximumTimeout.seconds)
        }
        if let listen, Self.address(listen) == nil { throw ValidationError("--listen \(listen): expected HOST:PORT, e.g. 127.0.0.1:9464") }
    }

    static func address(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        let host = String(text[..<colon])
        return (host.isEmpty ? "127.0.0.1" : host, port)
    }

    func run() async throws {
        let manager = try ServiceManager.fromEnvironment()
        let source = try planning.gitSource(global.store)
        let privateKey = try PrivateKey(contentsOfFile: try key.path())
        // One loop per state directory; `plan` and `status` look at this lock to know one runs.
        let running = try StateLock(store: global.store, timeout: 0, name: "run.lock")
        defer { running.release() }
        let session = try OperatorSession(global: global, key: privateKey, policy: nil, via: "daemon")
        var options = ReconcileLoop.Options(manifests: planning.manifests, trustFile: global.trust)
        options.interval = interval
        options.budget = budget
        options.lockTimeout = global.lockTimeout
        options.once = once
        options.prune = planning.prune
        options.source = source
        if options.source != nil, let poll, let every = StetDuration(parsing: poll) { options.interval = every.seconds }
        options.aliveInterval = manager?.watchdogInterval
        let loop = ReconcileLoop(options: options, store: global.store, audit: session.log)
        let json = global.json
        loop.log = { message in
            if json {
                Terminal.standardError.json(["time": RFC3339Now.text(), "message": message])
            } else {
                Terminal.standardError.line("\(RFC3339Now.text())  \(message)")
            }
        }
        if let manager { ServiceManager.attach(manager, to: loop) }
        let metrics = StetMetrics()
        let actions = ActionCounter(metrics: metrics)
        loop.onAction = { change, outcome in actions.record(change, outcome) }
        loop.onPass = { seconds in metrics.reconcileSeconds.record(.milliseconds(Int64(seconds * 1000))) }
        var server: Task<Void, Never>?
        if let listen, let (host, port) = Self.address(listen) {
            // Clients get a quarter of the descriptors at most: the rest stay the loop's.
            let limits = StatusServer.Limits.share(ofOpenFiles: OpenFileLimit.current)
            let source = LoopStatus(loop: loop, store: global.store, audit: session.log)
            let log = loop.log
            server = Task {
                await StatusServer.run(host: host, port: port, limits: limits, metrics: metrics, source: source, log: log) { bound in
                    log("serving http://\(host):\(bound)/ (/metrics, /healthz, /status) to at most \(limits.connections) clients at once")
                }
            }
        }
        Terminal.standardError.line("\(RFC3339Now.text())  stet run: watching \(source?.watched ?? planning.manifests), state in \(global.store.root)")
        let ok: Bool
        do {
            ok = try await loop.run()
        } catch let damaged as AuditError where damaged.code == .tampered {
            // The log refuses every append, so Stet can act no more: say so to every receiver.
            let alert = AlertMessage(
                labels: ["alertname": "StetAuditLogDamaged", "severity": "critical", "source": "stet"],
                annotations: ["summary": damaged.message], startsAt: RFC3339.format(Date()))
            let sender = NotifierSender { Terminal.standardError.line($0) }
            for notifier in loop.current.desired.notifiers.values { _ = sender.send([alert], to: notifier) }
            server?.cancel()
            throw damaged
        }
        server?.cancel()
        await server?.value
        try session.close()
        Terminal.standardError.line("\(RFC3339Now.text())  stet run: stopped")
        // Stopped by a signal is a success; only `--once` reports its pass.
        if once, !ok { throw CommandFailure(status: ExitStatus.error, message: nil) }
    }
}

enum RFC3339Now {
    static func text() -> String { RFC3339.format(Date(), milliseconds: true) }
}

/// `stet_actions_total{kind, cause, outcome}`.
final class ActionCounter: @unchecked Sendable {
    let metrics: StetMetrics
    init(metrics: StetMetrics) { self.metrics = metrics }

    func record(_ change: Change, _ outcome: ActionOutcome) {
        metrics.counter("actions", "Actions taken by the reconcile loop.", [
            ("kind", change.resource.kind.rawValue), ("action", change.action.rawValue), ("cause", change.cause.rawValue),
            ("outcome", outcome.ok ? "ok" : "failed"),
        ]).increment()
    }
}
