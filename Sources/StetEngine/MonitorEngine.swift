public import Foundation
public import StetCore
import StetCrypto
public import StetProviders
public import StetState

/// Runs the registered monitors inside `stet run`: each probe on its interval with a little
/// jitter, never overlapping itself, bounded by its timeout; alert states as Prometheus keeps
/// them, saved on every change; notifications through a queue that retries and never blocks.
///
/// Probes run on threads of their own (`threads`), never on the caller's: `startDue` hands them
/// out and returns at once, and each result comes back to `record`. The schedule and the alert
/// states belong to one owner, the reconcile loop's thread, which makes every call but
/// `queue`'s.
public final class MonitorEngine: @unchecked Sendable {
    public let registry: MonitorRegistry
    let probes: ProbeRunner
    public let queue: NotificationQueue
    /// Alerts about Stet itself, through the same queue.
    public let selfAlerts: SelfAlerts
    /// Told, for each probe, when it was due and when it started (for the benchmark).
    public var onProbe: (@Sendable (String, Date, Date) -> Void)?
    /// A firing alert is sent again this often, well within Alertmanager's resolve timeout (5 min).
    public var resendInterval: Double = 60
    /// Where probes run: a slow probe holds one of these, never the loop.
    let threads = WorkerThreads(name: "stet-probes", limit: 4)
    private var entries: [String: MonitorRegistry.Entry] = [:]
    private var nextProbe: [String: Date] = [:]
    /// Probes in flight, by monitor: when each was scheduled to start.
    private var running: [String: Date] = [:]
    private var changed = false
    /// Alerts of transitions not saved yet, with their notifiers.
    private var unsent: [(AlertMessage, [Notifier])] = []
    private var lastSave = Date.distantPast
    private let log: @Sendable (String) -> Void

    public init(store: any StateStore, replicas: ReplicaProvider, backups: BackupProvider, log: @escaping @Sendable (String) -> Void) {
        let queue = NotificationQueue(sender: NotifierSender(log: log), log: log)
        self.queue = queue
        selfAlerts = SelfAlerts(queue: queue)
        // A monitor unregistered by a pass resolves its alert through the same lanes, after
        // the alerts of it still waiting there.
        registry = MonitorRegistry(store: store) { alerts, notifier in
            queue.enqueue(alerts, to: notifier)
            return nil
        }
        probes = ProbeRunner(replicas: replicas, backups: backups)
        self.log = log
    }

    /// Re-reads the registrations (after a pass may have changed them) and schedules new monitors.
    public func sync(_ desired: DesiredState, now: Date = Date()) {
        entries = (try? registry.load()) ?? entries
        for name in Array(nextProbe.keys) where entries[name] == nil || desired.monitors[name] == nil { nextProbe[name] = nil }
        // A probe in flight for a monitor that is gone is not recorded.
        for name in Array(running.keys) where entries[name] == nil || desired.monitors[name] == nil { running[name] = nil }
        for (name, _) in entries {
            guard let monitor = desired.monitors[name], nextProbe[name] == nil, running[name] == nil else { continue }
            nextProbe[name] = now.addingTimeInterval(Self.jitter(monitor, name))
        }
    }

    /// A fixed offset per monitor within its interval (at most 5 s), as Prometheus offsets its
    /// scrapes, so many monitors of one interval spread out instead of starting together.
    static func jitter(_ monitor: Monitor, _ name: String) -> Double {
        let spread = min(5, monitor.interval.seconds)
        let hash = SHA256.hash(Data(name.utf8)).prefix(2).reduce(0) { $0 * 256 + Int($1) }
        return spread * Double(hash) / 65_536
    }

    /// When the next probe that is not running is due.
    public var nextDue: Date? { nextProbe.values.min() }

    /// The wall clock jumped by `seconds`: each probe stays due as far ahead in real time.
    public func shift(by seconds: Double) {
        nextProbe = nextProbe.mapValues { $0.addingTimeInterval(seconds) }
        running = running.mapValues { $0.addingTimeInterval(seconds) }
    }

    /// Probes started and not yet recorded.
    public var probesInFlight: Int { running.count }

    /// Starts every probe that is due on the probe threads and returns at once. Each result is
    /// handed to `deliver` (on a probe thread) with the time the probe started, for the owner to
    /// pass to `record`.
    public func startDue(
        _ desired: DesiredState, now: Date = Date(), deliver: @escaping @Sendable (String, Date, ProbeRunner.Result) -> Void
    ) {
        let probes = self.probes
        let onProbe = self.onProbe
        for (name, monitor, scheduled) in takeDue(desired, now: now) {
            Task(executorPreference: threads) {
                let started = Date()
                onProbe?(name, scheduled, started)
                deliver(name, started, await probes.probe(monitor, desired: desired, now: started))
            }
        }
    }

