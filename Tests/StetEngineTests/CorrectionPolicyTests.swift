import Foundation
import StetCore
import StetEngine
import Testing

/// The correction policy's rules, one table row per situation, on fixed dates: each step is a
/// time (seconds after t0), what happened, and what the policy must decide.
@Suite struct CorrectionPolicyTests {
    static let t0 = Date(timeIntervalSince1970: 1_790_000_000)
    /// `restart.backoff: {initial: 1s, max: 8s}`: a quiet period is then 10 s (at least 10 s).
    static let backoff = CorrectionPolicy.Backoff(initial: 1, maximum: 8)

    enum Event: Sendable {
        /// Drift of `web` (one change), or of `count` replicas of `web` in one pass.
        case drift, drifts(Int)
        /// Drift of another service.
        case driftOfAPI
        case config, schedule
        /// A change of `web` failed.
        case failure
    }

    /// A decision, with dates as seconds after t0.
    enum Seen: Equatable, Sendable, CustomStringConvertible {
        case apply
        case correct(seconds: Double, inHour: Int)
        /// A further change of a resource corrected in the same pass.
        case correctToo
        case after(Double)
        case spent(Int, first: Bool)
        case retryWithin(Double)
        case retryBackedOff(Double, seconds: Double)
        /// A correction whose step does not end its length after now.
        case stepNotFromNow

        var description: String {
            switch self {
            case .apply: "apply"
            case .correct(let seconds, let hour): "correct (backoff \(seconds) s, \(hour) in the hour)"
            case .correctToo: "correct too"
            case .after(let at): "after t+\(at)"
            case .spent(let count, let first): "budget spent at \(count)\(first ? ", alerted" : "")"
            case .retryWithin(let at): "retry at t+\(at), the backoff in force"
            case .retryBackedOff(let at, let seconds): "retry at t+\(at), a new step of \(seconds) s"
            case .stepNotFromNow: "a step that does not start now"
            }
        }
    }

