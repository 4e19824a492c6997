import Foundation
import StetCore
import StetCrypto
import StetPlanner
import Testing

/// Maintenance windows in the planner, against an injected clock: intentional disruption waits
/// for an allow window and says until when; corrections never wait for one; a deny window holds
/// what it governs and lets it go the moment it closes (catch-up); work whose worst case would
/// outlast the open window is not started; selectors and disruption kinds say what is governed.
@Suite struct WindowGateTests {
    static func at(_ text: String) -> Date { ISO8601DateFormatter().date(from: text)! }

    static func window(_ name: String, _ schedule: String, hours: Double, mode: MaintenanceWindow.Mode = .allow,
                       selector: [String: String] = [:], disruption: Set<Disruption> = [.restart, .data]) throws -> MaintenanceWindow
    {
        MaintenanceWindow(
            metadata: Metadata(name: name), schedule: try CronSchedule(parsing: schedule),
            duration: StetDuration(milliseconds: Int64(hours * 3_600_000)), mode: mode, selector: selector, disruption: disruption)
    }

    /// `web` (label team=shop): replica 0 runs an older spec, replica 1 has exited, replica 2 is fine.
    static func world(_ windows: [MaintenanceWindow]) -> (DesiredState, ObservedState) {
        var web = PlannerTests.service("web", replicas: 3)
        web.metadata.labels = ["team": "shop"]
        var desired = DesiredState()
        desired.services = ["web": web]
        for window in windows { desired.windows[window.name] = window }
        var observed = ObservedState()
        observed.services["web"] = ObservedService(name: "web", replicas: [
            0: PlannerTests.replica(0, of: web, spec: "sha256:old"),
            1: PlannerTests.replica(1, of: web, status: .exited),
            2: PlannerTests.replica(2, of: web),
        ])
        return (desired, observed)
    }

    static func plan(_ windows: [MaintenanceWindow], at now: String) -> Plan {
        let (desired, observed) = world(windows)
        return Planner().plan(desired: desired, observed: observed, release: PlannerTests.release, now: at(now))
    }

    @Test func aNewSpecWaitsForTheWindowAndACorrectionDoesNot() throws {
        let nightly = try Self.window("nightly", "0 2 * * *", hours: 2)
        let plan = Self.plan([nightly], at: "2026-12-01T20:48:00Z")
        #expect(plan.changes.map(\.id) == ["Service/web#1:start-replica"])
        let waits = plan.notices.filter { $0.reason.code == WindowGate.waitCode }
        #expect(waits.map(\.resource.description) == ["Service/web#0"])
        #expect(waits.first?.reason.message.contains("waits for window nightly (opens 02:00 UTC, in 5h12m)") == true)
        #expect(PlanText().render(plan).contains("  ! web#0 waits: replace-replica (config: replica 0 of 3 runs an older spec) waits for window nightly"))
    }

    @Test func insideTheWindowTheChangeRunsAndSaysWhichWindow() throws {
        let nightly = try Self.window("nightly", "0 2 * * *", hours: 2)
        let plan = Self.plan([nightly], at: "2026-12-02T02:10:00Z")
        #expect(plan.changes.map(\.id) == ["Service/web#1:start-replica", "Service/web#0:replace-replica"])
        #expect(plan.changes.last?.reason.message == "replica 0 of 3 runs an older spec (in window nightly until 04:00 UTC)")
        #expect(plan.notices.isEmpty)
    }

    @Test func workThatWouldOverrunTheWindowIsNotStarted() throws {
        // Replacing takes up to stopTimeout 10s + 3 checks of 10s + a 2s timeout = 42s.
        let nightly = try Self.window("nightly", "0 2 * * *", hours: 2)
        let late = Self.plan([nightly], at: "2026-12-02T03:59:30Z")
        #expect(late.changes.map(\.id) == ["Service/web#1:start-replica"])
        let message = try #require(late.notices.first?.reason.message)
        #expect(message.contains("would not finish before window nightly closes at 04:00 UTC (takes up to 42s)"), "\(message)")
        #expect(message.contains("waits for window nightly (opens 02:00 UTC, in 22h)"), "\(message)")
        let inTime = Self.plan([nightly], at: "2026-12-02T03:59:00Z")
        #expect(inTime.changes.count == 2)
    }