    /// Runs every probe that is due, all at once on the probe threads, and records the results
    /// (`stet-bench monitors` steps the engine with this).
    public func runDue(_ desired: DesiredState, now: Date = Date()) async {
        let due = takeDue(desired, now: now)
        guard !due.isEmpty else { return }
        let probes = self.probes
        let onProbe = self.onProbe
        let results = await withTaskExecutorPreference(threads) {
            await withTaskGroup(of: (String, Date, ProbeRunner.Result).self) { group in
                for (name, monitor, scheduled) in due {
                    group.addTask {
                        let started = Date()
                        onProbe?(name, scheduled, started)
                        return (name, started, await probes.probe(monitor, desired: desired, now: started))
                    }
                }
                var results: [(String, Date, ProbeRunner.Result)] = []
                for await result in group { results.append(result) }
                return results
            }
        }
        for (name, started, result) in results { record(name, started: started, result, desired: desired) }
        saveStates()
    }

    /// The due monitors, marked as running: (name, monitor, scheduled start).
    private func takeDue(_ desired: DesiredState, now: Date) -> [(String, Monitor, Date)] {
        var due: [(String, Monitor, Date)] = []
        for name in nextProbe.filter({ $0.value <= now }).keys.sorted() {
            guard let scheduled = nextProbe.removeValue(forKey: name) else { continue }
            guard let monitor = desired.monitors[name] else { continue }
            running[name] = scheduled
            due.append((name, monitor, scheduled))
        }
        return due
    }

    /// Records a probe's result: the alert state's transition, notifications, and the next
    /// probe, scheduled from the last scheduled start so a slow probe delays only itself.
    /// States are written, and then the notifications sent, by `saveStates`.
    public func record(_ name: String, started: Date, _ result: ProbeRunner.Result, desired: DesiredState, now: Date = Date()) {
        guard let scheduled = running.removeValue(forKey: name), let monitor = desired.monitors[name], var entry = entries[name]
        else { return }
        var next = scheduled
        // The next start after now on the schedule, counted at once (after a long step of the
        // clock a loop of intervals would take millions of turns).
        let interval = max(monitor.interval.seconds, 0.001)
        let behind = now.timeIntervalSince(next)
        let steps = behind >= 0 ? min((behind / interval).rounded(.down) + 1, 1e12) : 1
        next = next.addingTimeInterval(steps * interval)
        if next <= now { next = now.addingTimeInterval(interval) }
        nextProbe[name] = next
        let transition = entry.state.record(
            ok: result.ok, detail: result.detail, durationMs: result.durationMs, at: started, pendingFor: monitor.pendingFor)
        switch transition {
        case .firing:
            (entry.alert, entry.sentTo) = send(monitor, entry.state, resolved: false, desired: desired)
            entry.lastSent = started
            log("monitor \(name) firing: \(result.detail)")
            changed = true
        case .resolved:
            var resolved = entry.state
            resolved.activeAt = entries[name]?.state.activeAt
            _ = send(monitor, resolved, resolved: true, desired: desired)
            entry.lastSent = nil
            (entry.alert, entry.sentTo) = (nil, nil)
            log("monitor \(name) resolved")
            changed = true
        case .pending, .cleared:
            changed = true
        case .none:
            if entry.state.phase == .firing, started.timeIntervalSince(entry.lastSent ?? .distantPast) >= resendInterval {
                (entry.alert, entry.sentTo) = send(monitor, entry.state, resolved: false, desired: desired)
                entry.lastSent = started
                changed = true
            }
        }
        entries[name] = entry
    }

    /// Saves the alert states when one changed, and the last probes every few seconds for
    /// `status`; registrations made meanwhile are kept.
    public func saveStates(now: Date = Date()) {
        guard changed || now.timeIntervalSince(lastSave) >= 5 else { return }
        changed = false
        lastSave = now
        var stored = (try? registry.load()) ?? [:]
        for (name, entry) in entries where stored[name] != nil {
            stored[name]!.state = entry.state
            stored[name]!.lastSent = entry.lastSent
            (stored[name]!.alert, stored[name]!.sentTo) = (entry.alert, entry.sentTo)
        }
        try? registry.save(stored)
        // Then the notifications of what was saved: an alert a receiver shows is one the state
        // file holds, and a restart does not send it again.
        for (message, notifiers) in unsent {
            for notifier in notifiers { queue.enqueue([message], to: notifier) }
        }
        unsent = []
    }

