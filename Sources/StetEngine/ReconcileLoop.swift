public import Foundation
public import StetAudit
public import StetCore
import StetManifest
import StetPlanner
import StetProviders
public import StetState

/// `stet run` (docs/architecture.md, "Plan, apply and the loop"): keeps the host matching the accepted release. Level-
/// triggered: every pass observes again; events only say when to look. Events are a replica's
/// exit (a pidfd per replica, seen at once), a health check or a backoff coming due, a new
/// release (checked every `interval`), and SIGTERM/SIGINT/SIGHUP.
///
/// One thread reacts: the one running `run()`. It waits in `poll` on the replicas' pidfds and a
/// wake pipe, and runs one pass at a time under the state lock (the `Reconciler`: observe, plan,
/// admit, apply). Whatever may be slow (health
/// checks, monitor probes, fetching and verifying a release) runs on threads of its own and hands
/// its result back through the inbox, so a replica's exit is reacted to whatever else is going
/// on (docs/architecture.md, principle 8). Every replica found dead, by whichever path sees it first, is
/// corrected or held back by an explicit decision (backoff or budget).
///
/// Corrections of drift back off per service (`restart.backoff`), and at most `budget`
/// corrections per service per hour are made; past it Stet stops correcting that service,
/// records an alert and shows it in `status` (`CorrectionPolicy`, applied by the `Reconciler`).
public final class ReconcileLoop: @unchecked Sendable {
    public struct Options: Sendable {
        public var manifests: String
        public var trustFile: String
        public var interval: Double = 10
        public var budget: Int = 10
        public var lockTimeout: Double = 30
        public var once = false
        public var prune = false
        /// Releases from git instead of the manifest directory.
        public var source: GitSource?
        /// How often the loop's thread says it is alive (`onLifecycle(.alive)`), waking up for it
        /// when nothing else is due; nil: never (no watchdog watches the loop).
        public var aliveInterval: Double?
        /// A fleet node's membership: the loop runs only this node's share of the release, and
        /// nothing while the node cannot prove what it owns. Nil on one host.
        public var fleet: (any FleetMembership)?

        public init(manifests: String, trustFile: String) {
            self.manifests = manifests
            self.trustFile = trustFile
        }
    }

    /// What the loop says as it works (for the terminal or a log). Set before `run()`.
    public var log: @Sendable (String) -> Void {
        get { hooks.log }
        set { hooks.log = newValue }
    }
    /// Told each action's outcome, and each pass's duration (for metrics). Set before `run()`.
    public var onAction: @Sendable (Change, ActionOutcome) -> Void {
        get { hooks.onAction }
        set { hooks.onAction = newValue }
    }
    public var onPass: @Sendable (Double) -> Void {
        get { hooks.onPass }
        set { hooks.onPass = newValue }
    }
    /// Told the moment a replica's process is started (service, index, pid), before its record
    /// is written: for the latency of replacements (`stet-bench replicas`). Set before `run()`.
    public var onSpawn: @Sendable (String, Int, Int32) -> Void {
        get { hooks.onSpawn }
        set { hooks.onSpawn = newValue }
    }
    /// Told where the loop is in its life (for a service manager: systemd's READY, WATCHDOG and
    /// STOPPING), always from the thread running `run()`, so `.alive` means that thread still turns.
    public var onLifecycle: @Sendable (Lifecycle) -> Void {
        get { hooks.onLifecycle }
        set { hooks.onLifecycle = newValue }
    }

    public enum Lifecycle: Sendable, Equatable {
        /// The first pass is done: the host matches the release in force as far as the loop could make it.
        case ready
        /// The loop's thread is turning (every `Options.aliveInterval`).
        case alive
        /// The loop stops: in-flight work finishes, then `run()` returns.
        case stopping
    }
    /// The release in force, readable from other threads (the status server).
    public let current = Current()
    /// The monitors of the release in force; its notification counts are read by the status server.
    public let monitors: MonitorEngine
    /// What the passes observed, for the status server, which never observes by itself.
    public let lastObservation = LastObservation()

