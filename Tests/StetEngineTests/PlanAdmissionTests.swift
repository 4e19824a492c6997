import Foundation
import StetAudit
import StetCore
import StetCrypto
import StetEngine
import StetPlanner
import StetState
import StetTesting
import Testing

/// Admitting a saved plan (`PlanFile.read` and `PlanFile.admit`): the signer, the release, single
/// use and every precondition, decided from what the plan carries and what is observed, never
/// from a change's reason.
@Suite struct PlanAdmissionTests {
    let state = TemporaryDirectory("stet-admission")
    let key: PrivateKey
    let trust: AuditTrust
    static let release = ReleaseRef(version: 4, digest: "sha256:" + String(repeating: "ab", count: 32))
    static let web = Service(metadata: Metadata(name: "web"), replicas: 1, run: Service.Run(command: ["v1"]))

    init() throws {
        key = try PrivateKey.generate()
        trust = AuditTrust([(name: "ci", publicKey: key.publicKey)])
    }

    var store: FileStateStore { FileStateStore(root: state.path) }

    static var desired: DesiredState {
        var desired = DesiredState()
        desired.services["web"] = web
        return desired
    }

    /// Replica 0 of web, running `spec` with `health`.
    static func observed(pid: Int32 = 42, spec: String = Data(web.run.specText.utf8).sha256Reference, health: ObservedReplica.Health)
        -> ObservedState
    {
        let replica = ObservedReplica(
            index: 0, status: .running, pid: pid, startTime: 7, specHash: spec, port: nil, health: health, restarts: 0, lastExit: nil,
            startedAt: Date(timeIntervalSince1970: 0))
        return ObservedState(services: ["web": ObservedService(name: "web", replicas: [0: replica])])
    }

    /// The plan of `observed`, saved signed, with every reason replaced by other words, read back.
    func saved(_ observed: ObservedState) throws -> Plan {
        var plan = Planner().plan(desired: Self.desired, observed: observed, release: Self.release, now: Date())
        plan.changes = plan.changes.map { change in
            var reworded = change
            reworded.reason = Reason("reworded", "an explanation in other words")
            return reworded
        }
        return try PlanFile.read(try PlanFile.sign(plan, with: key), source: "plan.json", trust: trust)
    }

    func isStale(
        _ plan: Plan, release: ReleaseRef = release, _ observed: ObservedState, desired: DesiredState = desired, now: Date = Date()
    ) -> Bool {
        do {
            try PlanFile.admit(plan, release: release, store: store, observed: observed, desired: desired, now: now)
            return false
        } catch {
            return error is PlanFile.Stale
        }
    }

    /// An unhealthy replica's replacement depends on its health, and says so in its
    /// precondition: whatever its reason says, it is admitted while the replica is unhealthy and
    /// stale once it is healthy again (or another process).
    @Test func aReplacementForHealthHoldsOnlyWhileTheReplicaIsUnhealthy() throws {
        let plan = try saved(Self.observed(health: .unhealthy))
        #expect(plan.changes.map(\.action.description) == ["replace-replica"])
        #expect(!isStale(plan, Self.observed(health: .unhealthy)))
        #expect(isStale(plan, Self.observed(health: .healthy)))
        #expect(isStale(plan, Self.observed(pid: 43, health: .unhealthy)))
    }

    /// A replacement for a new spec does not depend on health: it stays admitted when the
    /// replica's health changes, and is stale when the replica does.
    @Test func aReplacementForASpecDoesNotDependOnHealth() throws {
        let plan = try saved(Self.observed(spec: "sha256:old", health: .healthy))
        #expect(plan.changes.map(\.action.description) == ["replace-replica"])
        #expect(!isStale(plan, Self.observed(spec: "sha256:old", health: .unhealthy)))
        #expect(isStale(plan, Self.observed(pid: 43, spec: "sha256:old", health: .healthy)))
    }

    /// A plan saved while a maintenance window is open cannot be applied after it closes.
    @Test func aPlanSavedInAWindowIsStaleOnceTheWindowCloses() throws {
        let observed = Self.observed(spec: "sha256:old", health: .healthy)
        let plan = try saved(observed)
        #expect(plan.changes.map(\.action.rawValue) == ["replace-replica"])
        var desired = Self.desired
        let now = Date()
        let minute = Calendar(identifier: .gregorian).component(.minute, from: now)
        // Open for the hour around now; closed when it is two hours later.
        desired.windows["hour"] = MaintenanceWindow(
            metadata: Metadata(name: "hour"), schedule: try CronSchedule(parsing: "\(minute) * * * *"), duration: .seconds(1800))
        #expect(!isStale(plan, observed, desired: desired, now: now.addingTimeInterval(30)))
        #expect(isStale(plan, observed, desired: desired, now: now.addingTimeInterval(40 * 60)))
        // A signed plan that calls the replacement a correction that disrupts nothing is judged by
        // what the change is, not by what it says.
        var forged = plan
        forged.changes = forged.changes.map { change in
            var relabelled = change
            relabelled.cause = .drift
            relabelled.disruption = .none
            return relabelled
        }
        #expect(isStale(forged, observed, desired: desired, now: now.addingTimeInterval(40 * 60)))
    }

    @Test func aPlanIsForItsReleaseAndSingleUse() throws {
        let observed = Self.observed(health: .unhealthy)
        let plan = try saved(observed)
        #expect(isStale(plan, release: ReleaseRef(version: 5, digest: "sha256:" + String(repeating: "cd", count: 32)), observed))
        // The commit a release came from is not part of what a plan names.
        var fromGit = Self.release
        fromGit.commit = "0123456789abcdef0123456789abcdef01234567"
        #expect(!isStale(plan, release: fromGit, observed))
        try PlanFile.markApplied(plan, in: store, now: Date())
        #expect(isStale(plan, observed))
    }

    @Test func aPlanSignedByAnotherKeyIsRefused() throws {
        let plan = Planner().plan(desired: Self.desired, observed: Self.observed(health: .unhealthy), release: Self.release, now: Date())
        let stranger = try PrivateKey.generate()
        #expect(throws: PlanFile.Refused.self) {
            _ = try PlanFile.read(try PlanFile.sign(plan, with: stranger), source: "plan.json", trust: trust)
        }
    }
}