    /// Queues the alert of `monitor` for its notifiers; it goes out once the states are saved.
    /// Returns the alert and the notifiers it goes to. A resolved alert says the monitor
    /// recovered, with the probe's last detail.
    private func send(_ monitor: Monitor, _ state: AlertState, resolved: Bool, desired: DesiredState) -> (AlertMessage, [Notifier]) {
        let name = monitor.metadata.name
        let since = state.activeAt.map { RFC3339.format($0) } ?? "?"
        let message = AlertMessage(
            labels: AlertMessage.labels(for: monitor),
            annotations: resolved
                ? ["summary": MonitorRegistry.recoveredSummary(name, state.lastDetail ?? ""),
                   "description": "Stet's monitor \(name) failed from \(since) and passes again"]
                : ["summary": "\(name) is failing: \(state.lastDetail ?? "")",
                   "description": "Stet's monitor \(name) has failed since \(since)"],
            startsAt: RFC3339.format(state.activeAt ?? Date()), endsAt: resolved ? RFC3339.format(Date()) : nil)
        let notifiers = monitor.notify.compactMap { desired.notifiers[$0] }
        unsent.append((message, notifiers))
        return (message, notifiers)
    }
}

/// Notifications waiting for their receivers. Each notifier has a lane of its own (docs/architecture.md,
/// principle 8): a serial queue that sends its alerts in order, at most `limit` waiting (the
/// oldest dropped first, and counted). A failed send pauses only that lane, for 1 s doubling to
/// 60 s, before the same alert is tried again; so a receiver that hangs or is down costs its own
/// alerts one attempt per pause, and every other notifier's alerts go out meanwhile. Each send is
/// bounded by the sender's timeout.
public final class NotificationQueue: @unchecked Sendable {
    struct Item {
        let number: Int
        let alerts: [AlertMessage]
        let notifier: Notifier
    }

    /// One notifier's alerts. Guarded by the queue's lock.
    final class Lane: @unchecked Sendable {
        let worker: DispatchQueue
        var items: [Item] = []
        /// Failed sends in a row.
        var failures = 0
        /// A drain is running or waiting to retry: enqueueing need not start one.
        var active = false

        init(_ name: String) { worker = DispatchQueue(label: "stet.notifications.\(name)") }
    }

    public struct Counts: Sendable, Equatable {
        public var delivered = 0
        public var failedAttempts = 0
        public var dropped = 0
        public var waiting = 0
    }

    private let sender: NotifierSender
    private let log: @Sendable (String) -> Void
    private let lock = NSLock()
    private var lanes: [String: Lane] = [:]
    private var numbered = 0
    private var counts = Counts()
    /// Alerts each notifier keeps waiting at most.
    public var limit = 1000

    init(sender: NotifierSender, log: @escaping @Sendable (String) -> Void) {
        self.sender = sender
        self.log = log
    }

    public var snapshot: Counts {
        lock.withLock {
            var counts = self.counts
            counts.waiting = lanes.values.reduce(0) { $0 + $1.items.count }
            return counts
        }
    }

    public func enqueue(_ alerts: [AlertMessage], to notifier: Notifier) {
        let name = notifier.metadata.name
        let (lane, start) = lock.withLock { () -> (Lane, Bool) in
            let lane = lanes[name] ?? Lane(name)
            lanes[name] = lane
            if lane.items.count >= max(1, limit) {
                lane.items.removeFirst()
                counts.dropped += 1
            }
            numbered += 1
            lane.items.append(Item(number: numbered, alerts: alerts, notifier: notifier))
            defer { lane.active = true }
            return (lane, !lane.active)
        }
        if start { lane.worker.async { self.drain(lane) } }
    }

    /// Sends the lane's alerts in order until it is empty, or a send fails: then the lane waits
    /// its delay and tries the same alert again.
    private func drain(_ lane: Lane) {
        while let item = lock.withLock({ () -> Item? in
            if lane.items.isEmpty { lane.active = false }
            return lane.items.first
        }) {
            if let error = sender.send(item.alerts, to: item.notifier) {
                let failures = lock.withLock { () -> Int in
                    counts.failedAttempts += 1
                    lane.failures += 1
                    return lane.failures
                }
                let delay = min(60, pow(2, Double(min(failures, 16) - 1)))
                if failures == 1 || failures % 10 == 0 {
                    log("notifier \(item.notifier.metadata.name) failed (\(error)); retrying in \(Int(delay)) s")
                }
                lane.worker.asyncAfter(deadline: .now() + delay) { self.drain(lane) }
                return
            }
            lock.withLock {
                // Dropped meanwhile to make room? Then it is no longer first.
                if lane.items.first?.number == item.number { lane.items.removeFirst() }
                lane.failures = 0
                counts.delivered += 1
            }
        }
    }
}