    public final class Current: @unchecked Sendable {
        private let lock = NSLock()
        private var value: (DesiredState, ReleaseRef) = (DesiredState(), .none)
        public var desired: DesiredState { lock.withLock { value.0 } }
        public var release: ReleaseRef { lock.withLock { value.1 } }
        func set(_ desired: DesiredState, _ release: ReleaseRef) { lock.withLock { value = (desired, release) } }
    }

    /// The hooks, called from the loop's and the workers' threads.
    final class Hooks: @unchecked Sendable {
        private let lock = NSLock()
        private var values: (
            log: @Sendable (String) -> Void, onAction: @Sendable (Change, ActionOutcome) -> Void, onPass: @Sendable (Double) -> Void,
            onLifecycle: @Sendable (Lifecycle) -> Void, onSpawn: @Sendable (String, Int, Int32) -> Void
        ) = ({ _ in }, { _, _ in }, { _ in }, { _ in }, { _, _, _ in })
        var log: @Sendable (String) -> Void {
            get { lock.withLock { values.log } }
            set { lock.withLock { values.log = newValue } }
        }
        var onAction: @Sendable (Change, ActionOutcome) -> Void {
            get { lock.withLock { values.onAction } }
            set { lock.withLock { values.onAction = newValue } }
        }
        var onPass: @Sendable (Double) -> Void {
            get { lock.withLock { values.onPass } }
            set { lock.withLock { values.onPass = newValue } }
        }
        var onLifecycle: @Sendable (Lifecycle) -> Void {
            get { lock.withLock { values.onLifecycle } }
            set { lock.withLock { values.onLifecycle = newValue } }
        }
        var onSpawn: @Sendable (String, Int, Int32) -> Void {
            get { lock.withLock { values.onSpawn } }
            set { lock.withLock { values.onSpawn = newValue } }
        }
    }

    let options: Options
    /// The daemon's state directory and audit log: releases are verified and kept as files, so
    /// the loop holds the file implementations; its passes (`Reconciler`) take the protocols.
    public let store: FileStateStore
    let audit: AuditLog
    let hooks = Hooks()
    var provider: ReplicaProvider
    let backups: BackupProvider
    let inbox = LoopInbox()
    let releases: ReleaseWatcher
    /// Where health checks run, and where releases are fetched and verified.
    let healthThreads = WorkerThreads(name: "stet-health", limit: 4)
    let releaseThread = WorkerThreads(name: "stet-release", limit: 1)
    /// Where backup policies are observed and their changes applied (restic), as many at once
    /// as the applier works on.
    let backupThreads = WorkerThreads(name: "stet-backup", limit: 4)
    /// Drills: a monitor's test alert, the wait for a drilled service's replacement.
    let drillThreads = WorkerThreads(name: "stet-drill", limit: 2)
    var drills = DrillBook()
    /// The state lock, shared by the service pass and the backup pass of this process.
    let stateLock: SharedStateLock

    // Everything below belongs to the thread running `run()`.

