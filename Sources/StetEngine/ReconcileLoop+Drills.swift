import Foundation
import StetAudit
import StetCore
import StetProviders
import StetState

/// The drills `stet run` keeps (docs/architecture.md, "Drills"): which are due, which run, when
/// to look again.
struct DrillBook {
    var running: Set<ResourceID> = []
    /// Drills that could not start (the service did not meet its promise), and when to try again.
    var postponed: [ResourceID: Date] = [:]
    /// When the next drill is due.
    var nextDue: Date?
    /// The release the schedule was worked out for.
    var release = ""
}

extension ReconcileLoop {
    /// How long a drill that could not start waits before it is tried again: a minute, or its
    /// cadence when shorter.
    static func drillRetry(_ every: StetDuration) -> Double { min(60, max(1, every.seconds)) }
    /// How soon a host drill tries again after another node's host drill of the service kept it
    /// from starting: soon, so the nodes take turns rather than the first ones again.
    static let busyRetry = 1.0

    /// Starts the drills that are due: a service's kill on this thread (under the state lock),
    /// the wait for its replacement and monitor drills on the drill threads. Returns at once.
    func startDueDrills(now: Date) {
        guard !stopping, !heldByFleet, options.fleet?.mayAct ?? true else { return }
        var next: Date?
        func consider(_ date: Date) { next = min(next ?? date, date) }
        for (name, service) in desired.services.sorted(by: { $0.key < $1.key }) {
            guard let drill = service.drill else { continue }
            let resource = ResourceID(.service, name)
            guard !drills.running.contains(resource) else { continue }
            guard let due = drillDue(resource, every: drill.every, window: drill.window, length: drill.recoverWithin, now: now) else {
                continue
            }
            guard now >= due else {
                consider(due)
                continue
            }
            if drill.host, let fleet = options.fleet {
                startHostDrill(service, drill, fleet: fleet, now: now)
            } else {
                startServiceDrill(service, drill, now: now)
            }
        }
        for (name, monitor) in desired.monitors.sorted(by: { $0.key < $1.key }) {
            guard let every = monitor.drillEvery else { continue }
            let resource = ResourceID(.monitor, name)
            guard !drills.running.contains(resource), let due = drillDue(resource, every: every, window: nil, length: .seconds(0), now: now)
            else { continue }
            guard now >= due else {
                consider(due)
                continue
            }
            startMonitorDrill(monitor, now: now)
        }
        // Drills that could not start now look again at their retry.
        for date in drills.postponed.values where date > now { consider(date) }
        drills.nextDue = next
    }

    /// When `resource`'s next drill may start: `every` after the last (or after Stet first saw
    /// the drill), inside `window` when one is named, with room for `length` before it closes.
    private func drillDue(_ resource: ResourceID, every: StetDuration, window: String?, length: StetDuration, now: Date) -> Date? {
        var status = Drills.Status.load(resource, from: store)
        if status.since == nil {
            status.since = now
            do { try status.save(to: store) } catch { log("cannot keep the drill status of \(resource): \(error)") }
        }
        var due = status.due(every: every, now: now)
        if let postponed = drills.postponed[resource], postponed > due { due = postponed }
        guard let name = window, due <= now else { return due }
        guard let window = desired.windows[name] else { return nil }
        if let open = window.openSpan(at: now), open.end.timeIntervalSince(now) >= length.seconds { return due }
        return window.nextSpan(after: now)?.start
    }

    private func startServiceDrill(_ service: Service, _ drill: Service.Drill, now: Date) {
        let resource = ResourceID(.service, service.metadata.name)
        let kill: Drills.ServiceKill
        do {
            try stateLock.acquire(timeout: options.lockTimeout)
            defer { stateLock.release() }
            kill = try Drills.killReplica(
                of: service, desired: desired, provider: provider, store: store, audit: audit, release: release,
                recoverWithin: drill.recoverWithin, now: now)
        } catch let notStarted as Drills.NotStarted {
            log("drill of \(resource) postponed: \(notStarted.message)")
            drills.postponed[resource] = now.addingTimeInterval(Self.drillRetry(drill.every))
            return
        } catch {
            log("drill of \(resource) not started: \(error)")
            drills.postponed[resource] = now.addingTimeInterval(Self.drillRetry(drill.every))
            return
        }
        drills.postponed[resource] = nil
        drills.running.insert(resource)
        log("drill of \(resource): killed replica \(kill.index) (pid \(kill.pid))")
        let (provider, inbox) = (provider, inbox)
        Task(executorPreference: drillThreads) {
            let verdict = await Drills.awaitRecovery(kill, service: service, provider: provider)
            inbox.post(.drill(resource, verdict))
        }
    }

