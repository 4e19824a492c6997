public import Foundation

/// What a resource's owner wants done when the world moves away from the manifest.
public enum DriftMode: String, Codable, Sendable, CaseIterable {
    /// Plan and apply corrections.
    case correct
    /// Report the drift; do not correct it.
    case warn
    /// Only record it.
    case observe
}

/// Where a resource was declared, for messages that point at the manifest.
public struct SourceLocation: Hashable, Sendable, Codable, CustomStringConvertible {
    public let file: String
    public let line: Int
    public let column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String { "\(file):\(line):\(column)" }
}

/// Fields every resource has.
public struct Metadata: Hashable, Sendable, Codable {
    public var name: String
    public var labels: [String: String]

    public init(name: String, labels: [String: String] = [:]) {
        self.name = name
        self.labels = labels
    }
}

/// A check of whether something answers: used by service health checks and monitor probes.
public enum Check: Hashable, Sendable, Codable {
    /// GET `path` (on `port`, or the replica's own port when nil); healthy when the status is
    /// `expectStatus`, or any 2xx when nil, and the body contains `bodyContains` when set.
    case http(url: String?, path: String?, port: Int?, expectStatus: Int?, bodyContains: String?)
    /// A TCP connect to `address` (`host:port`), or to the replica's own port when nil.
    case tcp(address: String?, port: Int?)
    /// A command; exit status 0 is healthy.
    case exec(command: [String])
}

/// The encoder of spec texts (sorted keys, slashes as they are), made once: a pass asks for a
/// service's spec text several times, and making an encoder costs more than encoding a spec.
/// A `JSONEncoder` whose options are not changed encodes on any thread.
private let specEncoder: JSONEncoder = {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return encoder
}()

public struct Service: Hashable, Sendable, Codable {
    /// The most replicas a service may ask for; replica indexes are below it.
    public static let maximumReplicas = 1000

    public struct Run: Hashable, Sendable, Codable {
        /// The run spec as deterministic text (JSON, sorted keys): replicas started from equal
        /// text are the same spec. Its SHA-256 is the replica's spec hash.
        public var specText: String { String(decoding: (try? specEncoder.encode(self)) ?? Data(), as: UTF8.self) }

        public var command: [String]
        public var workingDir: String?
        public var env: [String: String]
        /// Replica *i* gets `PORT = portsStart + i`.
        public var portsStart: Int?
        public var stopSignal: String
        public var stopTimeout: StetDuration
        /// The user replicas run as when Stet is root (nil: the dedicated `stet-replica`).
        /// Part of the spec text only when set, so specs without it keep their hash.
        public var user: String?

        public init(
            command: [String], workingDir: String? = nil, env: [String: String] = [:], portsStart: Int? = nil,
            stopSignal: String = "SIGTERM", stopTimeout: StetDuration = .seconds(10), user: String? = nil
        ) {
            self.command = command
            self.workingDir = workingDir
            self.env = env
            self.portsStart = portsStart
            self.stopSignal = stopSignal
            self.stopTimeout = stopTimeout
            self.user = user
        }
    }

    public struct Health: Hashable, Sendable, Codable {
        public var check: Check
        public var interval: StetDuration
        public var timeout: StetDuration
        public var failureThreshold: Int
        public var startPeriod: StetDuration

        public init(
            check: Check, interval: StetDuration = .seconds(10), timeout: StetDuration = .seconds(2),
            failureThreshold: Int = 3, startPeriod: StetDuration = .seconds(0)
        ) {
            self.check = check
            self.interval = interval
            self.timeout = timeout
            self.failureThreshold = failureThreshold
            self.startPeriod = startPeriod
        }
    }

    public var metadata: Metadata
    public var replicas: Int
    public var run: Run
    public var health: Health?
    public var backoffInitial: StetDuration
    public var backoffMax: StetDuration
    public var maxUnavailable: Int
    public var drift: DriftMode
    public var protect: Bool
    /// In a fleet: the labels a node must carry to run a replica (all of them).
    public var placement: [String: String] = [:]
    /// In a fleet: a node label whose values the replicas spread across (`zone`), besides
    /// spreading across nodes.
    public var spread: String?
    /// In a fleet: one replica across the fleet is the primary, the others standbys.
    public var failover: Failover?
    /// `spec.drill`: the redundancy promise tested on a schedule.
    public var drill: Drill?