    /// The release the loop acts on (its desired state: in a fleet, this node's share of
    /// `released`), `none` until one is taken.
    var desired = DesiredState()
    /// The whole desired state of the release in force (in a fleet, `desired` is a share of it).
    var released = DesiredState()
    /// In a fleet: the first pass after joining (or after the share changed) stops what is no
    /// longer this node's before it starts anything new.
    var stopBeforeStart = true
    /// In a fleet: the node cannot act (`FleetMembership.mayAct`), said once per spell.
    var heldByFleet = false
    var release = ReleaseRef.none
    /// How `release.json` looked when last read (`adoptAcceptedRelease`), to read it again only
    /// once it changed.
    var acceptedFileStamp: String?
    /// Releases in force whose copy could not be taken, each recorded once.
    var unadoptable: Set<String> = []
    /// The last error reading the release in force, logged once.
    var adoptionFailure: String?
    /// Services to reconcile in the next pass.
    var dirty: Set<String> = []
    /// Backup policies are looked at on every release check (`interval`): what is due is done.
    var backupsDue = true
    /// A backup pass is out (`ReconcileLoop+Backups.swift`); it holds a share of `stateLock`.
    var backupPassRunning = false
    var stopping = false
    /// `onLifecycle(.ready)` was told (after the first pass), and when `.alive` is due next.
    var toldReady = false
    var nextAlive = Date.distantPast
    var failedLastPass = false
    var nextReleaseCheck = Date.distantPast
    var releaseCheckRunning = false
    var seenReleaseDigest: String?
    var refusedDigests: Set<String> = []
    let watchers = ReplicaWatchers()
    var health = HealthSchedule()
    /// Resources held back by a backoff, and when they may be corrected again.
    var waiting: [ResourceID: Date] = [:]
    /// The next opening or close of a maintenance window (`nextWindowWake`).
    var windowWake: Date?
    var windowWakeRelease = ""
    /// Observes, plans, admits (backoff and budget) and applies; keeps the correction policy.
    let reconciler: Reconciler
    /// Steps of the wall clock (`clockJumped`).
    var clockWatch = ClockWatch()
    /// Restarts of the audit log after damage already alerted on (by restart time).
    var alertedDamage: Set<String> = []
    private var signalSources: [any DispatchSourceSignal] = []

    public init(options: Options, store: FileStateStore, audit: AuditLog, baseDirectory: String = FileManager.default.currentDirectoryPath) {
        self.options = options
        self.store = store
        self.audit = audit
        stateLock = SharedStateLock(store.lock("lock"))
        provider = ReplicaProvider(store: store, baseDirectory: baseDirectory)
        provider.checkHealth = false
        provider.startCheck = 0
        let spawnHooks = hooks
        provider.spawned = { spawnHooks.onSpawn($0, $1, $2) }
        backups = BackupProvider(store: store, baseDirectory: baseDirectory)
        let hooks = self.hooks
        monitors = MonitorEngine(store: store, replicas: provider, backups: backups, log: { hooks.log($0) })
        var releases = ReleaseWatcher(manifests: options.manifests, trustFile: options.trustFile, source: options.source, store: store)
        releases.directoryMayBeAbsent = options.fleet != nil
        self.releases = releases
        var passHooks = Reconciler.Hooks()
        passHooks.log = { hooks.log($0) }
        passHooks.progress = Self.progress(hooks)
        let monitors = self.monitors
        passHooks.selfAlert = { alert, summary, desired in monitors.selfAlerts.raise(alert, summary: summary, desired: desired) }
        passHooks.selfAlertCleared = { alert, detail in monitors.selfAlerts.resolve(alert, detail: detail) }
        reconciler = Reconciler(audit: audit, store: store, budget: options.budget, prune: options.prune, hooks: passHooks)
    }

    deinit {
        for source in signalSources { source.cancel() }
    }

    /// Runs until SIGTERM or SIGINT (or one pass with `once`). Returns false when the last
    /// pass had a failed action (for `--once`'s exit status).
    public func run() async throws -> Bool {
        installSignalHandlers()
        if let fleet = options.fleet {
            let inbox = self.inbox
            fleet.attach { inbox.post(.fleet) }
        }
        _ = try withLock {
            try adoptAcceptedRelease()
            let release = try ReleaseStore(store: store).reference()
            try Drills.recoverInterrupted(store: store, audit: audit, release: release)
            return try Applier.recoverInterrupted(store: store, audit: audit, release: release)
        }
        // The first pass needs the release: the first check is made here, before it.
        nextReleaseCheck = Date().addingTimeInterval(options.interval)
        try take(releases.check(after: nil, force: true))
        dirty = Set(desired.services.keys).union(try provider.records().keys)
        while true {
            alertAuditDamage()
            // A release accepted by `apply` or `verify --accept` meanwhile is taken at once.
            try adoptAcceptedRelease()
            if !dirty.isEmpty || backupsDue, !fleetMayAct() {
                // Held by the fleet: exits are still recorded (and reaped), nothing is acted on.
                try recordExits()
            } else if !dirty.isEmpty || backupsDue {
                try await reconcile()
                monitors.sync(desired)
                alertAuditDamage()
                if !toldReady {
                    toldReady = true
                    hooks.onLifecycle(.ready)
                }
                if options.once {
                    try waitForBackupPass()
                    break
                }
            }
            // Signals and results that came meanwhile, before more work is handed out.
            try handle(inbox.drain())
            if stopping { break }
            tellAlive()
            startDueWork()
            waitForEvents()
        }
        hooks.onLifecycle(.stopping)
        finishInFlight(within: 10)
        try audit.checkpoint()
        return !failedLastPass
    }

