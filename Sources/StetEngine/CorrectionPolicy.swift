public import Foundation
public import StetCore

/// When the reconcile loop may correct drift (docs/architecture.md, "Plan, apply and the loop"): backoff per resource and a
/// self-heal budget of corrections per resource per hour. A pure value: no I/O and no clock of its
/// own (every call is told `now`), so the rules are table-tested with fixed dates. The loop
/// applies what it decides: it holds changes back, writes status files and raises alerts.
///
/// The rules:
/// - Only drift is corrected, counted and held back; a change the release asks for (`config`) or
///   work that is due (`schedule`) always goes ahead and is never counted.
/// - A resource is decided once per pass; every drift change of it in that pass follows the
///   decision, so two replicas that died together come back together (each counts in the budget).
/// - The first correction is immediate and starts a backoff of `initial`; a correction made
///   within max(`maximum`, 10 s) of the last one doubles it, up to `maximum`; after a quiet
///   period the next correction is immediate again and the backoff starts over. A resource
///   backing off is looked at again when its backoff ends.
/// - At `budget` corrections within the last hour the resource is no longer corrected (alerted
///   once) until the oldest of them leaves the hour.
/// - A failed change waits for the backoff in force, or starts the next step of it.
///
/// A success does not reset the backoff: a replica that starts and dies a second later is the
/// crash loop the backoff is for. Only a quiet period does.
public struct CorrectionPolicy: Sendable, Equatable {
    /// `restart.backoff` of a resource.
    public struct Backoff: Sendable, Equatable {
        public var initial: Double
        public var maximum: Double

        public init(initial: Double = 0.5, maximum: Double = 60) {
            self.initial = initial
            self.maximum = maximum
        }

        /// The backoff of `service`, or the default for anything else (a backup policy).
        public init(_ service: Service?) {
            self.init(initial: service?.backoffInitial.seconds ?? 0.5, maximum: service?.backoffMax.seconds ?? 60)
        }
    }

    /// A correction that goes ahead: the backoff step it starts, and the corrections of the last
    /// hour with it.
    public struct Correction: Sendable, Equatable {
        public var until: Date
        public var seconds: Double
        public var inLastHour: Int
    }

    /// What becomes of one planned change.
    public enum Decision: Sendable, Equatable {
        /// Not a correction (the release asks for it, or it is due): goes ahead, never counted.
        case apply
        /// A correction that goes ahead now, and counts. The first change of a resource in a pass
        /// carries the step it starts; the others of that pass carry nil.
        case correct(Correction?)
        /// Backing off: held back, and looked at again at that time.
        case after(Date)
        /// The budget is spent: held back. `first` is true the first time it is found spent (since
        /// a correction last went ahead), when the loop alerts.
        case budgetSpent(corrections: Int, first: Bool)
    }

    /// One planned change, as the policy sees it.
    public struct Request: Sendable, Equatable {
        /// What backoff and budget are kept by: a service's name, or another resource's id.
        public var key: ResourceID
        public var cause: ChangeCause
        public var backoff: Backoff

        public init(key: ResourceID, cause: ChangeCause, backoff: Backoff) {
            self.key = key
            self.cause = cause
            self.backoff = backoff
        }
    }

    /// When a failed change may be tried again.
    public enum Retry: Sendable, Equatable {
        /// After the backoff already in force.
        case backingOff(until: Date)
        /// After a new step of the backoff, which starts now.
        case backedOff(until: Date, seconds: Double)

        public var at: Date {
            switch self {
            case .backingOff(let until), .backedOff(let until, _): until
            }
        }
    }

    /// Corrections per resource within `window`.
    public var budget: Int
    /// The budget's sliding window: an hour.
    public static let window: Double = 3600
    /// Failed actions in a row of one resource that make the provider count as failing.
    public static let failingAfter = 3

    private struct State: Sendable, Equatable {
        var attempts = 0
        var until = Date.distantPast
        var last = Date.distantPast
        /// Corrections made, the oldest first (those older than the window are dropped on the
        /// next decision).
        var corrections: [Date] = []
        var budgetAlerted = false

        /// The next step of the backoff from `now`: the first is `initial`; each attempt soon
        /// after the last (the last one did not hold) doubles it, up to `maximum`.
        mutating func backOff(_ backoff: Backoff, now: Date) -> (until: Date, seconds: Double) {
            attempts = now.timeIntervalSince(last) < max(backoff.maximum, 10) ? attempts + 1 : 1
            let seconds = min(backoff.maximum, backoff.initial * pow(2, Double(min(attempts, 64) - 1)))
            last = now
            until = now.addingTimeInterval(seconds)
            return (until, seconds)
        }
    }

    /// In a fleet: what the other nodes spent of each resource's budget and the backoff they
    /// are in (from their published status), so a crash-looping service gets one budget and one
    /// backoff across the fleet, not one per node.
    public struct Elsewhere: Sendable, Equatable, Codable {
        /// Corrections made elsewhere, within the window.
        public var corrections: [Date]
        /// Held back elsewhere until then.
        public var until: Date?