    @Test func aDenyWindowHoldsEvenCorrectionsWhenItSaysSoAndCatchUpFollows() throws {
        let freeze = try Self.window("freeze", "0 12 * * *", hours: 1, mode: .deny, disruption: [.none, .restart, .data])
        let held = Self.plan([freeze], at: "2026-12-01T12:30:00Z")
        #expect(held.changes.isEmpty)
        #expect(held.notices.count == 2)
        #expect(held.notices.allSatisfy { $0.reason.message.contains("held by deny window freeze until 13:00 UTC") })
        // The moment it closes, everything held runs.
        let after = Self.plan([freeze], at: "2026-12-01T13:00:00Z")
        #expect(after.changes.map(\.id) == ["Service/web#1:start-replica", "Service/web#0:replace-replica"])
        // A deny window that governs only disruption holds the replacement, not the restart of a dead replica.
        let restartOnly = try Self.window("freeze", "0 12 * * *", hours: 1, mode: .deny)
        #expect(Self.plan([restartOnly], at: "2026-12-01T12:30:00Z").changes.map(\.id) == ["Service/web#1:start-replica"])
        // A replacement that would still run when the deny window opens waits until it has closed.
        let soon = Self.plan([restartOnly], at: "2026-12-01T11:59:40Z")
        #expect(soon.notices.first?.reason.message.contains("would still run when deny window freeze opens at 12:00 UTC") == true)
    }

    @Test func selectorsAndDisruptionKindsSayWhatIsGoverned() throws {
        let otherTeam = try Self.window("nightly", "0 2 * * *", hours: 2, selector: ["team": "data"])
        #expect(Self.plan([otherTeam], at: "2026-12-01T20:48:00Z").changes.count == 2)
        let ourTeam = try Self.window("nightly", "0 2 * * *", hours: 2, selector: ["team": "shop"])
        #expect(Self.plan([ourTeam], at: "2026-12-01T20:48:00Z").changes.count == 1)
        let dataOnly = try Self.window("nightly", "0 2 * * *", hours: 2, disruption: [.data])
        #expect(Self.plan([dataOnly], at: "2026-12-01T20:48:00Z").changes.count == 2)
    }

    @Test func aForgetWaitsButTheBackupRuns() throws {
        var desired = DesiredState()
        desired.windows["nightly"] = try Self.window("nightly", "0 2 * * *", hours: 2)
        desired.backupPolicies["db"] = BackupPolicy(
            metadata: Metadata(name: "db"), paths: ["/srv/db"], resticRepository: "/backup/db", passwordFile: "/etc/pw",
            every: .seconds(3600), rpo: .seconds(7200), retention: BackupPolicy.Retention(last: 2))
        let now = Self.at("2026-12-01T20:48:00Z")
        var observed = ObservedState()
        observed.backups["db"] = ObservedBackup(
            name: "db", repository: .ready,
            snapshots: (1...3).map { ObservedBackup.Snapshot(id: "s\($0)", time: now.addingTimeInterval(Double(-$0) * 4000)) },
            known: true, lastBackup: now.addingTimeInterval(-4000))
        let plan = Planner().plan(desired: desired, observed: observed, release: PlannerTests.release, now: now)
        #expect(plan.changes.map(\.id) == ["BackupPolicy/db:backup"])
        #expect(plan.notices.map(\.reason.code) == [WindowGate.waitCode])
    }

    @Test func theNextTransitionIsWhenWaitingWorkMayStart() throws {
        let gate = WindowGate({
            var desired = DesiredState()
            desired.windows["nightly"] = try! Self.window("nightly", "0 2 * * *", hours: 2)
            desired.windows["freeze"] = try! Self.window("freeze", "0 12 * * *", hours: 1, mode: .deny)
            return desired
        }())
        #expect(gate.nextTransition(after: Self.at("2026-12-01T20:48:00Z")) == Self.at("2026-12-02T02:00:00Z"))
        #expect(gate.nextTransition(after: Self.at("2026-12-02T02:30:00Z")) == Self.at("2026-12-02T04:00:00Z"))
        #expect(gate.nextTransition(after: Self.at("2026-12-02T11:00:00Z")) == Self.at("2026-12-02T12:00:00Z"))
    }
}
