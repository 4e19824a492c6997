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

    /// The facts a change to this replica was planned from, as text: a change applies only
    /// while they still hold. Health counts only when the change is about health.
    public func facts(includingHealth: Bool) -> String {
        "status=\(status.rawValue) pid=\(pid) start=\(startTime) spec=\(specHash)"
            + (includingHealth ? " health=\(health.rawValue)" : "")
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
}

/// What the providers found, for the planner.
public struct ObservedState: Codable, Hashable, Sendable {
    public var services: [String: ObservedService] = [:]

    public init(services: [String: ObservedService] = [:]) { self.services = services }
}
