import Foundation
import StetCore
import StetCrypto
import StetPlanner
import Testing

/// The planner on fixed inputs: every cause, drift mode, pruning and protection, the order,
/// and the plan's JSON and text compared with expected files.
@Suite struct PlannerTests {
    static let now = Date(timeIntervalSince1970: 1_790_000_000)
    static let release = ReleaseRef(version: 4, digest: "sha256:" + String(repeating: "ab", count: 32))

    static func service(_ name: String, replicas: Int, command: String = "serve", drift: DriftMode = .correct, protect: Bool = false)
        -> Service
    {
        Service(
            metadata: Metadata(name: name), replicas: replicas,
            run: Service.Run(command: [command], portsStart: 9000), health: Service.Health(check: .tcp(address: nil, port: nil)),
            maxUnavailable: 1, drift: drift, protect: protect)
    }

    static func replica(_ index: Int, of service: Service, status: ObservedReplica.Status = .running,
                        health: ObservedReplica.Health = .healthy, spec: String? = nil) -> ObservedReplica
    {
        ObservedReplica(
            index: index, status: status, pid: Int32(100 + index), startTime: UInt64(5000 + index),
            specHash: spec ?? Data(service.run.specText.utf8).sha256Reference, port: 9000 + index, health: health,
            restarts: 0, lastExit: status == .exited ? "exited 137 at 10:02:11" : nil, startedAt: now)
    }

    /// The world of the expected files: one of each situation.
    static func fixture() -> (DesiredState, ObservedState) {
        var desired = DesiredState()
        let web = service("web", replicas: 3)
        let api = service("api", replicas: 2, command: "api-v2")
        let quiet = service("quiet", replicas: 1, drift: .warn)
        desired.services = ["web": web, "api": api, "quiet": quiet]
        var observed = ObservedState()
        observed.services["web"] = ObservedService(name: "web", replicas: [
            0: replica(0, of: web), 1: replica(1, of: web, status: .exited), 3: replica(3, of: web),
        ])
        observed.services["api"] = ObservedService(name: "api", replicas: [
            0: replica(0, of: api, spec: "sha256:old"), 1: replica(1, of: api, health: .unhealthy),
        ])
        observed.services["quiet"] = ObservedService(name: "quiet", replicas: [0: replica(0, of: quiet, status: .exited)])
        observed.services["old"] = ObservedService(name: "old", replicas: [0: replica(0, of: web)])
        observed.services["keep"] = ObservedService(name: "keep", replicas: [0: replica(0, of: web)], protect: true)
        // Backups: one past its RPO with a failed check, one whose repository vanished, one removed.
        func policy(_ name: String, retention: BackupPolicy.Retention = BackupPolicy.Retention(last: 2)) -> BackupPolicy {
            BackupPolicy(
                metadata: Metadata(name: name), paths: ["/srv/\(name)"], resticRepository: "/backup/\(name)", passwordFile: "/etc/pw",
                every: .seconds(3600), rpo: .seconds(7200), retention: retention, checkEvery: .seconds(86_400))
        }
        desired.backupPolicies = ["late": policy("late"), "gone": policy("gone")]
        let snapshots = (1...4).map { ObservedBackup.Snapshot(id: "s\($0)", time: now.addingTimeInterval(Double(-$0) * 10_000)) }
        observed.backups["late"] = ObservedBackup(
            name: "late", repository: .ready, snapshots: snapshots, known: true, lastBackup: now.addingTimeInterval(-10_000),
            lastCheck: ObservedBackup.Verification(at: now.addingTimeInterval(-90_000), ok: false, detail: "pack 3f2a damaged"))
        observed.backups["gone"] = ObservedBackup(name: "gone", repository: .missing, snapshots: [], known: true)
        observed.backups["retired"] = ObservedBackup(name: "retired", repository: .ready, snapshots: [], known: true)
        return (desired, observed)
    }

    static let expected = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Expected").path

    static func compare(_ actual: String, file: String) throws {
        let path = expected + "/" + file
        if ProcessInfo.processInfo.environment["STET_UPDATE_EXPECTED"] == "1" {
            try actual.write(toFile: path, atomically: true, encoding: .utf8)
        }
        let wanted = try String(contentsOfFile: path, encoding: .utf8)
        #expect(actual == wanted, "differs from \(file); STET_UPDATE_EXPECTED=1 rewrites it after review")
    }

