public import Foundation
public import StetAudit
public import StetCore
public import StetProviders
public import StetState
import StetPlanner

/// Drills (docs/architecture.md, "Drills"): promises tested for real, on a schedule by `stet run`
/// and on demand by `stet drill`. A service drill kills one replica as a crash would and proves
/// that a replacement is healthy within `recoverWithin`; a monitor drill sends a test alert
/// through every notifier and confirms it arrived. Each drill writes a `drill` entry when it
/// starts and one with its verdict and evidence, and keeps its last verdict in
/// `STATE/drills/KIND_NAME.json`; a failed drill makes the resource unhealthy until one passes.
public enum Drills {
    /// What a resource's drills left: when drills began to count (the first time Stet saw the
    /// drill in a release), the last verdict, and when each replica was last drilled.
    public struct Status: Codable, Sendable, Equatable {
        public var resource: ResourceID
        public var since: Date?
        public var last: Verdict?
        public var replicas: [String: Date] = [:]

        public init(resource: ResourceID) { self.resource = resource }

        static func key(_ resource: ResourceID) -> String {
            "drills/" + String(resource.description.map { $0.isLetter || $0.isNumber || $0 == "-" ? $0 : "_" }) + ".json"
        }

        public static func load(_ resource: ResourceID, from store: any StateStore) -> Status {
            guard let data = try? store.read(key(resource)), let status = try? JSONCoding.decoder.decode(Status.self, from: data),
                status.resource == resource
            else { return Status(resource: resource) }
            return status
        }

        public func save(to store: any StateStore) throws { try store.write(Self.key(resource), try JSONCoding.encoder.encode(self)) }

        /// When the next drill of a resource drilled `every` is due.
        public func due(every: StetDuration, now: Date) -> Date {
            (last?.at ?? since ?? now).addingTimeInterval(every.seconds)
        }
    }

    public struct Verdict: Codable, Sendable, Equatable {
        /// When the drill started.
        public var at: Date
        public var ok: Bool
        public var seconds: Double
        /// The evidence: what was done and what was seen, with timings.
        public var detail: String

        public init(at: Date, ok: Bool, seconds: Double, detail: String) {
            self.at = at
            self.ok = ok
            self.seconds = seconds
            self.detail = detail
        }
    }

    /// Why a drill did not start (nothing was done).
    public struct NotStarted: Error, CustomStringConvertible, Sendable {
        public let message: String
        public var description: String { message }
    }

    // MARK: - Services

    /// A service drill under way: the replica killed, and when.
    public struct ServiceKill: Sendable {
        public var service: String
        public var index: Int
        public var pid: Int32
        public var at: Date
        public var recoverWithin: Double
    }