    /// A damaged audit log does not stop the loop: the log restarts after it (`AuditLog`),
    /// and every restart is alerted on, once.
    func alertAuditDamage() {
        for damage in audit.damages where !alertedDamage.contains(damage.time) {
            alertedDamage.insert(damage.time)
            log("the audit log was damaged; it restarted at \(damage.time): \(damage.summary)")
            monitors.selfAlerts.raise(
                SelfAlert(.auditDamaged),
                summary: "the audit log was damaged and restarted at \(damage.time) from entry \(damage.firstSeq); the damaged "
                    + "log is kept as \(damage.damagedPath): \(damage.summary)",
                desired: desired)
        }
    }

    /// The wall clock was stepped by `seconds` (negative: back). Every schedule kept as a date
    /// (release checks, health checks, probes, backoffs and the self-heal budget's hour, drills,
    /// the watchdog) moves with it, so each stays as far ahead in real time as it was: a clock
    /// stepped back an hour holds nothing back for an hour, one stepped forward fires nothing
    /// early. What is promised in wall-clock time (RPO, maintenance windows, release expiry) is
    /// looked at again at once.
    func clockJumped(by seconds: Double) {
        log(String(format: "the wall clock was stepped by %+.1f s; schedules keep their intervals in real time", seconds))
        if nextReleaseCheck != .distantPast { nextReleaseCheck.addTimeInterval(seconds) }
        if nextAlive != .distantPast { nextAlive.addTimeInterval(seconds) }
        health.shift(by: seconds)
        monitors.shift(by: seconds)
        waiting = waiting.mapValues { $0.addingTimeInterval(seconds) }
        reconciler.clockJumped(by: seconds)
        drills.postponed = drills.postponed.mapValues { $0.addingTimeInterval(seconds) }
        drills.nextDue = nil
        windowWake = nil
        dirty.formUnion(desired.services.keys)
        backupsDue = true
    }

    /// Says the loop's thread is alive when that is due (`Options.aliveInterval`).
    private func tellAlive() {
        guard let every = options.aliveInterval else { return }
        let now = Date()
        guard now >= nextAlive else { return }
        nextAlive = now.addingTimeInterval(every)
        hooks.onLifecycle(.alive)
    }

    // MARK: - Events

    /// Takes in what other threads posted.
    func handle(_ events: [LoopInbox.Event]) throws {
        var probed = false
        for event in events {
            switch event {
            case .stop:
                stopping = true
            case .checkRelease:
                nextReleaseCheck = .distantPast
            case .fleet:
                takeFleetShare()
            case .health(let result):
                if let service = health.record(result, desired: desired, provider: provider, now: Date()) { dirty.insert(service) }
            case .probe(let name, let started, let result):
                monitors.record(name, started: started, result, desired: desired)
                probed = true
            case .release(.failed(let error)):
                // Nothing was judged: the release in force stays, the next check looks again.
                releaseCheckRunning = false
                log("cannot check the release in \(options.manifests): \(error); version \(release.version) stays in force")
            case .release(let outcome):
                releaseCheckRunning = false
                if !stopping { try take(outcome) }
            case .backupPlan(let plan):
                try takeBackupPlan(plan)
            case .backupsApplied(let report):
                takeBackupReport(report)
            case .drill(let resource, let verdict):
                try takeDrill(resource, verdict)
            case .hostDrill(let resource, let outcome, let started):
                try takeHostDrill(resource, outcome, started: started)
            }
        }
        if probed { monitors.saveStates() }
    }

