public import Foundation

/// One replica as a provider found it.
public struct ObservedReplica: Codable, Hashable, Sendable {
    public enum Status: String, Codable, Sendable {
        /// The recorded process is alive (same pid and the same start time).
        case running
        /// A replica was recorded, but its process is gone.
        case exited
    }

    public enum Health: String, Codable, Sendable {
        case healthy
        /// Failed its check `failureThreshold` times in a row.
        case unhealthy
        /// Inside its start period, or not yet checked enough to tell.
        case starting
        /// The service has no health check.
        case unchecked
    }

    public var index: Int
    public var status: Status
    public var pid: Int32
    /// Field 22 of `/proc/PID/stat` when started: a reused pid has another.
    public var startTime: UInt64
    /// The spec the replica was started from (`Service.Run`, hashed).
    public var specHash: String
    public var port: Int?
    public var health: Health
    public var restarts: Int
    /// How the last process of this replica ended, when known (`exited 137 at …`).
    public var lastExit: String?
    public var startedAt: Date

    public init(
        index: Int, status: Status, pid: Int32, startTime: UInt64, specHash: String, port: Int?, health: Health,
        restarts: Int, lastExit: String?, startedAt: Date
    ) {
        self.index = index
        self.status = status
        self.pid = pid
        self.startTime = startTime
        self.specHash = specHash
        self.port = port
        self.health = health
        self.restarts = restarts
        self.lastExit = lastExit
        self.startedAt = startedAt
    }

    /// The facts of this replica in `scope` (see `ObservedState.facts(for:replica:scope:)`).
    func facts(_ scope: FactScope) -> String {
        "status=\(status.rawValue) pid=\(pid) start=\(startTime) spec=\(specHash)"
            + (scope == .stateAndHealth ? " health=\(health.rawValue)" : "")
    }
}

/// A service as its provider found it: the replicas it has records of.
public struct ObservedService: Codable, Hashable, Sendable {
    public var name: String
    /// By index; an index without a record has never been started (or was stopped).
    public var replicas: [Int: ObservedReplica]
    /// `protect` as of the last release that declared the service, so a removed service stays
    /// protected.
    public var protect: Bool

    public init(name: String, replicas: [Int: ObservedReplica] = [:], protect: Bool = false) {
        self.name = name
        self.replicas = replicas
        self.protect = protect
    }

    /// Replicas among the first `promised` that run and pass their health check (or have none):
    /// the one meaning of "ready" for status, metrics and `service:` monitors.
    public func ready(promised: Int) -> Int {
        replicas.values.filter { $0.index < promised && $0.status == .running && ($0.health == .healthy || $0.health == .unchecked) }.count
    }
}

/// What the providers found, for the planner.
public struct ObservedState: Codable, Hashable, Sendable {
    public var services: [String: ObservedService] = [:]
    public var backups: [String: ObservedBackup] = [:]
    /// Monitors registered with the reconcile loop (`STATE/monitors.json`), by name.
    public var monitors: [String: ObservedMonitor] = [:]

    public init(services: [String: ObservedService] = [:], backups: [String: ObservedBackup] = [:]) {
        self.services = services
        self.backups = backups
    }

    /// The facts a change on `resource` (and `replica`, for a service) depends on, in `scope`,
    /// as text: `absent` when there is nothing of it. The one definition for the planner, which
    /// records their digest as the change's precondition, and for admitting a saved plan, which
    /// checks that digest against the facts observed then (docs/architecture.md, "Observing and planning" and "Plan files").
    ///
    /// The text names its scope (` health=` is written only in `stateAndHealth`), so the
    /// precondition digest records which scope the change was planned in, and a digest matches
    /// the facts of one scope at most.
    public func facts(for resource: ResourceID, replica: Int?, scope: FactScope) -> String {
        switch resource.kind {
        case .service: replica.flatMap { services[resource.name]?.replicas[$0] }?.facts(scope) ?? "absent"
        case .backupPolicy: backups[resource.name]?.facts ?? "absent"
        case .monitor: monitors[resource.name]?.specHash ?? "absent"
        case .notifier, .maintenanceWindow: "absent"
        }
    }
}