    /// Kills the replica of `service` longest since its last drill (SIGKILL to its process
    /// group, as a crash), after a `drill` entry and an in-flight marker. Refuses (nothing done)
    /// when the service does not meet its promise now: a drill tests redundancy, it does not
    /// take away the last of it. The caller holds the state lock.
    public static func killReplica(
        of service: Service, desired: DesiredState, provider: ReplicaProvider, store: any StateStore, audit: any AuditSink,
        release: ReleaseRef, recoverWithin: StetDuration, now: Date = Date()
    ) throws -> ServiceKill {
        let name = service.metadata.name
        let resource = ResourceID(.service, name)
        let indices = desired.replicaIndices(of: service)
        let records = try provider.records()[name] ?? [:]
        var running: [(index: Int, record: ReplicaProvider.Record)] = []
        for index in indices {
            guard let record = records[index], record.exitedAt == nil, record.pid > 0,
                ProcessTable.isAlive(record.pid, startTime: record.startTime)
            else { continue }
            running.append((index, record))
        }
        guard !indices.isEmpty, running.count == indices.count else {
            throw NotStarted(message: "\(resource) has \(running.count) of \(indices.count) replicas running here; "
                + "a drill starts only when the service meets its promise")
        }
        // Every replica healthy: its last recorded check since it started passed, or a check now
        // passes, past its start period.
        for replica in running {
            guard let check = provider.health(of: service, index: replica.index, port: replica.record.port) else { continue }
            let recorded = replica.record.healthFailures == 0 && (replica.record.lastCheck.map { $0 > replica.record.startedAt } ?? false)
            let healthy = recorded
                ? check.state(failures: 0, checked: true, startedAt: replica.record.startedAt, now: now) == .healthy
                : check.state(failures: check.check(with: provider.checks).ok ? 0 : 1, checked: true, startedAt: replica.record.startedAt,
                              now: Date()) == .healthy
            if !healthy {
                throw NotStarted(message: "\(resource) replica \(replica.index) is not healthy (or still in its start period); "
                    + "a drill starts only when the service meets its promise")
            }
        }
        // Nothing would replace the replica: the self-heal budget is spent, or the service backs off.
        let correction = ResourceStatus.load(resource, from: store)
        if correction.budgetExhausted == true {
            throw NotStarted(message: "\(resource) has spent its self-heal budget: nothing would replace a killed replica")
        }
        if let until = correction.backoffUntil, until > now {
            throw NotStarted(message: "\(resource) backs off until \(RFC3339.format(until)): a killed replica would not be replaced in time")
        }
        // A deny window that holds the kill (a restart) or the replacement (a correction).
        let gate = WindowGate(desired)
        for (action, disruption) in [(ServiceAction.replaceReplica, Disruption.restart), (.startReplica, .none)] {
            let change = Change(
                resource: resource.replica(0), action: .service(action), cause: .drift, reason: Reason("drill", "drill"), before: nil,
                after: nil, disruption: disruption, precondition: "")
            if case .wait(_, _, let why) = gate.verdict(for: change, labels: service.metadata.labels, estimate: recoverWithin.seconds, now: now) {
                throw NotStarted(message: "\(resource): \(action == .replaceReplica ? "the kill" : "the replacement") \(why)")
            }
        }
        var status = Status.load(resource, from: store)
        let victim = running.min { a, b in
            let (da, db) = (status.replicas[String(a.index)] ?? .distantPast, status.replicas[String(b.index)] ?? .distantPast)
            return da != db ? da < db : a.index < b.index
        }!
        try audit.append(AuditRecord(
            kind: .drill, release: release, resource: resource.description, action: "drill",
            reason: "kills replica \(victim.index) (pid \(victim.record.pid)) with SIGKILL; a replacement must be healthy within \(recoverWithin)"))
        try store.write(markerKey(resource), try JSONCoding.encoder.encode(Marker(resource: resource, startedAt: now)))
        // The replica leads its own process group (its own session): the whole group dies, as
        // with a crash of the service.
        ProcessTable.signalReplica(victim.record.pid, SIGKILL)
        status.replicas[String(victim.index)] = now
        try status.save(to: store)
        return ServiceKill(service: name, index: victim.index, pid: victim.record.pid, at: now, recoverWithin: recoverWithin.seconds)
    }

    /// Waits until a replacement of the killed replica runs and is healthy (its check passes
    /// past its start period), at most `recoverWithin` from the kill. The replacement is
    /// started by whatever keeps the service (`stet run`); this only watches.
    public static func awaitRecovery(_ kill: ServiceKill, service: Service, provider: ReplicaProvider) async -> Verdict {
        let deadline = kill.at.addingTimeInterval(kill.recoverWithin)
        var replacedAt: Date?
        var lastSeen = "no replacement started"
        while Date() < deadline {
            if let record = try? provider.record(kill.service, kill.index), record.pid > 0, record.pid != kill.pid,
                record.exitedAt == nil, ProcessTable.isAlive(record.pid, startTime: record.startTime)
            {
                let started = replacedAt ?? max(record.startedAt, kill.at)
                replacedAt = started
                let outcome = await provider.waitHealthy(service, kill.index, timeout: max(deadline.timeIntervalSinceNow, 0.01))
                let seconds = Date().timeIntervalSince(kill.at)
                if outcome.ok, seconds <= kill.recoverWithin {
                    return Verdict(
                        at: kill.at, ok: true, seconds: seconds,
                        detail: "replica \(kill.index) (pid \(kill.pid)) killed; replacement pid \(record.pid) started after "
                            + "\(format(started.timeIntervalSince(kill.at))), healthy after \(format(seconds)) (\(outcome.detail)); "
                            + "bound \(format(kill.recoverWithin))")
                }
                lastSeen = "replacement pid \(record.pid) started after \(format(started.timeIntervalSince(kill.at))); "
                    + (outcome.error ?? "healthy too late")
            }
            try? await Task.sleep(nanoseconds: 20_000_000)
        }
        return Verdict(
            at: kill.at, ok: false, seconds: Date().timeIntervalSince(kill.at),
            detail: "replica \(kill.index) (pid \(kill.pid)) killed; no healthy replacement within \(format(kill.recoverWithin)): \(lastSeen)")
    }