    /// In a fleet, `spec.drill.host`: this node's loss for the service (`FleetMembership.drillHostLoss`).
    private func startHostDrill(_ service: Service, _ drill: Service.Drill, fleet: any FleetMembership, now: Date) {
        let resource = ResourceID(.service, service.metadata.name)
        if let problem = fleet.hostDrillProblem(service: service.metadata.name) {
            log("host drill of \(resource) postponed: \(problem.reason)")
            drills.postponed[resource] = now.addingTimeInterval(problem.busy ? Self.busyRetry : Self.drillRetry(drill.every))
            return
        }
        do {
            try Drills.recordStart(
                resource, reason: "drills the loss of this node for the service"
                    + (service.failover != nil ? " (a primary held here switches over first)" : "")
                    + "; every replica must run on other nodes within \(drill.recoverWithin)",
                store: store, audit: audit, release: release)
        } catch {
            log("drill of \(resource) not started: \(error)")
            drills.postponed[resource] = now.addingTimeInterval(Self.drillRetry(drill.every))
            return
        }
        drills.running.insert(resource)
        let (inbox, name, bound) = (inbox, service.metadata.name, drill.recoverWithin.seconds)
        Task(executorPreference: drillThreads) {
            let outcome = await fleet.drillHostLoss(service: name, within: bound)
            inbox.post(.hostDrill(resource, outcome, started: now))
        }
    }

    /// A host drill's outcome: a verdict, or (it did not start) a note that closes its start entry.
    func takeHostDrill(_ resource: ResourceID, _ outcome: HostDrillOutcome, started: Date) throws {
        guard let why = outcome.notStarted else {
            return try takeDrill(resource, Drills.Verdict(at: started, ok: outcome.ok, seconds: outcome.seconds, detail: outcome.detail))
        }
        drills.running.remove(resource)
        drills.postponed[resource] = Date().addingTimeInterval(
            outcome.busy ? Self.busyRetry : Self.drillRetry(desired.services[resource.name]?.drill?.every ?? .seconds(60)))
        log("host drill of \(resource) postponed: \(why)")
        try audit.append(AuditRecord(
            kind: .drill, release: release, resource: resource.description, action: "drill", reason: "not started: \(why)",
            outcome: .interrupted))
        try? store.remove(Drills.markerKey(resource))
    }

    private func startMonitorDrill(_ monitor: Monitor, now: Date) {
        let resource = ResourceID(.monitor, monitor.metadata.name)
        do {
            try Drills.recordStart(
                resource, reason: "test alert through \(monitor.notify.joined(separator: ", "))", store: store, audit: audit,
                release: release)
        } catch {
            log("drill of \(resource) not started: \(error)")
            drills.postponed[resource] = now.addingTimeInterval(Self.drillRetry(monitor.drillEvery ?? .seconds(60)))
            return
        }
        drills.running.insert(resource)
        let (notifiers, inbox, log) = (desired.notifiers, inbox, hooks.log)
        drillThreads.submit {
            let drill = MonitorDrill(sender: NotifierSender(log: log), timeout: 15)
            inbox.post(.drill(resource, Drills.drillMonitor(monitor, notifiers: notifiers, drill: drill)))
        }
    }

    /// Takes a drill's verdict: recorded, alerted when it failed, the alert resolved when it passed.
    func takeDrill(_ resource: ResourceID, _ verdict: Drills.Verdict) throws {
        drills.running.remove(resource)
        // Its next date (and those a running drill hid) are worked out again.
        drills.nextDue = nil
        try Drills.record(verdict, of: resource, store: store, audit: audit, release: release)
        let alert = SelfAlert(.drillFailed, resource: resource)
        if verdict.ok {
            log("drill of \(resource) passed: \(verdict.detail)")
            monitors.selfAlerts.resolve(alert, detail: "the drill of \(resource) passed: \(verdict.detail)")
        } else {
            log("drill of \(resource) FAILED: \(verdict.detail)")
            monitors.selfAlerts.raise(alert, summary: "the drill of \(resource) failed: \(verdict.detail)", desired: desired)
        }
    }
}