    /// `spec.drill: {every, window, recoverWithin, host}`: every `every`, Stet kills the replica
    /// longest since its last drill and proves that a replacement is healthy within
    /// `recoverWithin` (docs/architecture.md, "Drills").
    public struct Drill: Hashable, Sendable, Codable {
        public var every: StetDuration
        /// A maintenance window the drill waits for (it runs only while the window is open).
        public var window: String?
        public var recoverWithin: StetDuration
        /// In a fleet: drill the loss of a whole node for this service.
        public var host: Bool

        public init(every: StetDuration, window: String? = nil, recoverWithin: StetDuration = .seconds(30), host: Bool = false) {
            self.every = every
            self.window = window
            self.recoverWithin = recoverWithin
            self.host = host
        }
    }

    /// `spec.failover`: an active/passive service. The node whose replica holds `primary/NAME`
    /// in etcd (on its lease) runs `promote` for it; a replica that stops being primary is
    /// demoted with `demote`, or stopped when `fence` says so or the demote fails.
    public struct Failover: Hashable, Sendable, Codable {
        public enum Fence: String, Hashable, Sendable, Codable, CaseIterable {
            case demote, stop
        }

        public var promote: [String]
        public var demote: [String]
        public var fence: Fence
        /// Node labels a standby's node should carry to be preferred as the next primary.
        public var prefer: [String: String]
        /// How long a promote or demote command may run before it is killed.
        public var timeout: StetDuration

        public init(
            promote: [String] = [], demote: [String] = [], fence: Fence = .demote, prefer: [String: String] = [:],
            timeout: StetDuration = .seconds(10)
        ) {
            self.promote = promote
            self.demote = demote
            self.fence = fence
            self.prefer = prefer
            self.timeout = timeout
        }
    }

    public init(
        metadata: Metadata, replicas: Int, run: Run, health: Health? = nil,
        backoffInitial: StetDuration = StetDuration(milliseconds: 500), backoffMax: StetDuration = .seconds(60),
        maxUnavailable: Int = 1, drift: DriftMode = .correct, protect: Bool = false
    ) {
        self.metadata = metadata
        self.replicas = replicas
        self.run = run
        self.health = health
        self.backoffInitial = backoffInitial
        self.backoffMax = backoffMax
        self.maxUnavailable = maxUnavailable
        self.drift = drift
        self.protect = protect
    }
}

public struct BackupPolicy: Hashable, Sendable, Codable {
    public struct Retention: Hashable, Sendable, Codable {
        public var last: Int?
        public var hourly: Int?
        public var daily: Int?
        public var weekly: Int?
        public var monthly: Int?

        public init(last: Int? = nil, hourly: Int? = nil, daily: Int? = nil, weekly: Int? = nil, monthly: Int? = nil) {
            self.last = last
            self.hourly = hourly
            self.daily = daily
            self.weekly = weekly
            self.monthly = monthly
        }
    }

    public var metadata: Metadata
    public var paths: [String]
    public var exclude: [String]
    /// The repository as restic takes it (`/srv/backup/web`, `sftp:…`).
    public var resticRepository: String
    public var passwordFile: String
    public var every: StetDuration
    public var rpo: StetDuration
    public var retention: Retention
    /// How often `restic check` runs; nil: never.
    public var checkEvery: StetDuration?
    /// How often a restore test runs; nil: never.
    public var restoreTestEvery: StetDuration?
    public var drift: DriftMode
    public var protect: Bool
    /// In a fleet: the service whose replica 0 the backups run beside (its node); nil: a node the
    /// leader chooses.
    public var runOn: String?

    public init(
        metadata: Metadata, paths: [String], exclude: [String] = [], resticRepository: String, passwordFile: String,
        every: StetDuration, rpo: StetDuration, retention: Retention = Retention(), checkEvery: StetDuration? = nil,
        restoreTestEvery: StetDuration? = nil, drift: DriftMode = .correct, protect: Bool = false
    ) {
        self.metadata = metadata
        self.paths = paths
        self.exclude = exclude
        self.resticRepository = resticRepository
        self.passwordFile = passwordFile
        self.every = every
        self.rpo = rpo
        self.retention = retention
        self.checkEvery = checkEvery
        self.restoreTestEvery = restoreTestEvery
        self.drift = drift
        self.protect = protect
    }
}

