public import Foundation
public import StetCore
public import StetState
import StetPlanner
import StetProviders

/// Everything `stet status` shows, per resource: what was promised beside what runs. Built by
/// the command from a fresh observation (`observe`), and by the status server from what the
/// reconcile loop last observed and recorded (`ReconcileLoop.statusReport`): one report, one
/// JSON, whichever asks.
public struct StatusReport: Encodable, Sendable {
    public var services: [ServiceLine]
    public var backups: [BackupLine]
    public var monitors: [MonitorLine]
    public var windows: [WindowLine]
    public var loopRunning: Bool

    public struct ReplicaLine: Encodable, Sendable {
        public var index: Int
        public var pid: Int32
        public var port: Int?
        public var status: String
        public var health: String
        public var restarts: Int
        public var lastExit: String?
    }

    public struct ServiceLine: Encodable, Sendable {
        public var resource: ResourceID
        public var promised: Int
        public var ready: Int
        public var met: Bool
        public var replicas: [ReplicaLine]
        public var status: ResourceStatus
        /// The service's drills, when it has them (`spec.drill`) or had one.
        public var drill: DrillLine?
    }

    /// A resource's last drill, and when the next is due.
    public struct DrillLine: Encodable, Sendable {
        public var last: Drills.Verdict?
        public var next: Date?
        public var every: StetDuration?
    }

    /// A maintenance window: open or when it opens next, and the changes waiting for it.
    public struct WindowLine: Encodable, Sendable {
        public var resource: ResourceID
        public var mode: MaintenanceWindow.Mode
        public var timeZone: String
        public var open: Bool
        /// While open: when it closes.
        public var closes: Date?
        /// When it opens next (after the current opening, while open).
        public var nextOpening: Date?
        /// `02:00 CET`, in the window's zone, for people.
        public var nextOpeningText: String?
        public var closesText: String?
        /// Changes that wait for this window, with why.
        public var waiting: [String]
    }

    public struct BackupLine: Encodable, Sendable {
        public var resource: ResourceID
        public var healthy: Bool
        public var findings: [String]
        public var snapshots: Int
        /// The newest snapshot's time.
        public var newest: Date?
        public var status: ResourceStatus
    }

    public struct MonitorLine: Encodable, Sendable {
        public var resource: ResourceID
        public var registered: Bool
        public var state: AlertState?
        public var drill: DrillLine?
    }

    /// Every promise met: each service has its replicas ready, each backup policy is healthy.
    /// A failed drill is a promise not met until a drill passes.
    public var promisesMet: Bool {
        services.allSatisfy(\.met) && backups.allSatisfy(\.healthy) && monitors.allSatisfy { $0.drill?.last?.ok != false }
    }

    /// Observes now (each replica's health check run, each backup repository opened) and
    /// reports.
    public static func observe(desired: DesiredState, store: any StateStore, now: Date = Date()) async throws -> StatusReport {
        StatusReport(desired: desired, observed: try await HostProvider(store: store).observe(desired, now: now), store: store, now: now)
    }

    /// The report of `observed`, with each resource's last action, backoff and budget from
    /// `store`.
    public init(desired: DesiredState, observed: ObservedState, store: any StateStore, now: Date = Date()) {
        services = Set(desired.services.keys).union(observed.services.keys).sorted().map { name in
            let resource = ResourceID(.service, name)
            let promised = desired.services[name].map { desired.replicaIndices(of: $0).count } ?? 0
            let replicas = (observed.services[name]?.replicas ?? [:]).values.sorted { $0.index < $1.index }
            let ready = observed.services[name]?.ready(promised: promised) ?? 0
            let drill = Self.drillLine(resource, every: desired.services[name]?.drill?.every, store: store, now: now)
            return ServiceLine(
                resource: resource, promised: promised, ready: ready, met: ready >= promised && drill?.last?.ok != false,
                replicas: replicas.map {
                    ReplicaLine(index: $0.index, pid: $0.pid, port: $0.port, status: $0.status.rawValue, health: $0.health.rawValue,
                                restarts: $0.restarts, lastExit: $0.lastExit)
                },
                status: ResourceStatus.load(resource, from: store), drill: drill)
        }
        backups = desired.backupPolicies.sorted { $0.key < $1.key }.map { name, policy in
            let resource = ResourceID(.backupPolicy, name)
            let observedBackup = observed.backups[name]
            let health = BackupHealth.evaluate(policy, observedBackup, now: now)
            return BackupLine(
                resource: resource, healthy: health.healthy, findings: health.findings, snapshots: observedBackup?.snapshots.count ?? 0,
                newest: observedBackup?.newest, status: ResourceStatus.load(resource, from: store))
        }
        monitors = desired.monitors.keys.sorted().map { name in
            MonitorLine(resource: ResourceID(.monitor, name), registered: observed.monitors[name] != nil,
                        state: observed.monitors[name]?.state,
                        drill: Self.drillLine(ResourceID(.monitor, name), every: desired.monitors[name]?.drillEvery, store: store, now: now))
        }
        windows = Self.windowLines(desired: desired, observed: observed, now: now)
        // Only a state directory on disk has a `stet run` that holds its lock.
        loopRunning = (store as? FileStateStore).map { StateLock.isHeld(store: $0, name: "run.lock") } ?? false
    }
}

extension StatusReport {
    static func drillLine(_ resource: ResourceID, every: StetDuration?, store: any StateStore, now: Date) -> DrillLine? {
        let status = Drills.Status.load(resource, from: store)
        guard every != nil || status.last != nil else { return nil }
        return DrillLine(last: status.last, next: every.map { status.due(every: $0, now: now) }, every: every)
    }

    /// The windows of the release, and what the plan of `observed` holds back for each.
    static func windowLines(desired: DesiredState, observed: ObservedState, now: Date) -> [WindowLine] {
        guard !desired.windows.isEmpty else { return [] }
        let plan = Planner().plan(desired: desired, observed: observed, release: .none, now: now)
        let waits = plan.notices.filter { $0.reason.code == WindowGate.waitCode }
        return desired.windows.values.sorted { $0.name < $1.name }.map { window in
            let open = window.openSpan(at: now)
            let next = window.nextSpan(after: now)
            return WindowLine(
                resource: ResourceID(.maintenanceWindow, window.name), mode: window.mode, timeZone: window.zone.name,
                open: open != nil, closes: open?.end, nextOpening: next?.start,
                nextOpeningText: next.map { window.describe($0.start, from: now) }, closesText: open.map { window.describe($0.end, from: now) },
                waiting: waits.filter { ["window \(window.name) ", "window \(window.name),"].contains(where: $0.reason.message.contains) }
                    .map { "\($0.resource): \($0.reason.message)" })
        }
    }
}

extension ReconcileLoop {
    /// The status report from the loop's records and last observation; observes nothing (no
    /// health check, no restic, no probe), so a client of the status server never costs the
    /// loop work of its own.
    public func statusReport() async throws -> StatusReport {
        let desired = current.desired
        var replicas = ReplicaProvider(store: store)
        replicas.checkHealth = false
        let now = Date()
        var observed = try await replicas.observe(desired, now: now)
        observed.backups = lastObservation.backups
        observed.monitors = try await MonitorRegistry(store: store).observe(desired, now: now).monitors
        return StatusReport(desired: desired, observed: observed, store: store, now: now)
    }
}
