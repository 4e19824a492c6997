import Foundation
import StetCore
import StetPlanner
import StetProviders

/// Backup policies, away from the loop's thread (docs/architecture.md, principle 8). restic may need a day
/// for a backup, and a repository that does not answer costs its whole deadline: a replica's
/// exit must wait for neither. So a backup pass observes and plans the policies on a
/// `stet-backup` thread; the loop's thread decides what may go ahead (drift recorded, backoff
/// and budget, as in every pass: `Reconciler.admit`); the changes are applied on the backup
/// threads; the outcomes come back to the loop's thread. One backup pass at a time; it holds a
/// share of the state lock from its start to its end.
extension ReconcileLoop {
    /// Starts a backup pass unless one is out (the next release check looks again).
    func startBackupPass() {
        guard !backupPassRunning, !stopping else { return }
        backupPassRunning = true
        var scoped = DesiredState()
        scoped.backupPolicies = desired.backupPolicies
        // A forget deletes data: the windows of the release govern it here too.
        scoped.windows = desired.windows
        let (backups, inbox, lock, timeout) = (self.backups, self.inbox, self.stateLock, options.lockTimeout)
        let (prune, release) = (options.prune, release)
        let lastObservation = self.lastObservation
        Task(executorPreference: backupThreads) { [scoped] in
            do {
                try lock.acquire(timeout: timeout)
            } catch {
                inbox.post(.backupPlan(.failure(error)))
                return
            }
            do {
                let now = Date()
                let observed = try await backups.observe(scoped, now: now)
                lastObservation.record(backups: observed.backups)
                inbox.post(.backupPlan(.success(Planner(prune: prune).plan(desired: scoped, observed: observed, release: release, now: now))))
            } catch {
                lock.release()
                inbox.post(.backupPlan(.failure(error)))
            }
        }
    }

    /// Takes a backup pass's plan: admits what may go ahead and hands it back to the backup
    /// threads, or ends the pass.
    func takeBackupPlan(_ result: Result<Plan, any Error>) throws {
        let plan: Plan
        switch result {
        case .failure(let error):
            // Nothing held: looked at again at the next release check.
            backupPassRunning = false
            log("backup policies not looked at: \(error)")
            return
        case .success(let planned):
            plan = planned
        }
        guard !stopping else { return endBackupPass() }
        let admission: Reconciler.Admission
        do {
            admission = try reconciler.admit(plan, desired: desired, release: release, now: Date())
        } catch {
            endBackupPass()
            throw error
        }
        waiting.merge(admission.retry) { $1 }
        guard !admission.allowed.isEmpty else { return endBackupPass() }
        let (applier, progress, desired, inbox) = (applier(), progress, desired, inbox)
        Task(executorPreference: backupThreads) {
            let report: Result<Applier.Report, any Error>
            do {
                report = .success(try await Reconciler.apply(admission, of: plan, with: applier, desired: desired, progress: progress))
            } catch {
                report = .failure(error)
            }
            inbox.post(.backupsApplied(report))
        }
    }

    /// Takes what a backup pass applied, and ends the pass.
    func takeBackupReport(_ result: Result<Applier.Report, any Error>) {
        defer { endBackupPass() }
        switch result {
        case .success(let report):
            if report.failed { failedLastPass = true }
            reconciler.recordOutcomes(report, desired: desired)
            do { try reconciler.recordOverruns(report, desired: desired, release: release) } catch {
                log("cannot record a window overrun: \(error)")
            }
        case .failure(let error):
            failedLastPass = true
            log("backup pass failed: \(error)")
        }
    }

    func endBackupPass() {
        backupPassRunning = false
        stateLock.release()
    }

    /// For `--once`: takes in what the loop is told until the backup pass has ended (restic's
    /// deadlines bound it).
    func waitForBackupPass() throws {
        while backupPassRunning {
            var wake = pollfd(fd: inbox.wakeDescriptor, events: Int16(POLLIN), revents: 0)
            _ = poll(&wake, 1, 100)
            try handle(inbox.drain())
        }
    }

    /// Stops the restic processes of a backup pass still out (Stet is stopping); their actions
    /// end as failed and are recorded.
    func stopBackups() {
        Restic.stopAll()
    }
}