    /// Hands out the work that is due: health checks, probes, a release check. Returns at once.
    private func startDueWork() {
        let now = Date()
        let inbox = self.inbox
        if !releaseCheckRunning, now >= nextReleaseCheck { startReleaseCheck(now: now) }
        monitors.selfAlerts.resendDue(now: now)
        health.startDue(now: now, desired: desired, provider: provider, on: healthThreads) { inbox.post(.health($0)) }
        monitors.startDue(desired, now: now) { inbox.post(.probe(name: $0, started: $1, result: $2)) }
        if drills.release != release.digest {
            // A new release may add or change drills: look at once.
            drills.release = release.digest
            drills.nextDue = nil
        }
        if drills.nextDue.map({ now >= $0 }) ?? true { startDueDrills(now: now) }
    }

    /// Sleeps in `poll` until a replica exits, something is posted, or the next thing is due.
    private func waitForEvents() {
        let now = Date()
        var due = releaseCheckRunning ? Date.distantFuture : nextReleaseCheck
        let alive = options.aliveInterval == nil ? nil : nextAlive
        let windowWake = nextWindowWake(now: now)
        for date in [health.nextDue, monitors.nextDue, waiting.values.min(), alive, windowWake, drills.nextDue]
            .compactMap({ $0 }) where date < due { due = date }
        // Work held back by the fleet waits for the fleet to say it may act (`.fleet`).
        let idle = (dirty.isEmpty && !backupsDue) || heldByFleet
        var timeout = idle ? Self.milliseconds(from: now, to: due) : 0
        // Without a wake pipe, results are picked up by looking often.
        if inbox.wakeDescriptor < 0 { timeout = min(timeout, 100) }
        let ended = watchers.wait(wake: inbox.wakeDescriptor, timeout: timeout)
        // The loop spends its time here: a step of the wall clock is most likely seen now, before
        // anything is scheduled from the new time (a step during a pass is seen at the next wait,
        // and what that pass scheduled moves with the rest).
        if let step = clockWatch.jump() { clockJumped(by: step) }
        for (key, pid) in ended {
            log("replica \(key) (pid \(pid)) ended")
            health.forget(key)
            dirty.insert(key.service)
        }
        let later = Date()
        if let windowWake, later >= windowWake {
            // A window opened or closed: what waited for it is planned again at once (catch-up).
            log("a maintenance window opened or closed; looking at every resource again")
            dirty.formUnion(desired.services.keys)
            backupsDue = true
            self.windowWake = nil
            // A wait after this is a new one, recorded again.
            reconciler.forgetWindowWaits()
        }
        for (key, date) in waiting where date <= later {
            waiting[key] = nil
            switch key.kind {
            case .service: dirty.insert(key.name)
            // Backup policies (and monitors) are planned when backups are due.
            case .backupPolicy, .monitor, .notifier, .maintenanceWindow: backupsDue = true
            }
        }
    }

    /// When the next maintenance window of the release in force opens or closes (just after,
    /// so the pass then sees it so), cached until then or until the release changes.
    func nextWindowWake(now: Date) -> Date? {
        if windowWakeRelease != release.digest || windowWake.map({ now > $0.addingTimeInterval(1) }) ?? true {
            windowWakeRelease = release.digest
            windowWake = WindowGate(desired).nextTransition(after: now)?.addingTimeInterval(0.01)
        }
        return windowWake
    }

    /// `poll`'s timeout until `due`: at least 0, at most an hour. Rounded up: a wait of less
    /// than a millisecond is one millisecond, not a poll that returns at once, again and again.
    static func milliseconds(from now: Date, to due: Date) -> Int32 {
        let seconds = due.timeIntervalSince(now)
        guard seconds > 0 else { return 0 }
        return Int32((min(seconds, 3600) * 1000).rounded(.up))
    }