    public static func format(_ seconds: Double) -> String { String(format: "%.2fs", seconds) }

    // MARK: - Monitors

    /// A monitor's delivery drill (`MonitorDrill`): every notifier must take the test alert.
    public static func drillMonitor(_ monitor: Monitor, notifiers: [String: Notifier], drill: MonitorDrill, now: Date = Date()) -> Verdict {
        let deliveries = drill.run(monitor, notifiers: notifiers, now: now) { _ in }
        let failures = deliveries.compactMap { delivery in delivery.failure.map { "\(delivery.notifier): \($0)" } }
        let delivered = deliveries.filter { $0.failure == nil }.map { delivery in
            delivery.notifier + (delivery.confirmedAt.map { " (visible in \($0))" } ?? "")
        }
        let seconds = Date().timeIntervalSince(now)
        return Verdict(
            at: now, ok: failures.isEmpty && !deliveries.isEmpty, seconds: seconds,
            detail: failures.isEmpty
                ? "test alert delivered to \(delivered.joined(separator: ", ")) and resolved in \(format(seconds))"
                : "test alert not delivered: \(failures.joined(separator: "; "))"
                    + (delivered.isEmpty ? "" : "; delivered to \(delivered.joined(separator: ", "))"))
    }

    /// A monitor drill's start: its `drill` entry and in-flight marker.
    public static func recordStart(_ resource: ResourceID, reason: String, store: any StateStore, audit: any AuditSink, release: ReleaseRef) throws {
        try audit.append(AuditRecord(kind: .drill, release: release, resource: resource.description, action: "drill", reason: reason))
        try store.write(markerKey(resource), try JSONCoding.encoder.encode(Marker(resource: resource, startedAt: Date())))
    }

    /// A drill under way, kept in `STATE/drills/inflight/` (apart from the applier's markers, which
    /// any `apply` recovers: a drill outlives the state lock it started under).
    struct Marker: Codable {
        var resource: ResourceID
        var startedAt: Date
    }

    static let markerFolder = "drills/inflight"

    static func markerKey(_ resource: ResourceID) -> String {
        markerFolder + "/" + String(resource.description.map { $0.isLetter || $0.isNumber || $0 == "-" ? $0 : "_" }) + ".json"
    }

    /// Records every drill a stopped `stet run` left without a verdict as `interrupted` (at the
    /// loop's start, when no drill of it can be running). Returns how many.
    @discardableResult
    public static func recoverInterrupted(store: any StateStore, audit: any AuditSink, release: ReleaseRef) throws -> Int {
        try Applier.recoverMarkers(in: markerFolder, as: Marker.self, store: store, audit: audit) { marker in
            AuditRecord(
                kind: .drill, release: release, resource: marker?.resource.description, action: "drill",
                reason: "stet stopped before the drill ended; no verdict", outcome: .interrupted)
        }
    }

    // MARK: - Verdicts

    /// Records `verdict` of `resource`'s drill: the `drill` entry with the evidence, then its
    /// status. Returns the status as saved.
    @discardableResult
    public static func record(
        _ verdict: Verdict, of resource: ResourceID, store: any StateStore, audit: any AuditSink, release: ReleaseRef
    ) throws -> Status {
        try audit.append(AuditRecord(
            kind: .drill, release: release, resource: resource.description, action: "drill",
            reason: verdict.ok ? verdict.detail : nil, outcome: verdict.ok ? .ok : .failed, error: verdict.ok ? nil : verdict.detail,
            durationMs: Int(saturating: verdict.seconds * 1000)))
        try? store.remove(markerKey(resource))
        var status = Status.load(resource, from: store)
        status.last = verdict
        try status.save(to: store)
        return status
    }
}
