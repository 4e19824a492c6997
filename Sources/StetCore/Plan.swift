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

/// The actions Stet takes on services.
public enum ServiceAction: String, Codable, Sendable, CaseIterable {
    case startReplica = "start-replica"
    case replaceReplica = "replace-replica"
    case stopReplica = "stop-replica"
}

/// The actions Stet takes on backup policies.
public enum BackupAction: String, Codable, Sendable, CaseIterable {
    case initRepository = "init-repository"
    case backup
    case forget
    case check
    case restoreTest = "restore-test"
    /// Forget Stet's own state for a policy removed from the release (`--prune`); the
    /// repository and its snapshots are never touched.
    case removeState = "remove-state"
}

/// The actions Stet takes on monitors (registering them with the reconcile loop).
public enum MonitorAction: String, Codable, Sendable, CaseIterable {
    case registerMonitor = "register-monitor"
    case updateMonitor = "update-monitor"
    case unregisterMonitor = "unregister-monitor"
}

/// One change of a plan (DESIGN.md section 6).
public struct Change: Codable, Hashable, Sendable {
    /// Unique within a plan and stable for the same input: `Service/web#1:start-replica`.
    public var id: String
    /// `Kind/name`.
    public var resource: String
    public var action: String
    /// The replica a service change is about.
    public var replica: Int?
    public var cause: ChangeCause
    public var reason: Reason
    public var before: [String: String]?
    public var after: [String: String]?
    public var disruption: Disruption
    /// `sha256:` of the observed facts the change was planned from.
    public var precondition: String

    public init(
        resource: String, action: String, replica: Int?, cause: ChangeCause, reason: Reason,
        before: [String: String]?, after: [String: String]?, disruption: Disruption, precondition: String
    ) {
        self.id = "\(resource)\(replica.map { "#\($0)" } ?? ""):\(action)"
        self.resource = resource
        self.action = action
        self.replica = replica
        self.cause = cause
        self.reason = reason
        self.before = before
        self.after = after
        self.disruption = disruption
        self.precondition = precondition
    }
}

/// Drift that a resource's `drift: warn` or `drift: observe` says not to correct, and resources
/// left alone (removed without `--prune`, or protected).
public struct Notice: Codable, Hashable, Sendable {
    public var resource: String
    public var replica: Int?
    /// `warn`, `observe`, or nil for a resource left alone.
    public var mode: DriftMode?
    public var reason: Reason

    public init(resource: String, replica: Int?, mode: DriftMode?, reason: Reason) {
        self.resource = resource
        self.replica = replica
        self.mode = mode
        self.reason = reason
    }
}

/// A plan (DESIGN.md section 7, a contract when saved): ordered changes from one release and
/// one observation.
public struct Plan: Codable, Hashable, Sendable {
    @available(*, deprecated, renamed: "ReleaseRef")
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

    /// What is out of form in a plan read from outside (a saved plan), or nil. Its id names a
    /// file in the state directory and its resources name records, so both must be in the form
    /// the planner makes before anything is done with them: the id (`isValidID`), each change's
    /// resource (`Kind/name`, a DNS label), an action of that kind, a replica index for exactly
    /// the service changes (below `Service.maximumReplicas`), and the change id they make.
    public var formProblem: String? {
        guard Self.isValidID(id) else { return "the plan id \"\(id.prefix(80))\" is not plan- and 16 hex digits" }
        guard release.commit == nil else { return "the release names a commit; a plan names its release by version and digest only" }
        for change in changes {
            let what = "change \"\(change.id.prefix(120))\""
            guard let resource = ResourceID(parsing: change.resource) else {
                return "\(what): the resource \"\(change.resource.prefix(120))\" is not Kind/name with a DNS label as the name"
            }
            let actions: [String]
            switch resource.kind {
            case .service: actions = ServiceAction.allCases.map(\.rawValue)
            case .backupPolicy: actions = BackupAction.allCases.map(\.rawValue)
            case .monitor: actions = MonitorAction.allCases.map(\.rawValue)
            case .notifier: actions = []
            }
            guard actions.contains(change.action) else { return "\(what): \"\(change.action.prefix(40))\" is not an action on \(resource.kind.rawValue)" }
            if resource.kind == .service {
                guard let replica = change.replica, (0..<Service.maximumReplicas).contains(replica) else {
                    return "\(what): a service change needs a replica from 0 to \(Service.maximumReplicas - 1)"
                }
            } else if change.replica != nil {
                return "\(what): only service changes name a replica"
            }
            let expected = Change(
                resource: change.resource, action: change.action, replica: change.replica, cause: change.cause, reason: change.reason,
                before: nil, after: nil, disruption: change.disruption, precondition: change.precondition).id
            guard change.id == expected else { return "\(what): expected the id \(expected)" }
        }
        for notice in notices {
            guard ResourceID(parsing: notice.resource) != nil, notice.replica.map({ (0..<Service.maximumReplicas).contains($0) }) ?? true else {
                return "the notice about \"\(notice.resource.prefix(120))\" does not name a resource in form"
            }
        }
        return nil
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
public protocol Provider: Sendable {
    func observe(_ desired: DesiredState, now: Date) async throws -> ObservedState
    func perform(_ change: Change, desired: DesiredState) async -> ActionOutcome
}