        public init(corrections: [Date] = [], until: Date? = nil) {
            self.corrections = corrections
            self.until = until
        }
    }

    /// Set before each pass by a fleet node; empty on one host.
    public var elsewhere: [ResourceID: Elsewhere] = [:]

    /// What this policy has spent and is backing off, per resource, for the other nodes of a
    /// fleet: corrections within the window (at most `budget` of the newest) and a backoff still
    /// running at `now`.
    public func shared(now: Date) -> [ResourceID: Elsewhere] {
        var shared: [ResourceID: Elsewhere] = [:]
        for (key, state) in states {
            let recent = state.corrections.filter { now.timeIntervalSince($0) < Self.window }.suffix(max(budget, 0))
            let until = state.until > now ? state.until : nil
            if !recent.isEmpty || until != nil { shared[key] = Elsewhere(corrections: Array(recent), until: until) }
        }
        return shared
    }

    private var states: [ResourceID: State] = [:]
    /// Failed actions in a row, by resource id.
    private var failures: [ResourceID: Int] = [:]

    public init(budget: Int) { self.budget = budget }

    /// The decisions for one pass's changes, in their order.
    public mutating func decide(_ requests: [Request], now: Date) -> [Decision] {
        var decided: [ResourceID: Decision] = [:]
        return requests.map { request in
            guard request.cause == .drift else { return .apply }
            guard let earlier = decided[request.key] else {
                let decision = decideFirst(request, now: now)
                decided[request.key] = decision
                return decision
            }
            switch earlier {
            case .correct:
                states[request.key, default: State()].corrections.append(now)
                return .correct(nil)
            case .budgetSpent(let count, _):
                return .budgetSpent(corrections: count, first: false)
            case .apply, .after:
                return earlier
            }
        }
    }

    /// The decision for a single change (a pass of one).
    public mutating func decide(_ request: Request, now: Date) -> Decision { decide([request], now: now)[0] }

    /// When a failed change of `key` may be tried again, whatever its cause: a release whose
    /// command cannot start would otherwise be tried again at once, over and over.
    public mutating func recordFailure(of key: ResourceID, backoff: Backoff, now: Date) -> Retry {
        var state = states[key, default: State()]
        if state.until > now { return .backingOff(until: state.until) }
        let step = state.backOff(backoff, now: now)
        states[key] = state
        return .backedOff(until: step.until, seconds: step.seconds)
    }

    /// Counts an action's outcome for `resource`. True exactly when this failure is the
    /// `failingAfter`th in a row: the provider is failing, alerted once per run of failures.
    public mutating func recordOutcome(of resource: ResourceID, ok: Bool) -> Bool {
        guard !ok else {
            failures[resource] = 0
            return false
        }
        // Counted no further than one past the alert: a run of failures never overflows.
        let count = min((failures[resource] ?? 0) + 1, Self.failingAfter + 1)
        failures[resource] = count
        return count == Self.failingAfter
    }

    /// Corrections of `key` within the hour before `now`, here and (in a fleet) elsewhere.
    public func corrections(of key: ResourceID, now: Date) -> Int {
        (states[key]?.corrections.filter { now.timeIntervalSince($0) < Self.window }.count ?? 0)
            + (elsewhere[key]?.corrections.filter { now.timeIntervalSince($0) < Self.window }.count ?? 0)
    }

    private mutating func decideFirst(_ request: Request, now: Date) -> Decision {
        var state = states[request.key, default: State()]
        defer { states[request.key] = state }
        state.corrections.removeAll { now.timeIntervalSince($0) >= Self.window }
        let other = elsewhere[request.key]
        let count = state.corrections.count + (other?.corrections.filter { now.timeIntervalSince($0) < Self.window }.count ?? 0)
        if count >= budget {
            let first = !state.budgetAlerted
            state.budgetAlerted = true
            return .budgetSpent(corrections: count, first: first)
        }
        state.budgetAlerted = false
        if now < state.until { return .after(state.until) }
        if let until = other?.until, now < until { return .after(until) }
        let step = state.backOff(request.backoff, now: now)
        state.corrections.append(now)
        return .correct(Correction(until: step.until, seconds: step.seconds, inLastHour: count + 1))
    }
}

extension CorrectionPolicy {
    /// The wall clock jumped by `seconds` (`ClockWatch`): every backoff and every correction
    /// counted in the budget's hour moves with it, so they keep their length in real time. A
    /// clock stepped back an hour does not leave a dead replica uncorrected for an hour.
    public mutating func shift(by seconds: Double) {
        for key in Array(states.keys) {
            guard var state = states[key] else { continue }
            if state.until != .distantPast { state.until.addTimeInterval(seconds) }
            if state.last != .distantPast { state.last.addTimeInterval(seconds) }
            state.corrections = state.corrections.map { $0.addingTimeInterval(seconds) }
            states[key] = state
        }
    }
}
