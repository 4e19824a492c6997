/// The kinds of resource a manifest declares.
public enum ResourceKind: String, CaseIterable, Codable, Sendable, Comparable {
    case service = "Service"
    case backupPolicy = "BackupPolicy"
    case monitor = "Monitor"
    case notifier = "Notifier"
    case maintenanceWindow = "MaintenanceWindow"

    public static func < (lhs: ResourceKind, rhs: ResourceKind) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// Names one resource, written `Kind/name` (`Service/web`), or one replica of a service,
/// written `Kind/name#index` (`Service/web#1`). Names are unique per kind.
///
/// The value is kept typed from where it is made (a manifest, the planner) to where it is
/// written (a plan, an audit entry, a state file); text from outside becomes one only through
/// `init?(parsing:)` or `init?(validating:_:replica:)`, which check every part and never trap.
/// Encoded alone it is its text (`"Service/web"`); plans write the replica beside it
/// (`Change`, `Notice`).
public struct ResourceID: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public let kind: ResourceKind
    public let name: String
    /// The replica of a service this names, or nil for the resource as a whole.
    public let replica: Int?

    /// A resource (or replica) whose name the caller has already checked (a manifest's, the
    /// planner's).
    public init(_ kind: ResourceKind, _ name: String, replica: Int? = nil) {
        self.kind = kind
        self.name = name
        self.replica = replica
    }

    /// The resource from parts read from outside: nil unless `name` is a DNS label and
    /// `replica`, when given, names a replica (`isValidReplica`) of a service.
    public init?(validating kind: ResourceKind, _ name: String, replica: Int? = nil) {
        guard Self.isValidName(name) else { return nil }
        if let replica {
            guard kind == .service, Self.isValidReplica(replica) else { return nil }
        }
        self.init(kind, name, replica: replica)
    }

    /// Reads what `description` writes (from a saved plan or a state file): `Kind/name` or
    /// `Service/name#index`. Nil unless the kind is one of the four, the name a DNS label and
    /// the index as `replicaIndex(parsing:)` reads it.
    public init?(parsing text: some StringProtocol) {
        // The longest form: `MaintenanceWindow/` (18), a name (63), `#999` (4).
        guard text.utf8.count <= 85, let slash = text.firstIndex(of: "/"),
            let kind = ResourceKind(rawValue: String(text[..<slash]))
        else { return nil }
        let rest = text[text.index(after: slash)...]
        if let hash = rest.firstIndex(of: "#") {
            guard let replica = Self.replicaIndex(parsing: rest[rest.index(after: hash)...]) else { return nil }
            self.init(validating: kind, String(rest[..<hash]), replica: replica)
        } else {
            self.init(validating: kind, String(rest))
        }
    }

    /// `Kind/name`, or `Kind/name#index` for a replica.
    public var description: String {
        let resource = "\(kind.rawValue)/\(name)"
        return replica.map { "\(resource)#\($0)" } ?? resource
    }

    /// The resource as a whole: this one without its replica. Plans, audit entries and state
    /// files name resources by it; backoff, budget and status are kept per resource.
    public var whole: ResourceID { ResourceID(kind, name) }

    /// The replica `index` of this resource.
    public func replica(_ index: Int) -> ResourceID { ResourceID(kind, name, replica: index) }

    /// By kind (in `ResourceKind`'s order), then name, then replica (the whole resource first).
    public static func < (lhs: ResourceID, rhs: ResourceID) -> Bool {
        (lhs.kind, lhs.name, lhs.replica ?? -1) < (rhs.kind, rhs.name, rhs.replica ?? -1)
    }

    /// True for a DNS label: `[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?`.
    public static func isValidName(_ name: String) -> Bool {
        let bytes = Array(name.utf8.prefix(64))
        guard (1...63).contains(bytes.count) else { return false }
        func alnum(_ b: UInt8) -> Bool { (b >= 97 && b <= 122) || (b >= 48 && b <= 57) }
        guard alnum(bytes.first!), alnum(bytes.last!) else { return false }
        return bytes.allSatisfy { alnum($0) || $0 == UInt8(ascii: "-") }
    }

    /// True for a replica index a service can have: 0 up to `Service.maximumReplicas`.
    public static func isValidReplica(_ index: Int) -> Bool { (0..<Service.maximumReplicas).contains(index) }

    /// The index `text` writes, or nil unless it is exactly as Stet writes one: decimal digits,
    /// no sign, no leading zero, below `Service.maximumReplicas`.
    public static func replicaIndex(parsing text: some StringProtocol) -> Int? {
        guard (1...4).contains(text.utf8.count), let value = Int(text), String(value) == text, isValidReplica(value) else { return nil }
        return value
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let id = ResourceID(parsing: text) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "\"\(text.prefix(120))\" is not Kind/name with a DNS label as the name")
        }
        self = id
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
