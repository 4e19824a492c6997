import Foundation
import StetCore
@testable import StetEngine
import StetPlanner
import StetProviders
import StetState
import Testing

/// The wall clock stepped back and forward (NTP after a long drift, an operator, a virtual
/// machine resumed from a snapshot) around what Stet promises in time: an alert's `for:`, a
/// backup's RPO and schedule, backoffs and the self-heal budget's hour, and the loop's schedules.
/// Nothing is held back for the length of the step, nothing fires early, nothing traps.
@Suite struct ClockJumpTests {
    static let t0 = Date(timeIntervalSince1970: 1_790_000_000)
    static let hour = 3600.0

    /// A moment on a boot clock `seconds` after the boot's start.
    static func boot(_ seconds: Double, id: String = "boot-a") -> BootInstant {
        BootInstant(boot: id, nanoseconds: UInt64(seconds * 1e9))
    }

    // MARK: - An alert's `for:`

    /// A monitor pending for 30 s fires 30 s of real time after it began failing, whatever the
    /// wall clock does meanwhile.
    @Test func forIsMeasuredOnTheBootClock() {
        let pendingFor = StetDuration.seconds(30)
        // Stepped back an hour while pending: it still fires 30 s after the first failure.
        var back = AlertState()
        #expect(back.record(ok: false, detail: "x", durationMs: 1, at: Self.t0, boot: Self.boot(100), pendingFor: pendingFor) == .pending)
        let stepped = Self.t0.addingTimeInterval(-Self.hour)
        #expect(back.record(ok: false, detail: "x", durationMs: 1, at: stepped.addingTimeInterval(10), boot: Self.boot(110), pendingFor: pendingFor)
            == .none)
        #expect(back.record(ok: false, detail: "x", durationMs: 1, at: stepped.addingTimeInterval(30), boot: Self.boot(130), pendingFor: pendingFor)
            == .firing)
        // Stepped forward an hour: the second failure, 10 s later in real time, does not fire.
        var forward = AlertState()
        #expect(forward.record(ok: false, detail: "x", durationMs: 1, at: Self.t0, boot: Self.boot(100), pendingFor: pendingFor) == .pending)
        #expect(forward.record(
            ok: false, detail: "x", durationMs: 1, at: Self.t0.addingTimeInterval(Self.hour + 10), boot: Self.boot(110), pendingFor: pendingFor)
            == .none)
        #expect(forward.phase == .pending)
        #expect(forward.record(
            ok: false, detail: "x", durationMs: 1, at: Self.t0.addingTimeInterval(Self.hour + 30), boot: Self.boot(130), pendingFor: pendingFor)
            == .firing)
    }

    /// Pending since another boot (a reboot meanwhile), or since a state written before the
    /// boot clock was kept: counted from the first probe that can tell, never trapping.
    @Test func aRebootOrAnOldStateCountsAfresh() throws {
        let pendingFor = StetDuration.seconds(30)
        var state = AlertState()
        _ = state.record(ok: false, detail: "x", durationMs: 1, at: Self.t0, boot: Self.boot(5000), pendingFor: pendingFor)
        #expect(state.record(
            ok: false, detail: "x", durationMs: 1, at: Self.t0.addingTimeInterval(60), boot: Self.boot(40, id: "boot-b"), pendingFor: pendingFor)
            == .none)
        #expect(state.record(
            ok: false, detail: "x", durationMs: 1, at: Self.t0.addingTimeInterval(80), boot: Self.boot(60, id: "boot-b"), pendingFor: pendingFor)
            == .none)
        #expect(state.record(
            ok: false, detail: "x", durationMs: 1, at: Self.t0.addingTimeInterval(100), boot: Self.boot(70, id: "boot-b"), pendingFor: pendingFor)
            == .firing)
        // A state saved without the boot clock decodes, and falls back to the wall clock.
        var old = try JSONDecoder().decode(AlertState.self, from: Data(#"{"phase":"pending","activeAt":800000000}"#.utf8))
        #expect(old.activeSince == nil)
        #expect(old.record(ok: false, detail: "x", durationMs: 1, at: Date(timeIntervalSinceReferenceDate: 800_000_040),
                           boot: Self.boot(1), pendingFor: pendingFor) == .firing)
        // Boot instants out of order or of no known boot compare as unknown.
        #expect(Self.boot(10).seconds(since: Self.boot(20)) == nil)
        #expect(BootInstant(boot: "", nanoseconds: 5).seconds(since: BootInstant(boot: "", nanoseconds: 1)) == nil)
        #expect(Self.boot(20).seconds(since: Self.boot(10)) == 10)
        #expect(!BootInstant.currentBoot.isEmpty)
    }

    // MARK: - Backups

    static let policy = BackupPolicy(
        metadata: Metadata(name: "db"), paths: ["/srv/db"], resticRepository: "/backup/db", passwordFile: "/etc/pw",
        every: .seconds(3600), rpo: .seconds(7200), checkEvery: .seconds(86_400), restoreTestEvery: .seconds(86_400))

    func plan(_ observed: ObservedBackup, now: Date) -> Plan {
        var desired = DesiredState()
        desired.backupPolicies["db"] = Self.policy
        var world = ObservedState()
        world.backups["db"] = observed
        return Planner().plan(desired: desired, observed: world, release: ReleaseRef(version: 1, digest: "sha256:1"), now: now)
    }

    /// The clock stepped back a day: the newest snapshot, the last check and the last restore
    /// test are dated after now. None of them holds a backup, check or restore test back for a
    /// day, the plan says why, and health counts the snapshots from before the step only.
    @Test func aClockSteppedBackHoldsNoBackupBack() {
        let now = Self.t0.addingTimeInterval(-86_400)
        let observed = ObservedBackup(
            name: "db", repository: .ready,
            snapshots: [ObservedBackup.Snapshot(id: "old", time: now.addingTimeInterval(-5000)), ObservedBackup.Snapshot(id: "new", time: Self.t0)],
            known: true, lastBackup: Self.t0,
            lastCheck: ObservedBackup.Verification(at: Self.t0, ok: true, detail: "no errors"),
            lastRestoreTest: ObservedBackup.Verification(at: Self.t0, ok: true, detail: "3 files"))
        let planned = plan(observed, now: now)
        let actions = planned.changes.map(\.action)
        #expect(actions.contains(.backup(.backup)))
        #expect(actions.contains(.backup(.check)))
        #expect(actions.contains(.backup(.restoreTest)))
        #expect(planned.changes.first { $0.action == .backup(.backup) }?.reason.code == "backup-due")
        #expect(planned.notices.contains { $0.reason.code == "snapshot-in-future" && $0.reason.message.contains("1 snapshot is dated after now") })
        let health = BackupHealth.evaluate(Self.policy, observed, now: now)
        // The snapshot from before the step counts; the one from the future does not.
        #expect(health.findings.first == "newest snapshot 1h23m old (RPO 2h)")
        // Only snapshots from the future: no snapshot counts, and health says why.
        var onlyFuture = observed
        onlyFuture.snapshots = [ObservedBackup.Snapshot(id: "new", time: Self.t0)]
        #expect(plan(onlyFuture, now: now).changes.contains { $0.action == .backup(.backup) })
        #expect(BackupHealth.evaluate(Self.policy, onlyFuture, now: now).findings.first?.contains("no snapshot dated before now") == true)
        // Within the allowance for clocks (a minute) a snapshot counts as now.
        var skewed = observed
        skewed.snapshots = [ObservedBackup.Snapshot(id: "new", time: now.addingTimeInterval(30))]
        skewed.lastCheck = ObservedBackup.Verification(at: now.addingTimeInterval(30), ok: true, detail: "no errors")
        skewed.lastRestoreTest = skewed.lastCheck
        #expect(plan(skewed, now: now).changes.isEmpty)
    }

    /// The clock stepped forward past the RPO: the backup is planned as a missed RPO (drift),
    /// which is what the world now says.
    @Test func aClockSteppedForwardPastTheRPOIsAMissedRPO() {
        let observed = ObservedBackup(
            name: "db", repository: .ready, snapshots: [ObservedBackup.Snapshot(id: "s", time: Self.t0)], known: true,
            lastCheck: ObservedBackup.Verification(at: Self.t0, ok: true, detail: ""),
            lastRestoreTest: ObservedBackup.Verification(at: Self.t0, ok: true, detail: ""))
        #expect(plan(observed, now: Self.t0.addingTimeInterval(60)).changes.isEmpty)
        let late = plan(observed, now: Self.t0.addingTimeInterval(3 * Self.hour))
        #expect(late.changes.first?.reason.code == "rpo-missed")
        #expect(late.changes.first?.cause == .drift)
    }

    // MARK: - The loop's schedules

    /// A step of the wall clock is told apart from time passing, both ways, and small
    /// differences are not steps.
    @Test func theClockWatchSeesStepsOnly() {
        var watch = ClockWatch()
        #expect(watch.jump(wall: Self.t0, boot: 1_000_000_000) == nil)
        #expect(watch.jump(wall: Self.t0.addingTimeInterval(10), boot: 11_000_000_000) == nil)
        #expect(watch.jump(wall: Self.t0.addingTimeInterval(11.5), boot: 11_100_000_000) == nil)
        let back = watch.jump(wall: Self.t0.addingTimeInterval(-3600), boot: 12_100_000_000)
        #expect(back.map { abs($0 - (-3600 - 11.5 - 1)) < 0.001 } == true)
        let forward = watch.jump(wall: Self.t0.addingTimeInterval(600), boot: 13_100_000_000)
        #expect(forward.map { abs($0 - (4200 - 1)) < 0.001 } == true)
        // A boot clock that went back (another boot) is not read as a step.
        #expect(watch.jump(wall: Self.t0.addingTimeInterval(601), boot: 5) == nil)
    }

    /// A backoff and the budget's hour move with a step of the clock: stepped back an hour, a
    /// dead replica is corrected when its backoff of a second has passed, not an hour later.
    @Test func backoffsAndTheBudgetMoveWithTheClock() {
        let web = ResourceID(.service, "web")
        let request = CorrectionPolicy.Request(key: web, cause: .drift, backoff: CorrectionPolicy.Backoff(initial: 1, maximum: 4))
        var policy = CorrectionPolicy(budget: 2)
        guard case .correct = policy.decide(request, now: Self.t0) else {
            Issue.record("the first correction should go ahead")
            return
        }
        let stepped = Self.t0.addingTimeInterval(-Self.hour)
        var unshifted = policy
        // Without the shift the backoff would hold for the hour.
        #expect(unshifted.decide(request, now: stepped.addingTimeInterval(2)) == .after(Self.t0.addingTimeInterval(1)))
        policy.shift(by: -Self.hour)
        guard case .correct = policy.decide(request, now: stepped.addingTimeInterval(2)) else {
            Issue.record("after the shift the correction should go ahead once the backoff has passed")
            return
        }
        // The two corrections count within the hour after the step, as they did before it.
        #expect(policy.decide(request, now: stepped.addingTimeInterval(30)) == .budgetSpent(corrections: 2, first: true))
        #expect(policy.corrections(of: web, now: stepped.addingTimeInterval(30)) == 2)
    }

    /// Health checks stay due as far ahead in real time after a step.
    @Test func healthChecksMoveWithTheClock() throws {
        var schedule = HealthSchedule()
        let service = Service(
            metadata: Metadata(name: "web"), replicas: 1, run: Service.Run(command: ["serve"], portsStart: 18_000),
            health: Service.Health(check: .tcp(address: nil, port: nil), interval: .seconds(5)))
        let provider = ReplicaProvider(store: MemoryStateStore())
        let record = try JSONCoding.decoder.decode(ReplicaProvider.Record.self, from: Data("""
            {"service": "web", "index": 0, "pid": 4242, "startTime": 1, "specHash": "sha256:x", "port": 18000,
             "startedAt": "\(RFC3339.format(Self.t0))", "restarts": 0, "protect": false, "healthFailures": 0}
            """.utf8))
        schedule.watch(record, service: service, provider: provider, now: Self.t0)
        let due = try #require(schedule.nextDue)
        schedule.shift(by: -Self.hour)
        #expect(schedule.nextDue == due.addingTimeInterval(-Self.hour))
        schedule.shift(by: 2 * Self.hour)
        #expect(schedule.nextDue == due.addingTimeInterval(Self.hour))
    }
}
