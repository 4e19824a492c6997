import Foundation
import StetCore
import StetPlanner
import Testing

/// The provider contract (`Provider` in StetCore), checked on every provider alike, as restic
/// checks every backend with one suite: observing changes nothing, performing a change a second
/// time is safe and says what it did, and a failed action says what failed and why.
///
/// What performing a change a second time does is decided per action (`repeats`).
@Suite struct ProviderConformance {
    /// What performing a change again right after it succeeded does.
    enum Repeat {
        /// Nothing changes, not a byte nor a process; the outcome says so with these words.
        case nothing(String)
        /// The action is done again, since doing it is its purpose (a restart, a snapshot, a
        /// verification); it succeeds, and the world stays as the release wants it (nothing to
        /// plan). The outcome holds these words.
        case again(String)
    }

    /// The decision per action.
    static let repeats: [String: Repeat] = [
        "start-replica": .nothing("already running"),
        "stop-replica": .nothing("was not running"),
        // A restart by intent (a new spec, or an unhealthy replica): a saved plan's precondition
        // and single use keep it from being repeated by accident.
        "replace-replica": .again("started"),
        "init-repository": .nothing("initialised already"),
        // Another snapshot; restic stores no data twice.
        "backup": .again("snapshot"),
        // The same rules again remove nothing more; the time it ran is recorded.
        "forget": .again("removed 0"),
        "check": .again("verified"),
        "restore-test": .again("restored and verified"),
        "remove-state": .nothing("forgot"),
        "register-monitor": .nothing("already registered"),
        "update-monitor": .nothing("already up to date"),
        "unregister-monitor": .nothing("was not registered"),
    ]

    static let now = Date()

    /// Runs `body` on a new subject of `kind`, then stops what its provider started and expects
    /// nothing of it to run any more.
    func with(_ kind: SubjectKind, _ body: (any ConformanceSubject) async throws -> Void) async throws {
        let subject = try kind.make()
        do {
            try await body(subject)
        } catch {
            subject.tearDown()
            throw error
        }
        subject.tearDown()
        #expect(subject.world().processes == [], "every process the provider started is stopped")
    }

    func plan(_ subject: any ConformanceSubject, _ desired: DesiredState) async throws -> Plan {
        let observed = try await subject.provider.observe(desired, now: Self.now)
        return Planner(prune: true).plan(desired: desired, observed: observed, release: .init(version: 1, digest: "sha256:1"), now: Self.now)
    }

    /// Performs every change the release needs, once, and expects each to succeed.
    func converge(_ subject: any ConformanceSubject, to desired: DesiredState) async throws {
        for change in try await plan(subject, desired).changes {
            let outcome = await subject.provider.perform(change, desired: desired)
            #expect(outcome.ok, "\(change.id): \(outcome.error ?? "")")
        }
        #expect(try await plan(subject, desired).changes.map(\.id) == [])
    }

    @Test(arguments: SubjectKind.allCases)
    func observingChangesNothing(_ kind: SubjectKind) async throws { try await with(kind, observingChangesNothing) }

    func observingChangesNothing(_ subject: any ConformanceSubject) async throws {
        try await expectObservingChangesNothing(subject, subject.releases[0], "before anything was done")
        for (number, desired) in subject.releases.enumerated() {
            try await converge(subject, to: desired)
            try await expectObservingChangesNothing(subject, desired, "in release \(number + 1)")
        }
    }

    /// Observes twice: the first look may fill the subject's caches and nothing else; the
    /// second writes nothing at all; both see the same.
    func expectObservingChangesNothing(_ subject: any ConformanceSubject, _ desired: DesiredState, _ when: String) async throws {
        let before = subject.world()
        let first = try await subject.provider.observe(desired, now: Self.now)
        let between = subject.world()
        let second = try await subject.provider.observe(desired, now: Self.now)
        let after = subject.world()
        #expect(between.differences(from: before, ignoring: subject.caches, exactly: true) == [], "the first observation \(when)")
        #expect(after.differences(from: between, exactly: true) == [], "the second observation \(when)")
        #expect(first == second, "the two observations \(when) saw different worlds")
    }

    @Test(arguments: SubjectKind.allCases)
    func performingAChangeAgainIsSafe(_ kind: SubjectKind) async throws { try await with(kind, performingAChangeAgainIsSafe) }

    func performingAChangeAgainIsSafe(_ subject: any ConformanceSubject) async throws {
        var seen: Set<String> = []
        for desired in subject.releases {
            let changes = try await plan(subject, desired).changes
            for change in changes {
                let first = await subject.provider.perform(change, desired: desired)
                #expect(first.ok, "\(change.id): \(first.error ?? "")")
                let before = subject.world()
                let again = await subject.provider.perform(change, desired: desired)
                let after = subject.world()
                seen.insert(change.action.description)
                switch Self.repeats[change.action.description] {
                case .nothing(let words):
                    #expect(again.ok && again.detail.contains(words), "\(change.id) again: \(again)")
                    #expect(after.differences(from: before, ignoring: subject.caches, exactly: false) == [], "\(change.id) again")
                case .again(let words):
                    #expect(again.ok && again.detail.contains(words), "\(change.id) again: \(again)")
                case nil:
                    Issue.record("no decision for performing \(change.action) again")
                }
            }
            #expect(try await plan(subject, desired).changes.map(\.id) == [], "the release is met after every change ran twice")
        }
        // The releases plan every action of the subject's kind.
        #expect(seen.count >= 3, "only \(seen.sorted()) were planned")
    }

    @Test(arguments: SubjectKind.allCases)
    func aFailedActionSaysWhatFailed(_ kind: SubjectKind) async throws { try await with(kind, aFailedActionSaysWhatFailed) }

    func aFailedActionSaysWhatFailed(_ subject: any ConformanceSubject) async throws {
        // A change of a resource the release does not hold.
        let release = subject.releases[0]
        guard let change = try await plan(subject, release).changes.first else {
            Issue.record("the first release plans nothing")
            return
        }
        let orphan = await subject.provider.perform(change, desired: DesiredState())
        #expect(!orphan.ok)
        #expect(orphan.error?.contains(change.resource.whole.description) == true && orphan.error?.contains("not in the release") == true, "\(orphan)")
        // A change that fails in the world.
        let failure = try subject.failing()
        let changes = try await plan(subject, failure.desired).changes
        try failure.breaking()
        var failed: (Change, ActionOutcome)?
        for change in changes where failed == nil {
            let outcome = await subject.provider.perform(change, desired: failure.desired)
            if !outcome.ok { failed = (change, outcome) }
        }
        guard let (change, outcome) = failed else {
            Issue.record("nothing failed among \(changes.map(\.id))")
            return
        }
        #expect(outcome.detail.isEmpty)
        #expect(outcome.error?.contains(change.resource.whole.description) == true, "the error names \(change.resource): \(outcome)")
        #expect(outcome.error?.contains(failure.cause) == true, "the error says why (\(failure.cause)): \(outcome)")
    }
}
