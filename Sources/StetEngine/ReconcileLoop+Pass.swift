import Foundation
import StetAudit
import StetCore
import StetProviders
import StetState

/// One pass of the loop: what only the host's loop does around the `Reconciler` (the state lock,
/// exits reaped, the backup pass handed out, health counts reset, the hooks told).
extension ReconcileLoop {
    /// One pass over the dirty services: observe, plan, record drift, apply what may be applied;
    /// then the watchers follow the records as the pass left them (records change only in a
    /// pass). All under the state lock and in one pass of the provider's cache
    /// (`ReplicaProvider.beginPass`): the pass and the watchers read every record, most of them
    /// unchanged in between and since the last pass, and the lock's tenure says whether another
    /// process held it since then.
    /// Every replica found dead here joins the pass, whichever service made it run: the pass
    /// records the exit, so no later look would see it as news.
    ///
    /// Backup policies are not part of it: a pass that looks at them hands them to the backup
    /// pass (`startBackupPass`), so restic never stands between a replica's exit and its
    /// correction.
    func reconcile() async throws {
        try stateLock.acquire(timeout: options.lockTimeout)
        defer { stateLock.release() }
        // Under the lock, before anything is planned: never a pass on a release older than the
        // one in force (`apply` holds the lock while it accepts and applies).
        try adoptAcceptedRelease()
        // A fleet node held meanwhile records what ended and acts on nothing; its services stay
        // dirty for the pass that may act.
        guard takeActingShare() else { return try keepExits() }
        provider.beginPass(tenure: stateLock.tenure)
        defer { provider.endPass() }
        try await pass()
        if !options.once { syncWatchers() }
    }

    private func pass() async throws {
        let passStarted = DispatchTime.now().uptimeNanoseconds
        let (onPass, lastObservation) = (self.onPass, self.lastObservation)
        defer {
            // What no replacement took over, after the pass (and before any error leaves it).
            do { try provider.saveExits() } catch { log("cannot record how replicas ended: \(error)") }
            lastObservation.passEnded()
            onPass(Double(DispatchTime.now().uptimeNanoseconds - passStarted) / 1e9)
        }
        let withBackups = backupsDue
        backupsDue = false
        let services = dirty.union(try reapExited())
        dirty = []
        if withBackups { startBackupPass() }
        // In a fleet, one self-heal budget and one backoff per service across the nodes.
        if let fleet = options.fleet { reconciler.setElsewhere(fleet.correctionsElsewhere()) }
        let outcome = try await reconciler.reconcile(
            services, monitors: withBackups, desired: try passDesired(), release: release,
            provider: PassProvider(host: host(), services: services, monitors: withBackups), now: Date())
        options.fleet?.shareCorrections(reconciler.policy.shared(now: Date()))
        waiting.merge(outcome.retry) { $1 }
        failedLastPass = outcome.failed
        for change in outcome.allowed where change.resource.kind == .service {
            health.reset(ReplicaKey(service: change.resource.name, index: change.resource.replica ?? 0))
        }
    }

    /// Records the replicas that ended, under the state lock, and acts on nothing (a fleet node
    /// that cannot prove what it owns). Their services stay dirty for the pass that follows.
    func recordExits() throws {
        try stateLock.acquire(timeout: options.lockTimeout)
        defer { stateLock.release() }
        try keepExits()
    }

    /// What `recordExits` does once the state lock is held.
    private func keepExits() throws {
        dirty.formUnion(try reapExited())
        try provider.saveExits()
    }

    /// What this pass makes true: the desired state, except in a fleet's first pass after its
    /// share changed, which only stops what is no longer this node's (it starts nothing: a
    /// returning node gives back before it takes). The pass after it starts the rest.
    private func passDesired() throws -> DesiredState {
        guard options.fleet != nil, stopBeforeStart, var assigned = desired.assignedReplicas else { return desired }
        stopBeforeStart = false
        let running = try provider.records()
        for name in desired.services.keys {
            let mine = Set(running[name]?.values.filter { $0.exitedAt == nil }.map(\.index) ?? [])
            assigned[name] = assigned[name, default: []].intersection(mine)
        }
        guard assigned != desired.assignedReplicas else { return desired }
        var stopsOnly = desired
        stopsOnly.assignedReplicas = assigned
        dirty.formUnion(desired.services.keys)
        return stopsOnly
    }

    /// Every provider of this host, as the loop's passes use them.
    func host() -> HostProvider { HostProvider(replicas: provider, backups: backups, monitors: monitors.registry) }

    /// The applier of the backup passes, with the loop's providers.
    func applier() -> Applier { Applier(provider: host(), audit: audit, store: store, release: release) }

    /// Tells the hooks about each action as it ends (called on the thread that applies).
    var progress: @Sendable (Applier.Result) -> Void { Self.progress(hooks) }

    static func progress(_ hooks: Hooks) -> @Sendable (Applier.Result) -> Void {
        { result in
            hooks.onAction(result.change, result.outcome)
            hooks.log("\(result.outcome.ok ? "ok" : "failed")  \(result.change.id)  \(result.outcome.ok ? result.outcome.detail : result.outcome.error ?? "")")
        }
    }

    /// Notes how replicas that ended ended (reaping this process's own children), and returns
    /// their services. Written after the pass (`ReplicaProvider.saveExits`), unless a
    /// replacement's record carries the exit first: nothing is written between an exit and the
    /// intent of its correction.
    func reapExited() throws -> Set<String> {
        var ended: Set<String> = []
        for records in try provider.records().values {
            for var record in records.values where record.exitedAt == nil {
                guard !watchers.isAlive(record) else { continue }
                record.lastExit = ProcessTable.reap(record.pid) ?? "exited"
                record.exitedAt = Date()
                provider.noteExit(record)
                ended.insert(record.service)
            }
        }
        return ended
    }
}

/// The host as the loop's service pass observes it: the replicas of the pass's services (the
/// reconciler looks at no others), the registered monitors only in the passes that look at them
/// (those after a release check). Backup policies are the backup pass's, and observing them
/// could wait on restic. Changes go to every provider.
struct PassProvider: Provider {
    let host: HostProvider
    let services: Set<String>
    let monitors: Bool

    func observe(_ desired: DesiredState, now: Date) async throws -> ObservedState {
        var observed = try host.replicas.observe(desired, only: services, now: now)
        if monitors { observed.monitors = try await host.monitors.observe(desired, now: now).monitors }
        return observed
    }

    func perform(_ change: Change, desired: DesiredState) async -> ActionOutcome { await host.perform(change, desired: desired) }

    func waitsForIntent(of change: Change) -> Bool { host.waitsForIntent(of: change) }
}