    /// One pidfd per running replica; a replica found gone whose exit no pass recorded makes
    /// its service dirty; health checks follow the watched replicas.
    func syncWatchers() {
        let records: [String: [Int: ReplicaProvider.Record]]
        do {
            records = try provider.records()
        } catch {
            log("cannot read the replica records: \(error)")
            return
        }
        let changes = watchers.sync(records)
        dirty.formUnion(changes.unrecorded)
        let now = Date()
        for key in changes.stopped { health.forget(key) }
        for record in changes.watched { health.watch(record, service: desired.services[record.service], provider: provider, now: now) }
    }

    /// Waits up to `seconds` for the checks, probes, release check and backup pass still
    /// running, so that none is left behind (an exec probe's process, a git fetch) when `run`
    /// returns. A backup pass still out then has its restic processes stopped, and a few
    /// seconds more to record their results.
    private func finishInFlight(within seconds: Double) {
        var deadline = Date().addingTimeInterval(seconds)
        var resticStopped = false
        while health.inFlight > 0 || monitors.probesInFlight > 0 || releaseCheckRunning || backupPassRunning {
            let now = Date()
            if now >= deadline, backupPassRunning, !resticStopped {
                log("stopping the backups still running")
                stopBackups()
                resticStopped = true
                deadline = Date().addingTimeInterval(5)
                continue
            }
            guard now < deadline else {
                log("stopping with work still running: \(health.inFlight) health checks, \(monitors.probesInFlight) probes"
                    + (releaseCheckRunning ? ", a release check" : "") + (backupPassRunning ? ", a backup pass" : ""))
                return
            }
            var wake = pollfd(fd: inbox.wakeDescriptor, events: Int16(POLLIN), revents: 0)
            _ = poll(&wake, 1, min(Self.milliseconds(from: now, to: deadline), 100))
            try? handle(inbox.drain())
        }
    }

