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

/// What a change does: an action of its resource's kind (notifiers have none). Plans and audit
/// entries write it as its raw value (`start-replica`); text from outside becomes one only
/// through `init?(_:on:)`, which also requires the kind to match.
public enum ChangeAction: Hashable, Sendable, CustomStringConvertible {
    case service(ServiceAction)
    case backup(BackupAction)
    case monitor(MonitorAction)

    /// The action named `text` on a resource of `kind`, or nil.
    public init?(_ text: String, on kind: ResourceKind) {
        switch kind {
        case .service: guard let action = ServiceAction(rawValue: text) else { return nil }; self = .service(action)
        case .backupPolicy: guard let action = BackupAction(rawValue: text) else { return nil }; self = .backup(action)
        case .monitor: guard let action = MonitorAction(rawValue: text) else { return nil }; self = .monitor(action)
        case .notifier, .maintenanceWindow: return nil
        }
    }

    /// The kind of resource the action is taken on.
    public var kind: ResourceKind {
        switch self {
        case .service: .service
        case .backup: .backupPolicy
        case .monitor: .monitor
        }
    }

    public var rawValue: String {
        switch self {
        case .service(let action): action.rawValue
        case .backup(let action): action.rawValue
        case .monitor(let action): action.rawValue
        }
    }

    public var description: String { rawValue }

    /// The order of actions on one resource in a plan: their order in their kind's enum (start
    /// before replace before stop; init, backup, forget, check, restore test).
    public var rank: Int {
        switch self {
        case .service(let action): ServiceAction.allCases.firstIndex(of: action) ?? 0
        case .backup(let action): BackupAction.allCases.firstIndex(of: action) ?? 0
        case .monitor(let action): MonitorAction.allCases.firstIndex(of: action) ?? 0
        }
    }
}
