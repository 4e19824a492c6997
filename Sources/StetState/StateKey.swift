import StetCore

/// Keys of the state store are `/`-separated paths relative to the state directory, and the
/// names in them (services, backup policies, plan ids, replica indexes) come from manifests,
/// saved plans, state files and directory listings. Every key passes here before it touches
/// the filesystem, so no name, however it was made, reaches outside the state directory.
public enum StateKey {
    /// The pinned trust policy. `PinnedTrust` (StetManifest) keeps it; the audit log looks for
    /// it too, since a policy is pinned only after the log has recorded it.
    public static let pinnedTrust = "trust/policy.json"

    /// The longest key, and the longest component (as NAME_MAX).
    static let maximumLength = 1024
    static let maximumComponent = 255

    /// Why `key` is not a key, or nil: it must be relative, and each component a plain name
    /// (not empty, not `.` or `..`, no NUL, at most 255 bytes).
    public static func problem(_ key: String) -> String? {
        let bytes = key.utf8
        guard !bytes.isEmpty, bytes.count <= maximumLength else { return "expected 1 to \(maximumLength) bytes" }
        guard !bytes.contains(0) else { return "holds a NUL byte" }
        guard bytes.first != UInt8(ascii: "/") else { return "is absolute" }
        // Component by component, as bytes: every read and write of state checks its key.
        var length = 0
        var dots = 0
        func ended() -> String? {
            guard length > 0 else { return "has an empty component" }
            guard dots != length || length > 2 else { return "has a \(length == 1 ? "." : "..") component" }
            guard length <= maximumComponent else { return "has a component longer than \(maximumComponent) bytes" }
            length = 0
            dots = 0
            return nil
        }
        for byte in bytes {
            if byte == UInt8(ascii: "/") {
                if let problem = ended() { return problem }
            } else {
                length += 1
                dots = byte == UInt8(ascii: ".") && dots == length - 1 ? dots + 1 : 0
            }
        }
        return ended()
    }

    /// The folder of `key` (`replicas/web` of `replicas/web/0.json`), empty at the top.
    public static func folder(of key: String) -> String {
        guard let slash = key.utf8.lastIndex(of: UInt8(ascii: "/")) else { return "" }
        return String(key[..<slash])
    }

    /// `key`, or a `StateError` that names it and says what is wrong.
    @discardableResult
    public static func check(_ key: String) throws -> String {
        if let problem = problem(key) { throw StateError.invalidKey(key, problem) }
        return key
    }

    /// `name` when it is in the form of every name Stet puts into a key: a DNS label (resource
    /// names, docs/architecture.md, "Manifests"; plan ids are `plan-` and hex, which is one too).
    public static func name(_ name: String) throws -> String {
        guard ResourceID.isValidName(name) else {
            throw StateError.invalidKey(name, "expected a DNS label (lowercase letters, digits and '-', 1 to 63 characters)")
        }
        return name
    }

    /// A replica index as a key component: 0 up to `Service.maximumReplicas`.
    public static func index(_ index: Int) throws -> String {
        guard ResourceID.isValidReplica(index) else {
            throw StateError.invalidKey(String(index), "expected a replica index from 0 to \(Service.maximumReplicas - 1)")
        }
        return String(index)
    }

    /// The index a file stem names (`3` of `3.json`), or nil unless it is exactly how `index`
    /// writes one (no sign, no leading zero, in range).
    public static func index(parsing stem: Substring) -> Int? { ResourceID.replicaIndex(parsing: stem) }
}
