import Foundation
import StetCore
import StetProviders

/// When each watched replica's health check is due, and what the checks found. The checks run on
/// the health threads; their results come back to the loop, which records them here: a replica
/// reaching its failure threshold makes its service dirty. A replica's next check is planned from the
/// start of its last, and a check still running is never started twice. The check itself and
/// the counting are `ReplicaHealth`'s, as in plan, apply and status; the count of failures is
/// kept here and written to the replica's record only when it changes. Used by the loop's
/// thread only.
struct HealthSchedule {
    /// A check's outcome, for the replica (pid and start time) it was run against.
    struct Result: Sendable {
        let replica: ReplicaKey
        let pid: Int32
        let startTime: UInt64
        let ticket: Int
        let ok: Bool
    }

    /// The process a watched replica runs as, as the watchers last saw its record.
    private struct Target {
        let pid: Int32
        let startTime: UInt64
        let port: Int?
        /// Consecutive failures, and whether the record holds a check at all.
        var failures: Int
        var recorded: Bool
    }

    private var targets: [ReplicaKey: Target] = [:]
    private var due: [ReplicaKey: Date] = [:]
    /// Checks in flight: the ticket their result must carry, and when they started.
    private var running: [ReplicaKey: (ticket: Int, started: Date)] = [:]
    private var tickets = 0

    /// The earliest due check that is not running (a running one wakes the loop with its result).
    var nextDue: Date? { due.values.min() }

    /// The wall clock jumped by `seconds`: each check stays due as far ahead in real time.
    mutating func shift(by seconds: Double) {
        due = due.mapValues { $0.addingTimeInterval(seconds) }
        running = running.mapValues { ($0.ticket, $0.started.addingTimeInterval(seconds)) }
    }
    var inFlight: Int { running.count }

    /// Follows a watched replica: plans its first check after its start period, or a check when
    /// none is planned or running (a release that adds a check to a running service is followed
    /// too).
    mutating func watch(_ record: ReplicaProvider.Record, service: Service?, provider: ReplicaProvider, now: Date) {
        let key = ReplicaKey(service: record.service, index: record.index)
        if targets[key]?.pid != record.pid || targets[key]?.startTime != record.startTime {
            targets[key] = Target(
                pid: record.pid, startTime: record.startTime, port: record.port, failures: record.healthFailures,
                recorded: record.lastCheck != nil)
        }
        guard let service, let health = provider.health(of: service, index: record.index, port: record.port), due[key] == nil,
            running[key] == nil
        else { return }
        due[key] = health.firstCheck(
            startedAt: ProcessTable.startDate(startTime: record.startTime, recorded: record.startedAt, now: now), now: now)
    }

    /// Stops checking a replica that is no longer watched; a check in flight is ignored.
    mutating func forget(_ key: ReplicaKey) {
        targets[key] = nil
        due[key] = nil
        running[key] = nil
    }

    /// A replica that was just started or replaced counts from zero.
    mutating func reset(_ key: ReplicaKey) { targets[key]?.failures = 0 }

    /// Starts every due check on `threads`; each result goes to `deliver` (from that thread).
    mutating func startDue(
        now: Date, desired: DesiredState, provider: ReplicaProvider, on threads: WorkerThreads,
        deliver: @escaping @Sendable (Result) -> Void
    ) {
        for (key, date) in due where date <= now {
            due[key] = nil
            guard let target = targets[key], let service = desired.services[key.service],
                let health = provider.health(of: service, index: key.index, port: target.port)
            else { continue }
            tickets += 1
            running[key] = (tickets, now)
            let ticket = tickets
            let checks = provider.checks
            threads.submit {
                let ok = health.check(with: checks).ok
                deliver(Result(replica: key, pid: target.pid, startTime: target.startTime, ticket: ticket, ok: ok))
            }
        }
    }

    /// Records a check's result and plans the next check; the replica's record is written when
    /// the count of failures changes (and at its first check ever). Returns the service when the
    /// replica has just reached its failure threshold: the pass that follows decides (corrects,
    /// backs off, or finds the budget spent), and the failed checks after it change nothing that
    /// pass did not already see.
    mutating func record(_ result: Result, desired: DesiredState, provider: ReplicaProvider, now: Date) -> String? {
        let key = result.replica
        guard let run = running[key], run.ticket == result.ticket else { return nil }
        running[key] = nil
        guard var target = targets[key], target.pid == result.pid, target.startTime == result.startTime,
            let service = desired.services[key.service], let health = provider.health(of: service, index: key.index, port: target.port)
        else { return nil }
        due[key] = health.nextCheck(after: run.started, now: now)
        let count = ReplicaHealth.failures(after: result.ok, following: target.failures)
        if count != target.failures || !target.recorded {
            // The replica may have been replaced since the watchers looked: only its own record is written.
            if var record = try? provider.record(key.service, key.index), record.pid == result.pid, record.startTime == result.startTime {
                record.healthFailures = count
                record.lastCheck = run.started
                try? provider.save(record)
            }
            target.recorded = true
        }
        let crossed = health.reachesThreshold(from: target.failures, to: count)
        target.failures = count
        targets[key] = target
        return crossed ? key.service : nil
    }
}