public struct Monitor: Hashable, Sendable, Codable {
    /// The monitor's spec as deterministic text; its SHA-256 says whether a registration is current.
    public var specText: String { String(decoding: (try? specEncoder.encode(self)) ?? Data(), as: UTF8.self) }

    public enum Probe: Hashable, Sendable, Codable {
        case check(Check)
        /// Ready replicas of the named service meet its promise.
        case service(String)
        /// The named backup policy's outcome is healthy.
        case backup(String)
    }

    public enum Severity: String, Codable, Sendable, CaseIterable {
        case critical, warning, info
    }

    public var metadata: Metadata
    public var probe: Probe
    public var interval: StetDuration
    public var timeout: StetDuration
    /// Failing this long turns pending into firing (Prometheus `for:`).
    public var pendingFor: StetDuration
    public var severity: Severity
    public var labels: [String: String]
    public var notify: [String]
    /// `spec.drill.every`: how often a test alert goes through the monitor's notifiers (nil:
    /// only `stet drill monitor`). Left out of `specText` when nil, so monitors without it keep
    /// their registration.
    public var drillEvery: StetDuration?

    public init(
        metadata: Metadata, probe: Probe, interval: StetDuration = .seconds(30), timeout: StetDuration = .seconds(5),
        pendingFor: StetDuration = .seconds(0), severity: Severity = .warning, labels: [String: String] = [:],
        notify: [String] = []
    ) {
        self.metadata = metadata
        self.probe = probe
        self.interval = interval
        self.timeout = timeout
        self.pendingFor = pendingFor
        self.severity = severity
        self.labels = labels
        self.notify = notify
    }
}

public struct Notifier: Hashable, Sendable, Codable {
    public enum Target: Hashable, Sendable, Codable {
        /// Alertmanager's API v2 base URL.
        case alertmanager(url: String)
        case webhook(url: String)
        /// A command that reads the notification as JSON on standard input.
        case exec(command: [String])
        /// Stet's own log.
        case log
    }

    public var metadata: Metadata
    public var target: Target

    public init(metadata: Metadata, target: Target) {
        self.metadata = metadata
        self.target = target
    }
}

/// Everything a verified release declares, keyed by name per kind.
public struct DesiredState: Hashable, Sendable, Codable {
    public var services: [String: Service] = [:]
    public var backupPolicies: [String: BackupPolicy] = [:]
    public var monitors: [String: Monitor] = [:]
    public var notifiers: [String: Notifier] = [:]
    public var windows: [String: MaintenanceWindow] = [:]
    /// In a fleet, the replicas of each service this node runs: its share of the leader's
    /// assignments. Nil on one host, where every service runs every replica.
    public var assignedReplicas: [String: Set<Int>]?

    public init() {}

    /// The labels of `resource` (a resource of the release; none for one it no longer declares).
    public func labels(of resource: ResourceID) -> [String: String] {
        switch resource.kind {
        case .service: services[resource.name]?.metadata.labels ?? [:]
        case .backupPolicy: backupPolicies[resource.name]?.metadata.labels ?? [:]
        case .monitor: monitors[resource.name]?.metadata.labels ?? [:]
        case .notifier: notifiers[resource.name]?.metadata.labels ?? [:]
        case .maintenanceWindow: windows[resource.name]?.metadata.labels ?? [:]
        }
    }

    /// The replica indices of `service` this host runs, in order.
    public func replicaIndices(of service: Service) -> [Int] {
        let all = 0..<max(service.replicas, 0)
        guard let assigned = assignedReplicas else { return Array(all) }
        return assigned[service.metadata.name, default: []].filter { all.contains($0) }.sorted()
    }

    /// Every resource id, sorted by kind then name.
    public var resourceIDs: [ResourceID] {
        (services.keys.map { ResourceID(.service, $0) } + backupPolicies.keys.map { ResourceID(.backupPolicy, $0) }
            + monitors.keys.map { ResourceID(.monitor, $0) } + notifiers.keys.map { ResourceID(.notifier, $0) }
            + windows.keys.map { ResourceID(.maintenanceWindow, $0) }).sorted()
    }
}
