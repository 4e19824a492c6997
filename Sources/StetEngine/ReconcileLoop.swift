import CSys
public import Foundation
public import StetAudit
public import StetCore
import StetCrypto
public import StetManifest
import StetPlanner
public import StetProviders
public import StetState

/// `stet run` (DESIGN.md section 8): keeps the host matching the accepted release. Level-
/// triggered: every pass observes again; events only say when to look. Events are a replica's
/// exit (a pidfd per replica, seen at once), a health check or a backoff coming due, a new
/// release (checked every `interval`), and SIGTERM/SIGINT/SIGHUP.
///
/// One pass at a time holds the state lock. Corrections of drift back off per service
/// (`restart.backoff`), and at most `budget` corrections per service per hour are made; past it
/// Stet stops correcting that service, records an alert and shows it in `status`.
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

        public init(manifests: String, trustFile: String) {
            self.manifests = manifests
            self.trustFile = trustFile
        }
    }

    /// What the loop says as it works (for the terminal or a log).
    public var log: @Sendable (String) -> Void = { _ in }
    /// Told each action's outcome, and each pass's duration (for metrics).
    public var onAction: @Sendable (Change, ActionOutcome) -> Void = { _, _ in }
    public var onPass: @Sendable (Double) -> Void = { _ in }
    /// The release in force, readable from other threads (the status server).
    public let current = Current()

    public final class Current: @unchecked Sendable {
        private let lock = NSLock()
        private var value: (DesiredState, AuditEntry.Release) = (DesiredState(), .none)
        public var desired: DesiredState { lock.withLock { value.0 } }
        public var release: AuditEntry.Release { lock.withLock { value.1 } }
        func set(_ desired: DesiredState, _ release: AuditEntry.Release) { lock.withLock { value = (desired, release) } }
    }

    let options: Options
    let store: FileStateStore
    let audit: AuditLog
    var provider: ReplicaProvider
    let backups: BackupProvider
    public private(set) var monitors: MonitorEngine!
    /// Backup policies are looked at on every release check (`interval`): what is due is done.
    private var backupsDue = true

    private var desired = DesiredState()
    private var release = AuditEntry.Release.none
    private var seenReleaseDigest: String?
    private var refusedDigests: Set<String> = []
    private var nextReleaseCheck = Date.distantPast
    private var dirty: Set<String> = []
    private var watchers: [String: Watcher] = [:]
    private var healthDue: [String: Date] = [:]
    private var healthFailures: [String: Int] = [:]
    private var backoff: [String: Backoff] = [:]
    private var corrections: [String: [Date]] = [:]
    private var budgetAlerted: Set<String> = []
    private var reportedNotices: Set<String> = []
    private var stopping = false
    private let wake: (read: Int32, write: Int32)
    private var signalSources: [any DispatchSourceSignal] = []
    private var failedLastPass = false
    private var consecutiveFailures: [String: Int] = [:]

    struct Watcher {
        let fd: Int32
        let pid: Int32
        let service: String
        let index: Int
    }

    struct Backoff {
        var attempts = 0
        var until = Date.distantPast
        var last = Date.distantPast
    }

    public init(options: Options, store: FileStateStore, audit: AuditLog, baseDirectory: String = FileManager.default.currentDirectoryPath) {
        self.options = options
        self.store = store
        self.audit = audit
        provider = ReplicaProvider(store: store, baseDirectory: baseDirectory)
        provider.checkHealth = false
        provider.startCheck = 0
        backups = BackupProvider(store: store, baseDirectory: baseDirectory)
        monitors = nil
        var fds: [Int32] = [0, 0]
        pipe(&fds)
        for fd in fds {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, O_NONBLOCK)
        }
        wake = (fds[0], fds[1])
    }

    deinit {
        for watcher in watchers.values { close(watcher.fd) }
        close(wake.read)
        close(wake.write)
    }

    /// Runs until SIGTERM or SIGINT (or one pass with `once`). Returns false when the last
    /// pass had a failed action (for `--once`'s exit status).
    public func run() async throws -> Bool {
        let log = self.log
        monitors = MonitorEngine(store: store, replicas: provider, backups: backups, log: log)
        installSignalHandlers()
        if let accepted = try AcceptedRelease.load(from: store) {
            release = AuditEntry.Release(
                version: accepted.version, digest: accepted.digest, commit: GitSource.acceptedCommit(digest: accepted.digest, store: store))
        }
        try withLock { try Applier.recoverInterrupted(store: store, audit: audit, release: release) }
        try await checkRelease(force: true)
        dirty = Set(desired.services.keys).union(try provider.records().keys)
        var watchersStale = true
        while !stopping {
            if !dirty.isEmpty || backupsDue {
                try await reconcile()
                watchersStale = true
                monitors.sync(desired)
                if options.once { break }
            }
            // Records change only in a pass: watchers are re-read only after one.
            if watchersStale {
                syncWatchers()
                watchersStale = false
            }
            waitForEvents()
            await monitors.runDue(desired)
            runDueHealthChecks()
            if Date() >= nextReleaseCheck { try await checkRelease(force: false) }
        }
        try audit.checkpoint()
        return !failedLastPass
    }

    // MARK: - Release

    /// A cheap fingerprint of the manifest directory: the envelope's digest and every file's
    /// name, size and modification time. Any change means verifying the release again (a new
    /// signed release, or a file edited without signing).
    private func releaseFingerprint() -> String {
        let root = options.manifests
        let envelope = FileManager.default.contents(atPath: (root as NSString).appendingPathComponent(ReleaseIndex.envelopeName))
        var text = envelope.map { $0.sha256Reference } ?? "no envelope"
        let names = (FileManager.default.enumerator(atPath: root)?.allObjects as? [String] ?? []).sorted()
        for name in names {
            var info = stat()
            guard lstat((root as NSString).appendingPathComponent(name), &info) == 0 else { continue }
            text += "\n\(name) \(info.st_size) \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec) \(info.st_mode)"
        }
        return Data(text.utf8).sha256Reference
    }

    /// Verifies the release when the manifest directory changed (or `force`): accepts a new
    /// one, or records the refusal once and keeps the release in force. Nothing is torn down.
    private func checkRelease(force: Bool) async throws {
        nextReleaseCheck = Date().addingTimeInterval(options.interval)
        backupsDue = true
        // Replicas write their logs directly; keep each under its size cap.
        for watcher in watchers.values { provider.rotate(provider.logPath(watcher.service, watcher.index)) }
        var gate = ReleaseGate(manifests: options.manifests, trustFile: options.trustFile, store: store)
        var commit: String?
        let digest: String
        if let source = options.source {
            // From git: fetch, and look at a commit once.
            do {
                let head = try source.fetch()
                guard force || head != seenReleaseDigest else { return }
                try source.checkout(head)
                commit = head
                digest = head
                gate = ReleaseGate(manifests: source.manifests, trustFile: source.trustFile, store: store)
            } catch {
                log("git source \(source.url): \(error)")
                return
            }
        } else {
            digest = releaseFingerprint()
            guard force || digest != seenReleaseDigest else { return }
        }
        seenReleaseDigest = digest
        gate.trustOnFirstUse = false
        do {
            let decision = try gate.resolveTrust(acting: true)
            let passed = try gate.verify(trust: decision, now: Date())
            let report = passed.release.report
            let new = AuditEntry.Release(version: report.version ?? 0, digest: report.digest ?? "", commit: commit)
            if new != release || decision.needsPinning {
                try withLock {
                    try audit.append(AuditRecord(
                        kind: .release, release: new, action: "accept-release",
                        reason: "release version \(new.version) accepted by the reconcile loop" + (commit.map { " from commit \($0)" } ?? ""),
                        outcome: .ok))
                    try gate.accept(passed, now: Date())
                    if let commit, let digest = report.digest { try GitSource.recordAccepted(digest: digest, commit: commit, store: store) }
                }
                log("accepted release version \(new.version)" + (commit.map { " from commit \($0)" } ?? ""))
            }
            release = new
            desired = passed.desired
            current.set(desired, release)
            dirty.formUnion(desired.services.keys)
        } catch let refused as ReleaseGate.Refused {
            guard !refusedDigests.contains(digest) else { return }
            refusedDigests.insert(digest)
            try audit.append(AuditRecord(
                kind: .refusal, release: release, action: "accept-release",
                reason: "the release in " + (commit.map { "commit \($0) of \(options.source?.url ?? "")" } ?? options.manifests)
                    + " was refused; release version \(release.version) stays in force",
                outcome: .failed, error: "\(refused.error.code.rawValue): \(refused.error.message)"))
            log("refused the release in \(options.manifests): \(refused.error.message); keeping version \(release.version)")
            monitors?.selfAlert(
                "StetReleaseRefused", summary: "stet refused the release in \(options.manifests): \(refused.error.message)", desired: desired)
        } catch let invalid as ManifestError {
            guard !refusedDigests.contains(digest) else { return }
            refusedDigests.insert(digest)
            try audit.append(AuditRecord(
                kind: .refusal, release: release, action: "accept-release",
                reason: "the signed release in \(options.manifests) has manifests that do not parse", outcome: .failed,
                error: invalid.description))
        }
    }

    // MARK: - Reconcile

    private func withLock<T>(_ body: () throws -> T) throws -> T {
        let lock = try StateLock(store: store, timeout: options.lockTimeout)
        defer { lock.release() }
        return try body()
    }

    /// One pass over the dirty services: observe, plan, record drift, apply what may be applied.
    /// Every replica found dead here joins the pass, whichever service made it run: the pass
    /// records the exit, so no later look would see it as news.
    private func reconcile() async throws {
        let lock = try StateLock(store: store, timeout: options.lockTimeout)
        defer { lock.release() }
        let passStarted = DispatchTime.now().uptimeNanoseconds
        defer { onPass(Double(DispatchTime.now().uptimeNanoseconds - passStarted) / 1e9) }
        let withBackups = backupsDue
        backupsDue = false
        let services = dirty.union(try reapExited())
        dirty = []
        let now = Date()
        var observed = try await provider.observe(desired, now: now)
        observed.services = observed.services.filter { services.contains($0.key) }
        var scoped = desired
        scoped.services = desired.services.filter { services.contains($0.key) }
        if withBackups {
            observed.backups = try await backups.observe(desired, now: now).backups
            observed.monitors = try await monitors.registry.observe(desired, now: now).monitors
        } else {
            scoped.backupPolicies = [:]
            scoped.monitors = [:]
        }
        let plan = Planner(prune: options.prune).plan(
            desired: scoped, observed: observed, release: Plan.Release(version: release.version, digest: release.digest), now: now)
        var allowed: [Change] = []
        var decisions: [String: Correction] = [:]
        for change in plan.changes {
            // Services are keyed by name; other kinds by their resource id.
            let name = change.resource.hasPrefix("Service/") ? String(change.resource.split(separator: "/").last ?? "") : change.resource
            guard change.cause == .drift else {
                allowed.append(change)
                continue
            }
            try audit.append(AuditRecord(
                kind: .drift, release: release, change: change.id, resource: change.resource, action: change.action,
                cause: change.cause.rawValue, reason: change.reason.message))
            // One backoff decision per service and pass: every replica that needs it is corrected.
            let decision = try decisions[name] ?? mayCorrect(name, change: change, now: now)
            if decisions[name] == nil {
                decisions[name] = decision
            } else if decision == .now {
                corrections[name, default: []].append(now)
            }
            switch decision {
            case .now: allowed.append(change)
            case .later: dirtyAfterBackoff.insert(name)
            case .never: break
            }
        }
        for notice in plan.notices {
            let key = "\(notice.resource)#\(notice.replica ?? -1):\(notice.reason.code)"
            guard !reportedNotices.contains(key) else { continue }
            reportedNotices.insert(key)
            try audit.append(AuditRecord(
                kind: .drift, release: release, resource: notice.resource,
                reason: notice.reason.message + (notice.mode.map { " (drift: \($0.rawValue), not corrected)" } ?? "")))
        }
        failedLastPass = false
        guard !allowed.isEmpty else { return }
        var toApply = plan
        toApply.changes = allowed
        var host = HostProvider(store: store)
        host.replicas = provider
        host.backups = backups
        host.monitors = monitors.registry
        let applier = Applier(provider: host, audit: audit, store: store, release: release)
        let log = self.log
        let onAction = self.onAction
        let report = try await applier.apply(toApply, desired: desired) { result in
            onAction(result.change, result.outcome)
            log("\(result.outcome.ok ? "ok" : "failed")  \(result.change.id)  \(result.outcome.ok ? result.outcome.detail : result.outcome.error ?? "")")
        }
        failedLastPass = report.failed
        // A provider that fails the same resource three times running is alerted on, once.
        for result in report.results {
            let key = result.change.resource
            if result.outcome.ok {
                consecutiveFailures[key] = 0
            } else {
                consecutiveFailures[key, default: 0] += 1
                if consecutiveFailures[key] == 3 {
                    monitors?.selfAlert(
                        "StetProviderFailing",
                        summary: "\(key) failed three times running: \(result.outcome.error ?? "")", desired: desired)
                }
            }
        }
        for result in report.results where !result.outcome.ok && result.change.resource.hasPrefix("Service/") {
            // A failed correction is retried after the backoff (backups at the next interval).
            dirty.insert(String(result.change.resource.split(separator: "/").last ?? ""))
        }
        for change in allowed {
            healthFailures["\(change.resource.split(separator: "/").last ?? "")#\(change.replica ?? 0)"] = 0
        }
    }

    /// Backoff and budget for a drift correction of `service`. Records the correction when it
    /// may go ahead.
    enum Correction { case now, later, never }

    private func mayCorrect(_ service: String, change: Change, now: Date) throws -> Correction {
        let spec = desired.services[service]
        let window = corrections[service, default: []].filter { now.timeIntervalSince($0) < 3600 }
        corrections[service] = window
        if window.count >= options.budget {
            if !budgetAlerted.contains(service) {
                budgetAlerted.insert(service)
                try audit.append(AuditRecord(
                    kind: .alert, release: release, resource: change.resource, action: "self-heal-budget",
                    reason: "\(window.count) corrective actions in the last hour reached the budget of \(options.budget); "
                        + "Stet stops correcting \(change.resource) until the hour has passed or a release changes it",
                    outcome: .failed))
                try ResourceStatus.update(change.resource, in: store) {
                    $0.budgetExhausted = true
                    $0.correctionsLastHour = window.count
                }
                log("self-heal budget of \(change.resource) exhausted")
                monitors?.selfAlert(
                    "StetSelfHealBudgetExhausted", summary: "stet stopped correcting \(change.resource) after \(window.count) corrections in an hour",
                    desired: desired)
            }
            return .never
        }
        budgetAlerted.remove(service)
        var state = backoff[service, default: Backoff()]
        if now < state.until { return .later }
        let initial = spec?.backoffInitial.seconds ?? 0.5
        let maximum = spec?.backoffMax.seconds ?? 60
        // Drift soon after the last correction means the correction did not hold: back off more.
        state.attempts = now.timeIntervalSince(state.last) < max(maximum, 10) ? state.attempts + 1 : 1
        let delay = min(maximum, initial * pow(2, Double(state.attempts - 1)))
        state.last = now
        state.until = now.addingTimeInterval(delay)
        backoff[service] = state
        corrections[service, default: []].append(now)
        try ResourceStatus.update(change.resource, in: store) {
            $0.backoffUntil = state.until
            $0.backoffSeconds = delay
            $0.correctionsLastHour = window.count + 1
            $0.budgetExhausted = false
        }
        return .now
    }

    // MARK: - Events

    /// Records how replicas that ended ended (reaping this process's own children), and returns
    /// their services.
    private func reapExited() throws -> Set<String> {
        var ended: Set<String> = []
        for records in try provider.records().values {
            for var record in records.values where record.exitedAt == nil {
                guard !ProcessTable.isAlive(record.pid, startTime: record.startTime) else { continue }
                record.lastExit = ProcessTable.reap(record.pid) ?? "exited"
                record.exitedAt = Date()
                try provider.save(record)
                ended.insert(record.service)
            }
        }
        return ended
    }

    /// One pidfd per running replica; replicas that ended lose theirs.
    private func syncWatchers() {
        let records: [String: [Int: ReplicaProvider.Record]]
        do {
            records = try provider.records()
        } catch {
            log("cannot read the replica records: \(error)")
            return
        }
        var wanted: Set<String> = []
        for (service, byIndex) in records {
            for (index, record) in byIndex {
                guard ProcessTable.isAlive(record.pid, startTime: record.startTime) else {
                    // Ended since the last pass (before a watcher could see it): look again.
                    if record.exitedAt == nil { dirty.insert(service) }
                    continue
                }
                let key = "\(service)#\(index)"
                wanted.insert(key)
                if let watcher = watchers[key], watcher.pid == record.pid { continue }
                if let old = watchers[key] { close(old.fd) }
                let fd = stet_pidfd_open(record.pid)
                // The pid may have been reused between the check and the open: check again.
                guard ProcessTable.isAlive(record.pid, startTime: record.startTime) else {
                    if fd >= 0 { close(fd) }
                    dirty.insert(service)
                    continue
                }
                guard fd >= 0 else {
                    // No pidfd (an old kernel): this replica is polled instead.
                    polled[key] = (record.pid, record.startTime, service)
                    continue
                }
                polled[key] = nil
                watchers[key] = Watcher(fd: fd, pid: record.pid, service: service, index: index)
                if let health = desired.services[service]?.health, healthDue[key] == nil {
                    healthDue[key] = max(record.startedAt.addingTimeInterval(health.startPeriod.seconds), Date())
                }
            }
        }
        for (key, watcher) in watchers where !wanted.contains(key) {
            close(watcher.fd)
            watchers[key] = nil
            healthDue[key] = nil
        }
    }

    /// Sleeps in `poll` until a replica exits, a signal arrives, or the next thing is due.
    private func waitForEvents() {
        let now = Date()
        var due = nextReleaseCheck
        for date in healthDue.values where date < due { due = date }
        if let next = monitors?.nextDue, next < due { due = next }
        for (service, state) in backoff where state.until > now && dirtyAfterBackoff.contains(service) && state.until < due {
            due = state.until
        }
        let keys = Array(watchers.keys)
        var fds = [pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0)]
            + keys.map { pollfd(fd: watchers[$0]!.fd, events: Int16(POLLIN), revents: 0) }
        var timeout = dirty.isEmpty ? Int32(max(0, min(due.timeIntervalSince(now), 3600)) * 1000) : 0
        if !polled.isEmpty { timeout = min(timeout, 250) }
        let ready = poll(&fds, nfds_t(fds.count), timeout)
        for (key, process) in polled where !ProcessTable.isAlive(process.pid, startTime: process.startTime) {
            polled[key] = nil
            dirty.insert(process.service)
        }
        guard ready > 0 else {
            promoteBackedOff()
            return
        }
        if fds[0].revents != 0 {
            var buffer = [UInt8](repeating: 0, count: 64)
            _ = read(wake.read, &buffer, buffer.count)
        }
        for (offset, key) in keys.enumerated() where fds[offset + 1].revents != 0 {
            let watcher = watchers[key]!
            log("replica \(key) (pid \(watcher.pid)) ended")
            close(watcher.fd)
            watchers[key] = nil
            healthDue[key] = nil
            dirty.insert(watcher.service)
        }
        promoteBackedOff()
    }

    /// Replicas watched by polling `/proc`, where pidfds are not available.
    private var polled: [String: (pid: Int32, startTime: UInt64, service: String)] = [:]

    /// Services whose drift waits for a backoff to end.
    private var dirtyAfterBackoff: Set<String> = []

    private func promoteBackedOff() {
        let now = Date()
        for key in dirtyAfterBackoff where (backoff[key]?.until ?? .distantPast) <= now {
            if key.hasPrefix("BackupPolicy/") { backupsDue = true } else { dirty.insert(key) }
            dirtyAfterBackoff.remove(key)
        }
    }

    /// Runs the health checks that are due; a replica crossing its failure threshold makes its
    /// service dirty.
    private func runDueHealthChecks() {
        let now = Date()
        for (key, due) in healthDue where due <= now {
            guard let watcher = watchers[key], let service = desired.services[watcher.service], let health = service.health,
                var record = try? provider.record(watcher.service, watcher.index)
            else {
                healthDue[key] = nil
                continue
            }
            let result = provider.checks.run(
                health.check, port: record.port, timeout: health.timeout.seconds,
                environment: provider.replicaEnvironment(watcher.service, watcher.index, port: record.port, env: service.run.env))
            let failures = result.ok ? 0 : (healthFailures[key] ?? record.healthFailures) + 1
            let changed = failures != record.healthFailures || record.lastCheck == nil
            healthFailures[key] = failures
            healthDue[key] = now.addingTimeInterval(health.interval.seconds)
            if changed {
                record.healthFailures = failures
                record.lastCheck = now
                try? provider.save(record)
            }
            if failures >= health.failureThreshold { dirty.insert(watcher.service) }
        }
    }

    private func installSignalHandlers() {
        for number in [SIGTERM, SIGINT, SIGHUP] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            let write = wake.write
            source.setEventHandler { [unowned self] in
                if number != SIGHUP { self.stopping = true } else { self.nextReleaseCheck = .distantPast }
                var byte: UInt8 = 1
                _ = Glibc.write(write, &byte, 1)
            }
            source.resume()
            signalSources.append(source)
        }
    }
}