    private func installSignalHandlers() {
        let inbox = self.inbox
        for number in [SIGTERM, SIGINT, SIGHUP] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { inbox.post(number == SIGHUP ? .checkRelease : .stop) }
            source.resume()
            signalSources.append(source)
        }
    }

    // MARK: - Release

    /// Starts a release check on the release thread, and makes the pass that follows look at
    /// the backups.
    private func startReleaseCheck(now: Date) {
        nextReleaseCheck = now.addingTimeInterval(options.interval)
        releaseCheckRunning = true
        backupsDue = true
        // Replicas write their logs directly; keep each under its size cap.
        for key in watchers.keys { if let path = try? provider.logPath(key.service, key.index) { provider.rotate(path) } }
        let (releases, inbox, seen) = (self.releases, self.inbox, seenReleaseDigest)
        releaseThread.submit { inbox.post(.release(releases.check(after: seen, force: false))) }
    }

    /// Acts on a release check: accepts a new release (`ReleaseAcceptance`), or records a refusal
    /// once and keeps the release in force. Nothing is torn down.
    private func take(_ outcome: ReleaseWatcher.Outcome) throws {
        let check: ReleaseAcceptance.Check
        let seen: ReleaseWatcher.Seen
        switch outcome {
        case .unchanged:
            return
        case .unreachable(let message):
            log("git source \(options.source?.url ?? options.manifests): \(message)")
            return
        case .failed(let error):
            throw error
        case .checked(let checked, let what):
            (check, seen) = (checked, what)
        }
        seenReleaseDigest = seen.digest
        let commit = seen.commit
        let source = commit.map { "commit \($0) of \(options.source?.url ?? "")" } ?? options.manifests
        var acceptance = ReleaseAcceptance(store: store, audit: audit)
        if options.fleet != nil { acceptance.role = .node }
        guard case .passed(let passed) = check else {
            guard !refusedDigests.contains(seen.digest) else { return }
            refusedDigests.insert(seen.digest)
            try acceptance.record(check, action: "accept-release", source: source)
            if case .refused(let refused) = check {
                log("refused the release in \(source): \(refused.error.message); keeping version \(release.version)")
                monitors.selfAlerts.raise(
                    SelfAlert(.releaseRefused), summary: "stet refused the release in \(source): \(refused.error.message)", desired: desired)
            } else {
                log("the signed release in \(source) has manifests that do not parse; keeping version \(release.version)")
            }
            return
        }
        let decision: ReleaseAcceptance.Decision
        do {
            // Verified on another thread: a release accepted meanwhile by another command wins.
            decision = try withLock { try acceptance.accept(passed, gate: seen.gate, commit: commit, now: Date()) }
        } catch let untrusted as AuditError where untrusted.code == .untrustedKey {
            guard !refusedDigests.contains(seen.digest) else { return }
            refusedDigests.insert(seen.digest)
            try acceptance.recordRefusal(action: "accept-release", reason: "the release in \(source) was not accepted", error: untrusted.message)
            log("the release in \(source) was not accepted: \(untrusted.message)")
            return
        }
        switch decision {
        case .accepted(let accepted):
            log("accepted release version \(accepted.version)" + (commit.map { " from commit \($0)" } ?? ""))
            take(accepted, passed.desired)
        case .inForce(let inForce):
            if inForce != release { take(inForce, passed.desired) } else { releaseStands(inForce, source: source) }
        case .superseded(let newer):
            log("release version \(passed.release.release.version) in \(source) is older than version \(newer.version), accepted meanwhile")
            try adoptAcceptedRelease()
        }
    }

    /// Acts on `release` from now on (in a fleet, on this node's share of it).
    private func take(_ release: ReleaseRef, _ desired: DesiredState) {
        self.release = release
        released = desired
        options.fleet?.releaseTaken(release, desired)
        self.desired = options.fleet.map { $0.share(of: desired) ?? Self.nothingAssigned(desired) } ?? desired
        current.set(self.desired, release)
        dirty.formUnion(desired.services.keys)
        releaseStands(release, source: nil)
    }

    /// A release with no replica, backup policy or monitor assigned here.
    static func nothingAssigned(_ desired: DesiredState) -> DesiredState {
        var none = desired
        none.assignedReplicas = [:]
        none.backupPolicies = [:]
        none.monitors = [:]
        return none
    }

    // MARK: - Fleet

    /// The fleet's share for this node changed, or whether it may act: every service is looked
    /// at again, and the backups and monitors with them.
    private func takeFleetShare() {
        guard let fleet = options.fleet else { return }
        // No share is not an empty one: while the node has not read the assignments since etcd
        // answered again, what it acted on stays (and it acts on nothing until they are read).
        if let share = fleet.share(of: released), share != desired {
            desired = share
            current.set(share, release)
            stopBeforeStart = true
        }
        dirty.formUnion(released.services.keys)
        if let records = try? provider.records() { dirty.formUnion(records.keys) }
        backupsDue = true
        // The fleet may have written a new release for the loop to verify.
        if !releaseCheckRunning { nextReleaseCheck = .distantPast }
    }

    /// In a fleet, whether the pass about to run may act, with the share as it is now taken if it
    /// is not the one acted on: the wake-up that brought a fresh share may still wait in the
    /// inbox, and the node may have been held while the pass waited for the state lock. Always
    /// true on one host.
    func takeActingShare() -> Bool {
        guard let fleet = options.fleet else { return true }
        // Read after `mayAct`: a share is there only while the assignments are read and current.
        guard fleet.mayAct, let share = fleet.share(of: released) else { return false }
        if share != desired { takeFleetShare() }
        return true
    }

    /// Whether a pass may run now: always on one host; in a fleet only while the node can prove
    /// what it owns. Said once when that changes.
    private func fleetMayAct() -> Bool {
        guard let fleet = options.fleet else { return true }
        let may = fleet.mayAct
        if may == heldByFleet {
            heldByFleet = !may
            log(may ? "the fleet lease is renewed: acting on this node's assignments again"
                : "cannot prove what this node owns (fleet lease not renewed, or assignments not read yet): starting and stopping nothing")
        }
        return may
    }

    /// A release passed and is in force: a refusal alerted on before is over.
    private func releaseStands(_ release: ReleaseRef, source: String?) {
        monitors.selfAlerts.resolve(
            SelfAlert(.releaseRefused),
            detail: "release version \(release.version) is in force" + (source.map { ", and the release in \($0) verifies" } ?? ""))
    }

    /// Takes the release in force from the state directory when it is not the one the loop acts
    /// on: `apply` or `verify --accept` accepted it while the loop ran, or the loop just started.
    /// Its copy is verified again (`ReleaseStore.inForce`) and parsed. Never an older release than
    /// the loop's, and a copy that cannot be taken is recorded once and leaves the loop's release
    /// in force. Cheap when nothing changed: `release.json` is read again only once it changed.
    /// A state file the host cannot read stops nothing: it is logged once and read again at the
    /// next wake-up. Only the audit log's errors end the loop, as everywhere.
    func adoptAcceptedRelease() throws {
        do {
            try takeAcceptedRelease()
            adoptionFailure = nil
        } catch let error as AuditError {
            throw error
        } catch {
            let message = "\(error)"
            guard message != adoptionFailure else { return }
            adoptionFailure = message
            log("cannot read the release in force in \(store.root): \(message); the loop keeps version \(release.version)")
        }
    }

    private func takeAcceptedRelease() throws {
        let path = store.path(AcceptedRelease.key)
        var info = stat()
        let stamp = lstat(path, &info) == 0 ? "\(info.st_ino) \(info.st_size) \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)" : "none"
        guard stamp != acceptedFileStamp else { return }
        guard let accepted = try AcceptedRelease.load(from: store) else {
            acceptedFileStamp = stamp
            return
        }
        guard !accepted.release.isSameRelease(as: release) else {
            acceptedFileStamp = stamp
            return
        }
        guard accepted.version > release.version else {
            acceptedFileStamp = stamp
            log("\(path) names release version \(accepted.version), older than version \(release.version): the loop keeps version \(release.version)")
            return
        }
        let releases = ReleaseStore(store: store)
        let inForce: ReleaseStore.InForce
        do {
            guard let trust = try PinnedTrust.load(from: store) else {
                throw VerificationError(.trustNotPinned, "no trust policy is pinned in \(store.root)/trust")
            }
            guard let loaded = try releases.inForce(trust: trust, now: Date()) else { return }
            inForce = loaded
        } catch let error as VerificationError {
            acceptedFileStamp = stamp
            try notAdopted(accepted.release, reason: "\(error.code.rawValue): \(error.message)", record: true)
            return
        } catch let error as ManifestError {
            acceptedFileStamp = stamp
            try notAdopted(accepted.release, reason: error.description, record: true)
            return
        } catch let missing as ReleaseStore.NotStored {
            // Accepted by an earlier Stet: the release check that follows keeps its copy.
            acceptedFileStamp = stamp
            try notAdopted(accepted.release, reason: missing.description, record: false)
            return
        }
        acceptedFileStamp = stamp
        let taken = releases.reference()
        log("took release version \(taken.version), in force in \(store.root)" + (release.isNone ? "" : " (was version \(release.version))"))
        take(taken, inForce.desired)
    }

    /// Says once that the release in force could not be taken; records it as a refusal unless
    /// it is only not stored yet.
    private func notAdopted(_ accepted: ReleaseRef, reason: String, record: Bool) throws {
        guard unadoptable.insert(accepted.digest).inserted else { return }
        let keeping = release.isNone ? "the loop acts on no release" : "the loop keeps version \(release.version)"
        log("cannot take release version \(accepted.version), in force in \(store.root): \(reason); \(keeping)")
        guard record else { return }
        try ReleaseAcceptance(store: store, audit: audit).recordRefusal(
            action: "accept-release", reason: "the copy of release version \(accepted.version) in \(store.root) was refused; \(keeping)",
            error: reason)
        monitors.selfAlerts.raise(
            SelfAlert(.releaseRefused), summary: "stet cannot take release version \(accepted.version) from \(store.root): \(reason)",
            desired: desired)
    }

    func withLock<T>(_ body: () throws -> T) throws -> T {
        try stateLock.acquire(timeout: options.lockTimeout)
        defer { stateLock.release() }
        return try body()
    }
}
