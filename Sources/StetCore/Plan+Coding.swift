/// A plan's JSON (docs/architecture.md, "Plan files", a contract): `resource` is `Kind/name` and a service
/// change's replica is a field of its own; `action` and the change `id` are text. Decoding is
/// where a plan from outside (a saved plan) becomes typed, so it checks everything the types
/// cannot hold: the format version, the plan id (it names a file in the state directory),
/// each change's resource (`Kind/name`, a DNS label as the name), an action of that kind, a
/// replica for exactly the service changes (below `Service.maximumReplicas`), and the change
/// id they make. Anything else throws `PlanFormError`, which says what is out of form.
public struct PlanFormError: Error, CustomStringConvertible, Sendable {
    public let description: String

    init(_ description: String) { self.description = description }
}

extension Change: Codable {
    enum CodingKeys: String, CodingKey {
        case id, resource, action, replica, cause, reason, before, after, disruption, precondition
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let id = try container.decode(String.self, forKey: .id)
        let resourceText = try container.decode(String.self, forKey: .resource)
        let actionText = try container.decode(String.self, forKey: .action)
        let replica = try container.decodeIfPresent(Int.self, forKey: .replica)
        let what = "change \"\(id.prefix(120))\""
        guard let resource = ResourceID(parsing: resourceText), resource.replica == nil else {
            throw PlanFormError("\(what): the resource \"\(resourceText.prefix(120))\" is not Kind/name with a DNS label as the name")
        }
        guard let action = ChangeAction(actionText, on: resource.kind) else {
            throw PlanFormError("\(what): \"\(actionText.prefix(40))\" is not an action on \(resource.kind.rawValue)")
        }
        if resource.kind == .service {
            guard let replica, ResourceID.isValidReplica(replica) else {
                throw PlanFormError("\(what): a service change needs a replica from 0 to \(Service.maximumReplicas - 1)")
            }
        } else if replica != nil {
            throw PlanFormError("\(what): only service changes name a replica")
        }
        self.init(
            resource: ResourceID(resource.kind, resource.name, replica: replica), action: action,
            cause: try container.decode(ChangeCause.self, forKey: .cause), reason: try container.decode(Reason.self, forKey: .reason),
            before: try container.decodeIfPresent([String: String].self, forKey: .before),
            after: try container.decodeIfPresent([String: String].self, forKey: .after),
            disruption: try container.decode(Disruption.self, forKey: .disruption),
            precondition: try container.decode(String.self, forKey: .precondition))
        guard id == self.id else { throw PlanFormError("\(what): expected the id \(self.id)") }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(resource.whole.description, forKey: .resource)
        try container.encode(action.rawValue, forKey: .action)
        try container.encodeIfPresent(resource.replica, forKey: .replica)
        try container.encode(cause, forKey: .cause)
        try container.encode(reason, forKey: .reason)
        try container.encodeIfPresent(before, forKey: .before)
        try container.encodeIfPresent(after, forKey: .after)
        try container.encode(disruption, forKey: .disruption)
        try container.encode(precondition, forKey: .precondition)
    }
}

extension Notice: Codable {
    enum CodingKeys: String, CodingKey {
        case resource, replica, mode, reason
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let resourceText = try container.decode(String.self, forKey: .resource)
        let replica = try container.decodeIfPresent(Int.self, forKey: .replica)
        guard let parsed = ResourceID(parsing: resourceText), parsed.replica == nil,
            let resource = ResourceID(validating: parsed.kind, parsed.name, replica: replica)
        else {
            throw PlanFormError("the notice about \"\(resourceText.prefix(120))\" does not name a resource in form")
        }
        self.init(
            resource: resource, mode: try container.decodeIfPresent(DriftMode.self, forKey: .mode),
            reason: try container.decode(Reason.self, forKey: .reason))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(resource.whole.description, forKey: .resource)
        try container.encodeIfPresent(resource.replica, forKey: .replica)
        try container.encodeIfPresent(mode, forKey: .mode)
        try container.encode(reason, forKey: .reason)
    }
}

extension Plan: Codable {
    enum CodingKeys: String, CodingKey {
        case formatVersion, id, createdAt, release, changes, notices
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let formatVersion = try container.decode(Int.self, forKey: .formatVersion)
        guard formatVersion == Self.currentFormat else { throw PlanFormError("formatVersion \(formatVersion) is not \(Self.currentFormat)") }
        // Its id becomes a path in the state directory: in form, or not at all.
        let id = try container.decode(String.self, forKey: .id)
        guard Self.isValidID(id) else { throw PlanFormError("the plan id \"\(id.prefix(80))\" is not plan- and 16 hex digits") }
        // A plan names its release by version and digest only (the plan contract).
        let release = try container.decode(Release.self, forKey: .release)
        guard release.commit == nil else { throw PlanFormError("the release names a commit; a plan names its release by version and digest only") }
        self.init(
            formatVersion: formatVersion, id: id, createdAt: try container.decode(String.self, forKey: .createdAt),
            release: release, changes: try container.decode([Change].self, forKey: .changes),
            notices: try container.decode([Notice].self, forKey: .notices))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(formatVersion, forKey: .formatVersion)
        try container.encode(id, forKey: .id)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(release.withoutCommit, forKey: .release)
        try container.encode(changes, forKey: .changes)
        try container.encode(notices, forKey: .notices)
    }
}
