public import Foundation

/// Why a change is planned.
public enum ChangeCause: String, Codable, Sendable, Comparable {
    /// The release asks for something else.
    case config
    /// The world moved away from the release.
    case drift
    /// Work that is due (a backup, a check).
    case schedule

    public static func < (lhs: ChangeCause, rhs: ChangeCause) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// What a change interrupts.
public enum Disruption: String, Codable, Sendable {
    case none, restart, data
}

/// A reason as a code for tools and a sentence for people.
public struct Reason: Codable, Hashable, Sendable {
    public var code: String
    public var message: String

    public init(_ code: String, _ message: String) {
        self.code = code
        self.message = message
    }
}

/// One change of a plan (docs/architecture.md, "Observing and planning").
///
/// Plain data: `resource` and `action` stay typed from the planner to the provider, and are
/// written as text only at the edges (the plan JSON, audit entries, the terminal).
public struct Change: Hashable, Sendable {
    /// The replica a service change is about (`Service/web#1`), or the resource of any other
    /// change (`BackupPolicy/data`).
    public var resource: ResourceID
    /// An action of the resource's kind.
    public var action: ChangeAction
    public var cause: ChangeCause
    public var reason: Reason
    public var before: [String: String]?
    public var after: [String: String]?
    public var disruption: Disruption
    /// `sha256:` of the observed facts the change was planned from.
    public var precondition: String

    public init(
        resource: ResourceID, action: ChangeAction, cause: ChangeCause, reason: Reason,
        before: [String: String]?, after: [String: String]?, disruption: Disruption, precondition: String
    ) {
        self.resource = resource
        self.action = action
        self.cause = cause
        self.reason = reason
        self.before = before
        self.after = after
        self.disruption = disruption
        self.precondition = precondition
    }

    /// Unique within a plan and stable for the same input: `Service/web#1:start-replica`.
    public var id: String { "\(resource):\(action)" }
}

/// Drift that a resource's `drift: warn` or `drift: observe` says not to correct, and resources
/// left alone (removed without `--prune`, or protected).
public struct Notice: Hashable, Sendable {
    /// The resource, or the replica of a service, the notice is about.
    public var resource: ResourceID
    /// `warn`, `observe`, or nil for a resource left alone.
    public var mode: DriftMode?
    public var reason: Reason

    public init(resource: ResourceID, mode: DriftMode?, reason: Reason) {
        self.resource = resource
        self.mode = mode
        self.reason = reason
    }
}

/// A plan (docs/architecture.md, "Plan files", a contract when saved): ordered changes from one release and
/// one observation.
public struct Plan: Hashable, Sendable {
    public typealias Release = ReleaseRef

    public static let currentFormat = 1

    public var formatVersion: Int
    public var id: String
    /// RFC 3339 UTC.
    public var createdAt: String
    /// The release the plan was made from, by version and digest (never a commit: the plan
    /// contract has none).
    public var release: ReleaseRef
    public var changes: [Change]
    public var notices: [Notice]

    public init(formatVersion: Int = currentFormat, id: String, createdAt: String, release: ReleaseRef, changes: [Change], notices: [Notice]) {
        self.formatVersion = formatVersion
        self.id = id
        self.createdAt = createdAt
        self.release = release.withoutCommit
        self.changes = changes
        self.notices = notices
    }

    /// True when any change corrects drift.
    public var hasDrift: Bool { changes.contains { $0.cause == .drift } }

    /// The form of a plan id, as the planner makes it: `plan-` and 16 lowercase hex digits.
    public static func isValidID(_ id: String) -> Bool {
        let bytes = Array(id.utf8)
        guard bytes.count == 21, id.hasPrefix("plan-") else { return false }
        return bytes.dropFirst(5).allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }
}

/// What performing one change came to.
public struct ActionOutcome: Sendable, Equatable {
    public var ok: Bool
    /// What was done, for the audit log (`started pid 4242`).
    public var detail: String
    /// What failed, exactly.
    public var error: String?

    public init(ok: Bool, detail: String, error: String? = nil) {
        self.ok = ok
        self.detail = detail
        self.error = error
    }

    public static func done(_ detail: String) -> ActionOutcome { ActionOutcome(ok: true, detail: detail) }
    public static func failed(_ error: String) -> ActionOutcome { ActionOutcome(ok: false, detail: "", error: error) }
}

/// Reads and changes one part of the world. `observe` never changes anything; `perform` is
/// idempotent (performing a change whose effect is already there succeeds) and says exactly
/// what failed.
///
/// `awaitReady` waits, after `change` was performed with success, until its effect is ready to
/// serve (a started replica passes its health check, past its start period), at most `timeout`
/// seconds (nil: the provider's own bound from the resource's settings). Nil: the change has
/// nothing to wait for (the default). Its failure says what is not ready, what the last look
/// found, and where to read more.
public protocol Provider: Sendable {
    func observe(_ desired: DesiredState, now: Date) async throws -> ObservedState
    func perform(_ change: Change, desired: DesiredState) async -> ActionOutcome
    func awaitReady(_ change: Change, desired: DesiredState, timeout: Double?) async -> ActionOutcome?
    /// Whether `perform` of `change` waits until its intent is durable (`ActionBegun.mayBegin`)
    /// before it changes anything, and so may be handed the change while the intent is synced.
    /// A provider that says no is handed the change only once its intent is durable.
    func waitsForIntent(of change: Change) -> Bool
}

extension Provider {
    public func awaitReady(_ change: Change, desired: DesiredState, timeout: Double?) async -> ActionOutcome? { nil }
    public func waitsForIntent(of change: Change) -> Bool { false }
}
