/// The four kinds of resource a manifest declares.
public enum ResourceKind: String, CaseIterable, Codable, Sendable, Comparable {
    case service = "Service"
    case backupPolicy = "BackupPolicy"
    case monitor = "Monitor"
    case notifier = "Notifier"

    public static func < (lhs: ResourceKind, rhs: ResourceKind) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// Names one resource, written `Kind/name` (`Service/web`). Names are unique per kind.
public struct ResourceID: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public let kind: ResourceKind
    public let name: String

    public init(_ kind: ResourceKind, _ name: String) {
        self.kind = kind
        self.name = name
    }

    public var description: String { "\(kind.rawValue)/\(name)" }

    /// Reads `Kind/name` back (from a saved plan or a state file): nil unless the kind is one of
    /// the four and the name is in form.
    public init?(parsing text: String) {
        guard let slash = text.firstIndex(of: "/"), let kind = ResourceKind(rawValue: String(text[..<slash])) else { return nil }
        let name = String(text[text.index(after: slash)...])
        guard Self.isValidName(name) else { return nil }
        self.init(kind, name)
    }

    public static func < (lhs: ResourceID, rhs: ResourceID) -> Bool {
        (lhs.kind, lhs.name) < (rhs.kind, rhs.name)
    }

    /// True for a DNS label: `[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?`.
    public static func isValidName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...63).contains(bytes.count) else { return false }
        func alnum(_ b: UInt8) -> Bool { (b >= 97 && b <= 122) || (b >= 48 && b <= 57) }
        guard alnum(bytes.first!), alnum(bytes.last!) else { return false }
        return bytes.allSatisfy { alnum($0) || $0 == UInt8(ascii: "-") }
    }
}
