public import Foundation
public import StetCore

/// One replica's health check and what its results mean, the same for every reader: the
/// reconcile loop, which checks on its own schedule and records the count, and plan, apply and
/// status, which check once or read the recorded count. It holds the check's inputs (the
/// replica's port and the environment the replica runs with, so an exec check sees the
/// service's `env`) and the rules of counting: consecutive failures, the failure threshold, the
/// start period. Made by `ReplicaProvider.health(of:index:port:)`.
public struct ReplicaHealth: Sendable {
    public let settings: Service.Health
    /// The replica's own port, used when the check names none.
    public let port: Int?
    /// The replica's environment: Stet's base, the service's `env`, `PORT`, `STET_SERVICE`,
    /// `STET_REPLICA`.
    public let environment: [String: String]

    public init(settings: Service.Health, port: Int?, environment: [String: String]) {
        self.settings = settings
        self.port = port
        self.environment = environment
    }

    /// Runs the check once, bounded by its timeout.
    public func check(with runner: CheckRunner = CheckRunner()) -> CheckRunner.Result {
        runner.run(settings.check, port: port, timeout: settings.timeout.seconds, environment: environment)
    }

    /// Consecutive failures after a check: none after a pass, one more after a failure (at most
    /// `ReplicaProvider.maximumCount`, what a record may hold).
    public static func failures(after ok: Bool, following previous: Int) -> Int {
        ok ? 0 : min(max(previous, 0), ReplicaProvider.maximumCount - 1) + 1
    }

    /// What a running replica's health is with `failures` consecutive failures; `checked` says
    /// whether it was checked at all since it started.
    public func state(failures: Int, checked: Bool, startedAt: Date, now: Date) -> ObservedReplica.Health {
        if now.timeIntervalSince(startedAt) < settings.startPeriod.seconds { return .starting }
        if failures >= settings.failureThreshold { return .unhealthy }
        return checked && failures == 0 ? .healthy : .starting
    }

    /// True when going from `previous` to `failures` consecutive failures makes the replica
    /// unhealthy: it reaches the threshold now.
    public func reachesThreshold(from previous: Int, to failures: Int) -> Bool {
        failures >= settings.failureThreshold && previous < settings.failureThreshold
    }

    /// How long Stet waits for a new replica to become healthy unless told otherwise: its start
    /// period, then `failureThreshold` intervals (the loop would call it unhealthy by then),
    /// then one check's timeout as a margin.
    public var waitLimit: Double {
        settings.startPeriod.seconds + Double(settings.failureThreshold) * settings.interval.seconds + settings.timeout.seconds
    }

    /// When a replica started at `startedAt` is first checked: after its start period.
    public func firstCheck(startedAt: Date, now: Date) -> Date { max(startedAt.addingTimeInterval(settings.startPeriod.seconds), now) }

    /// When the check after one started at `started` is due: an interval later, from its start.
    public func nextCheck(after started: Date, now: Date) -> Date { max(started.addingTimeInterval(settings.interval.seconds), now) }
}
