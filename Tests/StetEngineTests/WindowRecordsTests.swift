import Foundation
import StetAudit
import StetCore
import StetCrypto
import StetEngine
import StetPlanner
import Testing

/// What maintenance windows leave in the audit log: a change started in a window that ended after
/// it closed is an overrun (recorded, failed); one that ended in time, or that no window governed,
/// is not; a wait is recorded once until the windows change.
@Suite struct WindowRecordsTests {
    static func at(_ text: String) -> Date { ISO8601DateFormatter().date(from: text)! }

    static var desired: DesiredState {
        var desired = DesiredState()
        var web = Service(metadata: Metadata(name: "web", labels: ["team": "shop"]), replicas: 2, run: Service.Run(command: ["v2"]))
        web.maxUnavailable = 1
        desired.services["web"] = web
        desired.services["api"] = Service(metadata: Metadata(name: "api"), replicas: 1, run: Service.Run(command: ["v2"]))
        desired.windows["nightly"] = MaintenanceWindow(
            metadata: Metadata(name: "nightly"), schedule: try! CronSchedule(parsing: "0 2 * * *"), duration: .seconds(7200),
            selector: ["team": "shop"])
        return desired
    }

    static func replace(_ resource: ResourceID) -> Change {
        Change(resource: resource, action: .service(.replaceReplica), cause: .config, reason: Reason("spec-changed", "older spec"),
               before: nil, after: nil, disruption: .restart, precondition: "")
    }

    @Test func anActionThatEndsAfterItsWindowClosedIsAnOverrun() throws {
        let late = Self.replace(ResourceID(.service, "web", replica: 0))
        let inTime = Self.replace(ResourceID(.service, "web", replica: 1))
        let ungoverned = Self.replace(ResourceID(.service, "api", replica: 0))
        var report = Applier.Report()
        report.results = [
            Applier.Result(change: late, outcome: .done("replaced"), seconds: 180, endedAt: Self.at("2026-12-02T04:01:30Z")),
            Applier.Result(change: inTime, outcome: .done("replaced"), seconds: 60, endedAt: Self.at("2026-12-02T03:59:00Z")),
            Applier.Result(change: ungoverned, outcome: .done("replaced"), seconds: 60, endedAt: Self.at("2026-12-02T04:30:00Z")),
        ]
        let overruns = WindowRecords.overruns(report, desired: Self.desired)
        #expect(overruns.map(\.change.id) == [late.id])
        #expect(overruns.first?.window == "nightly")
        #expect(overruns.first?.closed == Self.at("2026-12-02T04:00:00Z"))
        let audit = MemoryAuditSink(key: try PrivateKey.generate())
        try WindowRecords.recordOverrun(try #require(overruns.first), release: .none, audit: audit)
        let entry = try #require(audit.entries.last)
        #expect(entry.kind == .window && entry.action == "overrun" && entry.outcome == .failed)
        #expect(entry.reason == "Service/web#0:replace-replica started in window nightly and ended 1m30s after it closed at 2026-12-02T04:00:00Z")
    }

    @Test func aWaitIsRecordedOnceUntilTheWindowsChange() throws {
        let desired = Self.desired
        var observed = ObservedState()
        observed.services["web"] = ObservedService(name: "web", replicas: [
            0: ObservedReplica(index: 0, status: .running, pid: 10, startTime: 1, specHash: "sha256:old", port: nil, health: .healthy,
                               restarts: 0, lastExit: nil, startedAt: Self.at("2026-12-01T00:00:00Z")),
        ])
        let audit = MemoryAuditSink(key: try PrivateKey.generate())
        var seen: Set<String> = []
        for minute in 0..<3 {
            let plan = Planner().plan(desired: desired, observed: observed, release: .none, now: Self.at("2026-12-01T20:4\(minute):00Z"))
            try WindowRecords.recordWaits(plan, release: .none, audit: audit, seen: &seen)
        }
        let waits = audit.entries.filter { $0.kind == .window }
        #expect(waits.count == 1)
        #expect(waits.first?.reason?.contains("waits for window nightly (opens 02:00 UTC, in 5h20m)") == true, "\(waits)")
    }
}