/// How much of a resource's observed facts a change depends on.
public enum FactScope: String, Sendable, CaseIterable {
    /// What the resource is: a replica's status, pid, start time and spec; a backup policy's
    /// repository and snapshots; a monitor's registered spec.
    case state
    /// The state and a replica's health: for a change planned because of that health (an
    /// unhealthy replica replaced), which must not go ahead once the replica is healthy again.
    case stateAndHealth
}

/// A backup policy as its provider found it.
public struct ObservedBackup: Codable, Hashable, Sendable {
    public enum Repository: Codable, Hashable, Sendable {
        /// Opens with the password file.
        case ready
        /// Nothing there (never initialised, or deleted).
        case missing
        /// There, but does not open: wrong password, held lock, damaged. Never re-initialised.
        case unreadable(String)
    }

    public struct Snapshot: Codable, Hashable, Sendable {
        public var id: String
        public var time: Date

        public init(id: String, time: Date) {
            self.id = id
            self.time = time
        }
    }

    /// The result of the last check or restore test.
    public struct Verification: Codable, Hashable, Sendable {
        public var at: Date
        public var ok: Bool
        public var detail: String

        public init(at: Date, ok: Bool, detail: String) {
            self.at = at
            self.ok = ok
            self.detail = detail
        }
    }

    public var name: String
    public var repository: Repository
    /// Snapshots tagged `stet:NAME`, oldest first.
    public var snapshots: [Snapshot]
    /// Stet initialised or used this repository before (so a missing one is drift).
    public var known: Bool
    public var lastBackup: Date?
    public var lastForget: Date?
    public var lastCheck: Verification?
    public var lastRestoreTest: Verification?
    /// `protect` as of the last release that declared the policy.
    public var protect: Bool

    public init(
        name: String, repository: Repository, snapshots: [Snapshot], known: Bool, lastBackup: Date? = nil, lastForget: Date? = nil,
        lastCheck: Verification? = nil, lastRestoreTest: Verification? = nil, protect: Bool = false
    ) {
        self.name = name
        self.repository = repository
        self.snapshots = snapshots
        self.known = known
        self.lastBackup = lastBackup
        self.lastForget = lastForget
        self.lastCheck = lastCheck
        self.lastRestoreTest = lastRestoreTest
        self.protect = protect
    }

    /// The newest snapshot's time.
    public var newest: Date? { snapshots.map(\.time).max() }

    /// How far after now a time may lie and still be taken as now: clocks of hosts that write
    /// to one repository differ a little.
    public static let clockAllowance = 60.0

    /// The newest snapshot's time that is not after `now` (`clockAllowance`). A snapshot dated
    /// later was made before this host's clock went back, or by a host whose clock is ahead: it
    /// says nothing of how old the data is now, so it counts only once its time has come. A
    /// wall clock stepped back therefore never holds a backup back.
    public func newest(asOf now: Date) -> Date? {
        snapshots.map(\.time).filter { $0 <= now.addingTimeInterval(Self.clockAllowance) }.max()
    }

    /// The snapshots dated after `now` (`newest(asOf:)`).
    public func future(asOf now: Date) -> [Snapshot] {
        snapshots.filter { $0.time > now.addingTimeInterval(Self.clockAllowance) }
    }

    /// Whether a verification of every `every` is due at `now`: none ran, its time has come,
    /// or it is dated after now (the clock went back: how long ago it ran is unknown).
    public static func isDue(_ last: Verification?, every: StetDuration, now: Date) -> Bool {
        guard let last else { return true }
        let age = now.timeIntervalSince(last.at)
        return age >= every.seconds || age < -clockAllowance
    }

    /// The facts of this policy (see `ObservedState.facts(for:replica:scope:)`).
    var facts: String {
        let repo = switch repository {
        case .ready: "ready"
        case .missing: "missing"
        case .unreadable: "unreadable"
        }
        return "repository=\(repo) snapshots=\(snapshots.map(\.id).joined(separator: ","))"
    }
}

/// A monitor as registered: the spec it runs and its alert state.
public struct ObservedMonitor: Codable, Hashable, Sendable {
    public var name: String
    public var specHash: String
    public var state: AlertState

    public init(name: String, specHash: String, state: AlertState) {
        self.name = name
        self.specHash = specHash
        self.state = state
    }
}