    struct Case: Sendable, CustomTestStringConvertible {
        let name: String
        var budget = 10
        let steps: [(at: Double, event: Event, expect: [Seen])]
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "the first correction is immediate", steps: [
            (0, .drift, [.correct(seconds: 1, inHour: 1)]),
        ]),
        Case(name: "corrections soon after the last double the backoff up to its maximum", steps: [
            (0, .drift, [.correct(seconds: 1, inHour: 1)]),
            (1, .drift, [.correct(seconds: 2, inHour: 2)]),
            (3, .drift, [.correct(seconds: 4, inHour: 3)]),
            (7, .drift, [.correct(seconds: 8, inHour: 4)]),
            (15, .drift, [.correct(seconds: 8, inHour: 5)]),
            (23, .drift, [.correct(seconds: 8, inHour: 6)]),
        ]),
        Case(name: "drift while backing off waits for the backoff's end", steps: [
            (0, .drift, [.correct(seconds: 1, inHour: 1)]),
            (0.5, .drift, [.after(1)]),
            (0.9, .drifts(2), [.after(1), .after(1)]),
            (1, .drift, [.correct(seconds: 2, inHour: 2)]),
        ]),
        Case(name: "a quiet period starts the backoff over", steps: [
            (0, .drift, [.correct(seconds: 1, inHour: 1)]),
            (1, .drift, [.correct(seconds: 2, inHour: 2)]),
            (3, .drift, [.correct(seconds: 4, inHour: 3)]),
            (12.9, .drift, [.correct(seconds: 8, inHour: 4)]),
            (22.9, .drift, [.correct(seconds: 1, inHour: 5)]),
        ]),
        Case(name: "each resource backs off on its own", steps: [
            (0, .drift, [.correct(seconds: 1, inHour: 1)]),
            (0.5, .driftOfAPI, [.correct(seconds: 1, inHour: 1)]),
            (0.6, .drift, [.after(1)]),
        ]),
        Case(name: "the budget is spent at N corrections in an hour, and alerted once", budget: 3, steps: [
            (0, .drift, [.correct(seconds: 1, inHour: 1)]),
            (100, .drift, [.correct(seconds: 1, inHour: 2)]),
            (200, .drift, [.correct(seconds: 1, inHour: 3)]),
            (300, .drift, [.spent(3, first: true)]),
            (400, .drifts(2), [.spent(3, first: false), .spent(3, first: false)]),
        ]),
        Case(name: "the budget recovers as old corrections leave the hour", budget: 3, steps: [
            (0, .drift, [.correct(seconds: 1, inHour: 1)]),
            (100, .drift, [.correct(seconds: 1, inHour: 2)]),
            (200, .drift, [.correct(seconds: 1, inHour: 3)]),
            (3599, .drift, [.spent(3, first: true)]),
            (3600, .drift, [.correct(seconds: 1, inHour: 3)]),
            (3650, .drift, [.spent(3, first: true)]),
            (3700, .drift, [.correct(seconds: 1, inHour: 3)]),
        ]),
        Case(name: "replicas of one pass follow one decision, and each counts", budget: 3, steps: [
            (0, .drifts(2), [.correct(seconds: 1, inHour: 1), .correctToo]),
            (100, .drifts(2), [.correct(seconds: 1, inHour: 3), .correctToo]),
            (200, .drift, [.spent(4, first: true)]),
        ]),
        Case(name: "changes the release asks for and due work are never held back nor counted", budget: 1, steps: [
            (0, .drift, [.correct(seconds: 1, inHour: 1)]),
            (0.5, .config, [.apply]),
            (0.6, .schedule, [.apply]),
            (100, .drift, [.spent(1, first: true)]),
            (100, .config, [.apply]),
        ]),
        Case(name: "a failed change waits for the backoff in force, or starts its next step", steps: [
            (0, .drift, [.correct(seconds: 1, inHour: 1)]),
            (0, .failure, [.retryWithin(1)]),
            (5, .failure, [.retryBackedOff(7, seconds: 2)]),
            (6, .drift, [.after(7)]),
            (7, .drift, [.correct(seconds: 4, inHour: 2)]),
        ]),
        Case(name: "failed changes back off but do not count in the budget", budget: 1, steps: [
            (0, .config, [.apply]),
            (0, .failure, [.retryBackedOff(1, seconds: 1)]),
            (2, .failure, [.retryBackedOff(4, seconds: 2)]),
            (5, .drift, [.correct(seconds: 4, inHour: 1)]),
        ]),
    ]

    @Test(arguments: cases)
    func decides(_ table: Case) {
        var policy = CorrectionPolicy(budget: table.budget)
        for (at, event, expected) in table.steps {
            let now = Self.t0.addingTimeInterval(at)
            let seen: [Seen]
            switch event {
            case .failure:
                seen = [Self.seen(policy.recordFailure(of: ResourceID(.service, "web"), backoff: Self.backoff, now: now))]
            case .drift, .drifts, .driftOfAPI, .config, .schedule:
                seen = policy.decide(Self.requests(event), now: now).map { Self.seen($0, now: now) }
            }
            #expect(seen == expected, "at t+\(at), \(event)")
        }
    }

    static func requests(_ event: Event) -> [CorrectionPolicy.Request] {
        switch event {
        case .drift: [CorrectionPolicy.Request(key: ResourceID(.service, "web"), cause: .drift, backoff: backoff)]
        case .drifts(let count): Array(repeating: CorrectionPolicy.Request(key: ResourceID(.service, "web"), cause: .drift, backoff: backoff), count: count)
        case .driftOfAPI: [CorrectionPolicy.Request(key: ResourceID(.service, "api"), cause: .drift, backoff: backoff)]
        case .config: [CorrectionPolicy.Request(key: ResourceID(.service, "web"), cause: .config, backoff: backoff)]
        case .schedule: [CorrectionPolicy.Request(key: ResourceID(.service, "web"), cause: .schedule, backoff: backoff)]
        case .failure: []
        }
    }

    static func seen(_ decision: CorrectionPolicy.Decision, now: Date) -> Seen {
        switch decision {
        case .apply: .apply
        case .correct(let correction?):
            // A step starts now and lasts its length.
            correction.until == now.addingTimeInterval(correction.seconds)
                ? .correct(seconds: correction.seconds, inHour: correction.inLastHour) : .stepNotFromNow
        case .correct(nil): .correctToo
        case .after(let date): .after(date.timeIntervalSince(t0))
        case .budgetSpent(let count, let first): .spent(count, first: first)
        }
    }

    static func seen(_ retry: CorrectionPolicy.Retry) -> Seen {
        switch retry {
        case .backingOff(let until): .retryWithin(until.timeIntervalSince(t0))
        case .backedOff(let until, let seconds): .retryBackedOff(until.timeIntervalSince(t0), seconds: seconds)
        }
    }

    /// A resource whose actions fail three times running is alerted on once per run of failures.
    @Test func threeFailuresRunningAreAlertedOnce() {
        var policy = CorrectionPolicy(budget: 10)
        let outcomes = [false, false, false, false, false, true, false, false, false]
        let alerts = outcomes.map { policy.recordOutcome(of: ResourceID(.service, "web"), ok: $0) }
        #expect(alerts == [false, false, true, false, false, false, false, false, true])
        let other = policy.recordOutcome(of: ResourceID(.service, "api"), ok: false)
        #expect(!other)
    }

    /// `restart.backoff` of a service, the defaults for anything else.
    @Test func theBackoffComesFromTheService() {
        let service = Service(
            metadata: Metadata(name: "web"), replicas: 1, run: Service.Run(command: ["serve"]),
            backoffInitial: StetDuration(seconds: 0.25), backoffMax: StetDuration(seconds: 4))
        #expect(CorrectionPolicy.Backoff(service) == CorrectionPolicy.Backoff(initial: 0.25, maximum: 4))
        #expect(CorrectionPolicy.Backoff(nil) == CorrectionPolicy.Backoff(initial: 0.5, maximum: 60))
    }

    /// In a fleet: corrections made on other nodes count against this node's budget, a backoff
    /// kept elsewhere holds here too, and what this node shares is what it spent within the hour.
    @Test func correctionsElsewhereInTheFleetCount() {
        let web = ResourceID(.service, "web")
        let request = CorrectionPolicy.Request(key: web, cause: .drift, backoff: Self.backoff)
        var policy = CorrectionPolicy(budget: 3)
        // Two corrections elsewhere within the hour, one older than the hour.
        policy.elsewhere[web] = CorrectionPolicy.Elsewhere(
            corrections: [Self.t0.addingTimeInterval(-4000), Self.t0.addingTimeInterval(-60), Self.t0.addingTimeInterval(-30)])
        guard case .correct(let correction) = policy.decide(request, now: Self.t0) else {
            Issue.record("the first correction should go ahead")
            return
        }
        #expect(correction?.inLastHour == 3)
        #expect(policy.decide(request, now: Self.t0.addingTimeInterval(20)) == .budgetSpent(corrections: 3, first: true))
        #expect(policy.shared(now: Self.t0.addingTimeInterval(20))[web]?.corrections == [Self.t0])
        // A backoff kept elsewhere holds a resource that has spent nothing here.
        var other = CorrectionPolicy(budget: 10)
        let until = Self.t0.addingTimeInterval(5)
        other.elsewhere[web] = CorrectionPolicy.Elsewhere(corrections: [], until: until)
        #expect(other.decide(request, now: Self.t0) == .after(until))
        guard case .correct = other.decide(request, now: until.addingTimeInterval(0.1)) else {
            Issue.record("after the backoff elsewhere the correction should go ahead")
            return
        }
    }
}
