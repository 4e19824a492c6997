/// Which release: the version its index carries, the digest of the index bytes, and the git
/// commit it came from when it came from git. The one name for a release everywhere: the
/// release in force (`release.json`), the release a plan was made for, the release an audit entry
/// was written under, the release a verification found.
///
/// As JSON (plans and audit entries, both contracts): `{"version", "digest", "commit"?}`, the
/// commit only when there is one. A plan names its release by version and digest only.
public struct ReleaseRef: Codable, Hashable, Sendable, CustomStringConvertible {
    public var version: Int
    /// `sha256:<hex>` of the release index bytes (the envelope's payload); empty for `none`.
    public var digest: String
    public var commit: String?

    public init(version: Int, digest: String, commit: String? = nil) {
        self.version = version
        self.digest = digest
        self.commit = commit
    }

    /// No release: what entries carry before the first release is accepted.
    public static let none = ReleaseRef(version: 0, digest: "")

    public var isNone: Bool { version == 0 && digest.isEmpty }

    /// The same release content (version and digest), from whichever commit.
    public func isSameRelease(as other: ReleaseRef) -> Bool { version == other.version && digest == other.digest }

    /// This release without its commit: how a plan names it.
    public var withoutCommit: ReleaseRef { ReleaseRef(version: version, digest: digest) }

    public var description: String {
        isNone ? "no release" : "release version \(version) (\(digest))" + (commit.map { " from commit \($0)" } ?? "")
    }
}