    static func json(_ plan: Plan) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(plan), as: UTF8.self) + "\n"
    }

    @Test func planMatchesTheExpectedJSONAndText() throws {
        let (desired, observed) = Self.fixture()
        let plan = Planner(prune: true).plan(desired: desired, observed: observed, release: Self.release, now: Self.now)
        try Self.compare(try Self.json(plan), file: "plan.json")
        try Self.compare(PlanText().render(plan), file: "plan.txt")
    }

    /// The plan format is a contract: the expected plan, read and written again, is the same
    /// bytes (resources, replicas, actions and ids as text, absent fields absent).
    /// A release from git carries its commit inside Stet; a plan still names it by version and
    /// digest only, and a plan from outside that names a commit is out of form.
    /// `stet down` stops every replica and says it is on request, not that the release dropped
    /// the service; its plan id is the one planning an empty release gives.
    @Test func downStopsEveryReplicaOnRequest() throws {
        var observed = Self.fixture().1
        observed.backups = [:]
        let plan = Planner.down(observed, release: Self.release, now: Self.now)
        let empty = Planner(prune: true).plan(desired: DesiredState(), observed: observed, release: Self.release, now: Self.now)
        #expect(plan.id == empty.id && plan.changes.map(\.id) == empty.changes.map(\.id))
        #expect(plan.changes.map(\.id).contains("Service/web#3:stop-replica"))
        #expect(!plan.changes.isEmpty && plan.changes.allSatisfy { $0.reason.message == "stopped on request (`stet down`)" })
    }

    @Test func aPlanNamesItsReleaseWithoutACommit() throws {
        let (desired, observed) = Self.fixture()
        var release = Self.release
        release.commit = String(repeating: "c", count: 40)
        let plan = Planner().plan(desired: desired, observed: observed, release: release, now: Self.now)
        let json = String(decoding: try JSONEncoder().encode(plan), as: UTF8.self)
        #expect(!json.contains("commit"))
        let forged = json.replacingOccurrences(of: "\"release\":{", with: "\"release\":{\"commit\":\"\(release.commit!)\",")
        #expect(forged != json)
        #expect(throws: (any Error).self) { _ = try JSONDecoder().decode(Plan.self, from: Data(forged.utf8)) }
    }

    @Test func theExpectedPlanReadsBackToTheSameBytes() throws {
        let text = try String(contentsOfFile: Self.expected + "/plan.json", encoding: .utf8)
        let plan = try JSONDecoder().decode(Plan.self, from: Data(text.utf8))
        #expect(try Self.json(plan) == text)
        #expect(plan.changes.contains { $0.resource == ResourceID(.service, "web", replica: 1) && $0.action == .service(.startReplica) })
    }

    /// One change of each kind, and notices with and without a replica, as the plan format
    /// writes them.
    @Test func changesOfEveryKindAreWrittenAsBefore() throws {
        let reason = Reason("r", "m")
        let plan = Plan(id: "plan-0123456789abcdef", createdAt: "2026-01-01T00:00:00Z", release: Self.release, changes: [
            Change(resource: ResourceID(.service, "web", replica: 2), action: .service(.replaceReplica), cause: .drift, reason: reason,
                   before: ["spec": "a"], after: ["spec": "b"], disruption: .restart, precondition: "sha256:01"),
            Change(resource: ResourceID(.backupPolicy, "data"), action: .backup(.restoreTest), cause: .schedule, reason: reason,
                   before: nil, after: nil, disruption: .none, precondition: "sha256:02"),
            Change(resource: ResourceID(.monitor, "up"), action: .monitor(.unregisterMonitor), cause: .config, reason: reason,
                   before: nil, after: nil, disruption: .none, precondition: "sha256:03"),
        ], notices: [
            Notice(resource: ResourceID(.service, "web", replica: 0), mode: .warn, reason: reason),
            Notice(resource: ResourceID(.backupPolicy, "old"), mode: nil, reason: reason),
        ])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let json = String(decoding: try encoder.encode(plan), as: UTF8.self)
        let digest = Self.release.digest
        #expect(json == #"{"changes":[{"action":"replace-replica","after":{"spec":"b"},"before":{"spec":"a"},"cause":"drift","#
            + #""disruption":"restart","id":"Service/web#2:replace-replica","precondition":"sha256:01","reason":{"code":"r","message":"m"},"#
            + #""replica":2,"resource":"Service/web"},{"action":"restore-test","cause":"schedule","disruption":"none","#
            + #""id":"BackupPolicy/data:restore-test","precondition":"sha256:02","reason":{"code":"r","message":"m"},"#
            + #""resource":"BackupPolicy/data"},{"action":"unregister-monitor","cause":"config","disruption":"none","#
            + #""id":"Monitor/up:unregister-monitor","precondition":"sha256:03","reason":{"code":"r","message":"m"},"resource":"Monitor/up"}],"#
            + #""createdAt":"2026-01-01T00:00:00Z","formatVersion":1,"id":"plan-0123456789abcdef","#
            + #""notices":[{"mode":"warn","reason":{"code":"r","message":"m"},"replica":0,"resource":"Service/web"},"#
            + #"{"reason":{"code":"r","message":"m"},"resource":"BackupPolicy/old"}],"release":{"digest":"\#(digest)","version":4}}"#)
        #expect(try JSONDecoder().decode(Plan.self, from: Data(json.utf8)) == plan)
    }

    /// A plan whose reasons quote hostile text from outside (a repository string in a manifest,
    /// restic's or a replica's error): newlines, a heading, HTML that hides what follows or
    /// loads an image, a link with misleading text, a table cell cut by `|`.
    static func hostilePlan() -> Plan {
        let hostile = "/srv/b\n\n## Approved by security\n<img src=https://evil.example/x.png> [all good](https://evil.example) "
            + "<details><summary>x | `y` *z* &lt;\u{202E}"
        let change = Change(
            resource: ResourceID(.backupPolicy, "data"), action: .backup(.initRepository), cause: .config,
            reason: Reason("new-policy", "the repository \(hostile) does not exist yet"), before: nil, after: nil,
            disruption: .none, precondition: "sha256:00")
        let notice = Notice(resource: ResourceID(.service, "web", replica: 0), mode: .warn, reason: Reason("replica-exited", "exited\n  + start-replica fake"))
        return Plan(id: "plan-0123456789abcdef", createdAt: "2026-01-01T00:00:00Z", release: release, changes: [change], notices: [notice])
    }

    /// The text plan stays one line per change and notice: text from outside cannot add lines.
    @Test func reasonsCannotAddLinesToTheTextPlan() {
        let text = PlanText().render(Self.hostilePlan())
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(lines.count == 5, "\(text)")
        #expect(!lines.contains { $0.hasPrefix("##") || $0.hasPrefix("<") || $0.hasPrefix("  + start-replica fake") })
        #expect(text.contains(#"\n\n## Approved by security\n<img"#))
        #expect(!text.unicodeScalars.contains("\u{202E}"))
    }

    /// The markdown plan is posted to pull requests: text from outside stays inside its table
    /// cell, as text (no heading, HTML, image, link, emphasis or code that it did not have).
    @Test func reasonsCannotAddMarkupToTheMarkdownPlan() {
        let markdown = PlanMarkdown.render(Self.hostilePlan())
        let lines = markdown.split(separator: "\n", omittingEmptySubsequences: false)
        let table = lines.drop { !$0.hasPrefix("| resource |") }.prefix { !$0.isEmpty }
        #expect(table.count == 4, "\(markdown)")
        for row in table.dropFirst(2) {
            #expect(row.hasPrefix("| `") && row.hasSuffix(" |"), "\(row)")
            // Four cells: every other pipe is escaped.
            #expect(row.replacingOccurrences(of: "\\|", with: "").filter { $0 == "|" }.count == 5, "\(row)")
        }
        /// True when `markup` occurs without a backslash before it.
        func unescaped(_ markup: String) -> Bool {
            var rest = markdown[...]
            while let range = rest.range(of: markup) {
                if range.lowerBound == markdown.startIndex || markdown[markdown.index(before: range.lowerBound)] != "\\" { return true }
                rest = markdown[range.upperBound...]
            }
            return false
        }
        for markup in ["<img", "<details", "[all", "](", "*z", "`y", "&lt;"] { #expect(!unescaped(markup), "\(markup) in \(markdown)") }
        #expect(!markdown.unicodeScalars.contains("\u{202E}"))
        #expect(markdown.contains(#"\<img src=https://evil.example/x.png\> \[all good\](https://evil.example)"#), "\(markdown)")
    }

    @Test func theSameInputGivesTheSameBytes() throws {
        let (desired, observed) = Self.fixture()
        let first = try Self.json(Planner().plan(desired: desired, observed: observed, release: Self.release, now: Self.now))
        for _ in 0..<20 {
            // Dictionaries iterate in another order every run of the process; the plan must not care.
            var shuffled = observed
            shuffled.services = Dictionary(uniqueKeysWithValues: observed.services.shuffled())
            let again = try Self.json(Planner().plan(desired: desired, observed: shuffled, release: Self.release, now: Self.now))
            #expect(again == first)
        }
    }

    @Test func causesAndActionsPerSituation() {
        let (desired, observed) = Self.fixture()
        let plan = Planner(prune: true).plan(desired: desired, observed: observed, release: Self.release, now: Self.now)
        let summary = plan.changes.map { "\($0.id) \($0.cause.rawValue) \($0.reason.code)" }
        #expect(summary == [
            "BackupPolicy/gone:init-repository drift repository-missing",
            "BackupPolicy/gone:backup drift no-snapshot",
            "BackupPolicy/gone:forget schedule retention",
            "BackupPolicy/gone:check schedule check-due",
            "BackupPolicy/late:backup drift rpo-missed",
            "BackupPolicy/late:forget schedule retention",
            "BackupPolicy/late:check schedule check-due",
            "BackupPolicy/retired:remove-state config removed",
            "Service/api#0:replace-replica config spec-changed",
            "Service/api#1:replace-replica drift replica-unhealthy",
            "Service/old#0:stop-replica config removed",
            "Service/web#1:start-replica drift replica-exited",
            "Service/web#2:start-replica config replica-missing",
            "Service/web#3:stop-replica config scale-down",
        ])
        #expect(plan.changes.first { $0.id == "Service/api#0:replace-replica" }?.disruption == .restart)
        #expect(plan.notices.map { "\($0.resource.whole) \($0.mode?.rawValue ?? "-") \($0.reason.code)" } == [
            "Service/quiet warn replica-exited", "Service/keep - protected",
        ])
    }

    @Test func withoutPruneNothingIsRemoved() {
        let (desired, observed) = Self.fixture()
        let plan = Planner().plan(desired: desired, observed: observed, release: Self.release, now: Self.now)
        #expect(!plan.changes.contains { $0.resource.whole == ResourceID(.service, "old") })
        #expect(plan.notices.contains { $0.resource == ResourceID(.service, "old") && $0.reason.code == "not-in-release" })
    }

    @Test func observeModeOnlyRecordsAndAMatchingWorldIsInSync() {
        var desired = DesiredState()
        let web = Self.service("web", replicas: 2, drift: .observe)
        desired.services["web"] = web
        let observed = ObservedState(services: ["web": ObservedService(name: "web", replicas: [
            0: Self.replica(0, of: web), 1: Self.replica(1, of: web, health: .unhealthy),
        ])])
        let plan = Planner().plan(desired: desired, observed: observed, release: Self.release, now: Self.now)
        #expect(plan.changes.isEmpty)
        #expect(plan.notices.map(\.mode) == [.observe])
        #expect(!plan.hasDrift)
        var healthy = observed
        healthy.services["web"]!.replicas[1] = Self.replica(1, of: web)
        let clean = Planner().plan(desired: desired, observed: healthy, release: Self.release, now: Self.now)
        #expect(clean.changes.isEmpty && clean.notices.isEmpty)
        #expect(PlanText().render(clean).contains("No changes"))
    }

    @Test func preconditionsFollowTheObservedFacts() {
        let (desired, observed) = Self.fixture()
        let before = Planner().plan(desired: desired, observed: observed, release: Self.release, now: Self.now)
        var moved = observed
        moved.services["web"]!.replicas[1]!.pid = 999
        let after = Planner().plan(desired: desired, observed: moved, release: Self.release, now: Self.now)
        let change = { (plan: Plan) in plan.changes.first { $0.id == "Service/web#1:start-replica" }!.precondition }
        #expect(change(before) != change(after))
        #expect(before.id != after.id)
    }
}
