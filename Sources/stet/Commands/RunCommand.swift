import ArgumentParser
import Foundation
import StetAudit
import StetCore
import StetCrypto
import StetEngine
import StetManifest
import StetProviders
import StetServer
import StetFleet
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

            With --cluster the host joins a fleet on etcd as node --node: its key (--key) must be \
            in the node role of the pinned trust policy. It takes the fleet's release from etcd \
            (verified here, under the pinned policy) and runs only what the leader assigned to it; \
            one node leads and places the work, and when a node's lease (--lease-ttl) expires its \
            work moves to the others. A node that cannot renew its lease starts and stops nothing \
            and says so (`stet status`, StetFleetUnreachable). See `stet status --cluster`.

            EXIT STATUS
              0   stopped by a signal (or --once: the pass succeeded)
              1   error (--once: an action failed)
              10  the audit log or the operator key was refused (with --cluster: no trust policy is
                  pinned, or the key is not a node key)
              11  another stet process holds the state lock past --lock-timeout
            """
    )

    @OptionGroup var planning: PlanningOptions

    @OptionGroup var global: GlobalOptions

    @OptionGroup var key: KeyOption

    @OptionGroup var fleet: ClusterOptions

    @Option(help: ArgumentHelp("With --cluster: this host's name in the fleet (a DNS label; default: the host name).", valueName: "name"))
    var node: String?

    @Option(name: .customLong("label"), help: ArgumentHelp(
        "With --cluster: a label of this node, KEY=VALUE (repeatable), matched by a Service's placement.selector and spread.",
        valueName: "key=value"))
    var labels: [String] = []

    @Option(name: .customLong("lease-ttl"), help: ArgumentHelp(
        "With --cluster: seconds the node's lease lives unrenewed (renewed every third of it); when it expires the node's work moves.",
        valueName: "seconds"))
    var leaseTTL = 3

    @Option(name: .customLong("etcd-timeout"), help: ArgumentHelp(
        "With --cluster: seconds a lease renewal may take (default: what leaves room for a retry before the fence, at most 2).",
        valueName: "seconds"))
    var etcdTimeout: Double?

    @Option(name: .customLong("fence-margin"), help: ArgumentHelp(
        "With --cluster: seconds before its lease could expire at which a node fences (demotes or stops) a primary it holds "
            + "(default: a sixth of the TTL, at least 0.5).",
        valueName: "seconds"))
    var fenceMargin: Double?

    @Option(name: .customLong("checkpoint-interval"), help: ArgumentHelp(
        "With --cluster: seconds between the audit checkpoints this node publishes for the others to witness (when its log grew).",
        valueName: "seconds"))
    var checkpointInterval: Double = 10

    /// The lease settings `--lease-ttl`, `--etcd-timeout` and `--fence-margin` give.
    var leaseSettings: LeaseSettings { LeaseSettings(ttl: leaseTTL, renewalTimeout: etcdTimeout, fenceMargin: fenceMargin) }

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
        if fleet.cluster == nil, node != nil || !labels.isEmpty || etcdTimeout != nil || fenceMargin != nil {
            throw ValidationError("--node, --label, --etcd-timeout and --fence-margin need --cluster")
        }
        if fleet.cluster != nil {
            if planning.source != nil { throw ValidationError("--source and --cluster exclude each other: a fleet takes its release from etcd") }
            if let node, !ResourceID.isValidName(node) { throw ValidationError("--node \(node.prefix(80)): expected a DNS label such as host-a") }
            guard (2...3600).contains(leaseTTL) else { throw ValidationError("--lease-ttl \(leaseTTL): expected 2 to 3600 seconds") }
            guard checkpointInterval.isFinite, (0.5...86_400).contains(checkpointInterval) else {
                throw ValidationError("--checkpoint-interval \(checkpointInterval): expected 0.5 to 86400 seconds")
            }
            if let problem = leaseSettings.problem { throw ValidationError("these lease settings cannot hold a primary: \(problem)") }
            _ = try Self.labels(labels)
        }
    }

    /// `KEY=VALUE` pairs: label names as metadata labels, values printable and at most 63 bytes.
    static func labels(_ pairs: [String]) throws -> [String: String] {
        guard pairs.count <= 32 else { throw ValidationError("--label: at most 32 labels") }
        var labels: [String: String] = [:]
        for pair in pairs {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            // Names as manifest label keys (`[a-zA-Z_][a-zA-Z0-9_]*`), so a selector can name them.
            guard parts.count == 2, let first = parts[0].first, first.isASCII && (first.isLetter || first == "_"),
                parts[0].utf8.count <= 63, parts[0].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }),
                !parts[1].isEmpty, parts[1].utf8.count <= 63, parts[1].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) })
            else {
                throw ValidationError("--label \(pair.prefix(80)): expected KEY=VALUE such as zone=a (letters, digits, '_'; values also '-' and '.')")
            }
            guard labels.updateValue(parts[1], forKey: parts[0]) == nil else { throw ValidationError("--label \(parts[0]) is given twice") }
        }
        return labels
    }

    /// This host's name in the fleet: --node, else the host name when it is a DNS label.
    func nodeName() throws -> String {
        if let node { return node }
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map { String($0).lowercased() } ?? ""
        guard ResourceID.isValidName(host) else {
            throw CommandFailure(status: ExitStatus.error, message: "the host name \(host.prefix(80)) is no DNS label: name this node with --node")
        }
        return host
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
        // A fleet node acts with its node key; its audit log is signed by it.
        let session = try OperatorSession(global: global, key: privateKey, policy: nil, via: "daemon", role: fleet.cluster == nil ? .operator : .node)
        var options = ReconcileLoop.Options(manifests: planning.manifests, trustFile: global.trust)
        let member = try fleetNode(key: privateKey)
        if let member {
            // The release comes from etcd, written where the loop verifies it; trust is the pinned policy alone.
            options.manifests = member.options.releaseDirectory
            options.trustFile = global.store.path("fleet/trust-is-pinned.yaml")
            options.fleet = member
        }
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
        let watched = member.map { "cluster \($0.options.keyspace.cluster) as node \($0.options.node)" } ?? source?.watched ?? planning.manifests
        Terminal.standardError.line("\(RFC3339Now.text())  stet run: watching \(watched), state in \(global.store.root)")
        let fleetTask = member.map { member in
            member.attachEvents(Self.fleetEvents(loop: loop, audit: session.log))
            let log = session.log
            member.attachAuditCount { log.size }
            member.attachAudit { record in _ = try log.append([record]) }
            member.attachCheckpoints { origin in try log.checkpoint(origin: origin) }
            return Task { await member.run() }
        }
        var ok = false
        var failure: (any Error)?
        do {
            ok = try await loop.run()
        } catch {
            failure = error
        }
        if let damaged = failure as? AuditError, damaged.code == .tampered {
            // The log refuses every append, so Stet can act no more: say so to every receiver.
            let alert = AlertMessage(
                labels: ["alertname": "StetAuditLogDamaged", "severity": "critical", "source": "stet"],
                annotations: ["summary": damaged.message], startsAt: RFC3339.format(Date()))
            let sender = NotifierSender { Terminal.standardError.line($0) }
            for notifier in loop.current.desired.notifiers.values { _ = sender.send([alert], to: notifier) }
        }
        server?.cancel()
        await server?.value
        fleetTask?.cancel()
        await fleetTask?.value
        try? await member?.client.shutdown()
        if let failure { throw failure }
        try session.close()
        Terminal.standardError.line("\(RFC3339Now.text())  stet run: stopped")
        // Stopped by a signal is a success; only `--once` reports its pass.
        if once, !ok { throw CommandFailure(status: ExitStatus.error, message: nil) }
    }
}

extension RunCommand {
    /// The fleet membership of `stet run --cluster`: the node key must be in the `node` role of
    /// the pinned trust policy, which is the only trust a node acts on.
    func fleetNode(key: PrivateKey) throws -> FleetNode? {
        guard let client = try fleet.client(timeout: max(0.5, min(2, Double(leaseTTL) / 3))) else { return nil }
        guard let trust = try PinnedTrust.load(from: global.store) else {
            throw CommandFailure(
                status: ExitStatus.refused,
                message: "no trust policy is pinned in \(global.store.root): a fleet node acts only on its pinned trust; pin it first (`stet trust pin`)")
        }
        try OperatorLog.authorise(key.publicKey.keyID, under: trust, role: .node)
        var options = FleetNode.Options(
            keyspace: try fleet.keyspace(), node: try nodeName(), labels: try Self.labels(labels),
            releaseDirectory: global.store.path("fleet/release"))
        options.leaseTTL = leaseTTL
        options.renewalTimeout = leaseSettings.renewalTimeout
        options.fenceMargin = leaseSettings.fenceMargin
        options.checkpointInterval = checkpointInterval
        return FleetNode(options: options, client: client, key: key, trust: trust, store: global.store)
    }

    /// What the fleet tells the host: logged, alerted through the release's notifiers, and a
    /// release in etcd that is no release at all recorded as a refusal.
    static func fleetEvents(loop: ReconcileLoop, audit: AuditLog) -> @Sendable (FleetNode.Event) -> Void {
        { event in
            let alerts = loop.monitors.selfAlerts
            switch event {
            case .log(let message):
                loop.log("fleet: \(message)")
            case .nodeDown(let node):
                loop.log("fleet: node \(node) is down (its lease expired): its work moves to the live nodes")
                alerts.raise(SelfAlert(.nodeDown, node: node), summary: "fleet node \(node) is down: its lease expired, its work moves to the live nodes",
                             desired: loop.current.desired)
            case .nodeBack(let node):
                loop.log("fleet: node \(node) is back")
                alerts.resolve(SelfAlert(.nodeDown, node: node), detail: "node \(node) joined the fleet again")
            case .cutOff(let why):
                loop.log("fleet: \(why): starting and stopping nothing until the lease is renewed; what runs keeps running")
                alerts.raise(SelfAlert(.fleetUnreachable), summary: "this fleet node \(why): it starts and stops nothing", desired: loop.current.desired)
            case .reconnected:
                loop.log("fleet: the lease is renewed and the assignments read: acting on this node's share")
                alerts.resolve(SelfAlert(.fleetUnreachable), detail: "the node renewed its lease")
            case .auditFork(let peer, let message):
                loop.log("fleet: refused to cosign node \(peer)'s audit checkpoint: \(message)")
                alerts.raise(SelfAlert(.auditFork, node: peer),
                             summary: "node \(peer)'s audit log does not hold what this node witnessed: \(message)", desired: loop.current.desired)
            case .releaseUnreadable(let why):
                loop.log("fleet: refused release/current in etcd: \(why)")
                do {
                    try ReleaseAcceptance(store: loop.store, audit: audit).recordRefusal(
                        action: "accept-release", reason: "release/current in etcd is not a signed release", error: why)
                } catch {
                    loop.log("fleet: the refusal could not be recorded: \(error)")
                }
                alerts.raise(SelfAlert(.fleetReleaseRefused), summary: "stet refused release/current in etcd: \(why)", desired: loop.current.desired)
            }
        }
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
