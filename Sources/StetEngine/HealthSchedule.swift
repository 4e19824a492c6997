import Foundation
import StetCore
import StetProviders

/// When each watched replica's health check is due, and what the checks found. The checks run on
/// the health threads; their results come back to the loop, which records them here: a replica
/// at its failure threshold makes its service dirty. A replica's next check is planned from the
/// start of its last, and a check still running is never started twice. Used by the loop's
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

    private var due: [ReplicaKey: Date] = [:]
    /// Checks in flight: the ticket their result must carry, and when they started.
    private var running: [ReplicaKey: (ticket: Int, started: Date)] = [:]
    private var failures: [ReplicaKey: Int] = [:]
    private var tickets = 0

    /// The earliest due check that is not running (a running one wakes the loop with its result).
    var nextDue: Date? { due.values.min() }
    var inFlight: Int { running.count }

    /// Plans a check for a watched replica that has none planned or running: the first one
    /// after its start period (a release that adds a check to a running service is followed too).
    mutating func watch(_ record: ReplicaProvider.Record, health: Service.Health?, now: Date) {
        let key = ReplicaKey(service: record.service, index: record.index)
        guard let health, due[key] == nil, running[key] == nil else { return }
        due[key] = max(record.startedAt.addingTimeInterval(health.startPeriod.seconds), now)
    }

    /// Stops checking a replica that is no longer watched; a check in flight is ignored.
    mutating func forget(_ key: ReplicaKey) {
        due[key] = nil
        running[key] = nil
        failures[key] = nil
    }

    /// A replica that was just started or replaced counts from zero.
    mutating func reset(_ key: ReplicaKey) { failures[key] = 0 }

    /// Starts every due check on `threads`; each result goes to `deliver` (from that thread).
    mutating func startDue(
        now: Date, desired: DesiredState, provider: ReplicaProvider, on threads: WorkerThreads,
        deliver: @escaping @Sendable (Result) -> Void
    ) {
        for (key, date) in due where date <= now {
            due[key] = nil
            guard let service = desired.services[key.service], let health = service.health,
                let record = try? provider.record(key.service, key.index), record.pid > 0
            else { continue }
            tickets += 1
            running[key] = (tickets, now)
            let ticket = tickets
            let checks = provider.checks
            let environment = provider.replicaEnvironment(key.service, key.index, port: record.port, env: service.run.env)
            let (pid, startTime, port) = (record.pid, record.startTime, record.port)
            threads.submit {
                let result = checks.run(health.check, port: port, timeout: health.timeout.seconds, environment: environment)
                deliver(Result(replica: key, pid: pid, startTime: startTime, ticket: ticket, ok: result.ok))
            }
        }
    }

    /// Records a check's result in the replica's record (only when the count changes) and plans
    /// the next check. Returns the service when the replica reached its failure threshold.
    mutating func record(_ result: Result, desired: DesiredState, provider: ReplicaProvider, now: Date) -> String? {
        let key = result.replica
        guard let run = running[key], run.ticket == result.ticket else { return nil }
        running[key] = nil
        guard let health = desired.services[key.service]?.health else { return nil }
        due[key] = max(run.started.addingTimeInterval(health.interval.seconds), now)
        // The replica may have been replaced while its check ran: the result is not about it.
        guard var record = try? provider.record(key.service, key.index), record.pid == result.pid, record.startTime == result.startTime
        else { return nil }
        let count = result.ok ? 0 : (failures[key] ?? record.healthFailures) + 1
        failures[key] = count
        if count != record.healthFailures || record.lastCheck == nil {
            record.healthFailures = count
            record.lastCheck = run.started
            try? provider.save(record)
        }
        return count >= health.failureThreshold ? key.service : nil
    }
}
