public import Foundation
public import StetCore
import StetCrypto
public import StetState

/// The releases this host accepted, kept in the state directory: the one source of the desired
/// state. `STATE/releases/<hex>/` holds a release whose digest is `sha256:<hex>`, as it was
/// verified: `release.dsse.json` and every listed file at its relative path. `release.json`
/// names the one in force; it is written only after the folder is complete (`writeFolder`:
/// a hidden folder, fsynced, renamed), so a crash leaves the old release in force or the new one.
///
/// Reading the release in force verifies the copy again under the pinned trust policy: every
/// signature, the index, every file's digest, and that it is exactly the release `release.json`
/// names. It is cheap (it passed once) and catches a copy changed or damaged in the state
/// directory. It does not check expiry: a release in force stays in force until a newer one
/// is accepted (docs/architecture.md, principle 1).
public struct ReleaseStore: Sendable {
    public static let folder = "releases"
    /// Releases kept besides the one in force (the newest by version); older ones are removed
    /// after each acceptance.
    public static let kept = 5

    public let store: FileStateStore

    public init(store: FileStateStore) { self.store = store }

    /// The release in force, verified again and parsed.
    public struct InForce: Sendable {
        public let accepted: AcceptedRelease
        public let release: VerifiedRelease
        public let desired: DesiredState
        /// Where the copy is, for messages.
        public let path: String
    }

    /// The release in force has no copy in the state directory: it was accepted by a Stet that
    /// kept only its digest. Accepting it again stores it.
    public struct NotStored: Error, CustomStringConvertible, Sendable {
        public let release: ReleaseRef
        public let path: String
        public var description: String {
            "release version \(release.version) (\(release.digest)) is in force, but \(path) does not hold it: it was accepted "
                + "by an earlier Stet, which kept only its digest. Accept it again from its manifests "
                + "(`stet verify --accept DIR` or `stet apply`) to keep it there"
        }
    }

    /// The folder of the release with `digest`, or nil when the digest is not `sha256:` and 64
    /// lowercase hex digits (the folder's name comes from it).
    public static func key(_ digest: String) -> String? {
        guard digest.hasPrefix("sha256:") else { return nil }
        let hex = digest.dropFirst(7)
        guard hex.utf8.count == 64, hex.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else { return nil }
        return "\(folder)/\(hex)"
    }

    /// The files of `release`'s folder: the envelope and every listed file, by relative path.
    private static func contents(_ release: VerifiedRelease) -> [(path: String, data: Data)] {
        [(ReleaseIndex.envelopeName, release.envelope)] + release.files.map { ($0.path, $0.bytes) }
    }

    /// Keeps `release` (verified: its paths, count and sizes are within the verifier's bounds) in
    /// its folder, unless the folder holds it already byte for byte. Writes nothing else: the
    /// release is in force only once `release.json` names it. Call under the state lock.
    public func save(_ release: VerifiedRelease) throws {
        guard let key = Self.key(release.digest) else {
            throw StateError.invalidKey(release.digest, "expected sha256: and 64 lowercase hex digits")
        }
        let files = Self.contents(release)
        if try store.folderHolds(key, files: files) { return }
        try store.writeFolder(key, files: files)
    }

    /// True when the folder of `release` exists.
    public func holds(_ release: ReleaseRef) -> Bool {
        guard let key = Self.key(release.digest), let folder = try? store.checkedPath(key) else { return false }
        var info = stat()
        return lstat(folder, &info) == 0
    }

    /// The release in force (`release.json` and its copy), verified again under `trust` and
    /// parsed; nil when no release was accepted here. Throws `VerificationError` when the copy
    /// fails verification (exit 10), `NotStored`, `ManifestError` or `StateError`.
    public func inForce(trust: TrustPolicy, now: Date) throws -> InForce? {
        guard let accepted = try AcceptedRelease.load(from: store) else { return nil }
        guard let key = Self.key(accepted.digest) else {
            throw VerificationError(
                .storedReleaseMismatch, "\(store.path(AcceptedRelease.key)) names digest \(accepted.digest), not sha256: and 64 hex digits")
        }
        let path = store.path(key)
        guard holds(accepted.release) else { throw NotStored(release: accepted.release, path: path) }
        // Before a byte is read: no links, nothing another user could have changed.
        try store.checkTree(key, limit: 2 * ReleaseIndex.maximumFiles + 16)
        var verifier = ReleaseVerifier(directory: path, trust: trust, accepted: nil, now: now)
        verifier.inForce = accepted.release
        let outcome = try verifier.verify()
        switch outcome.result {
        case .failure(let error):
            throw VerificationError(error.code, "the copy of the release in force in \(path) fails verification: \(error.message)")
        case .success(let release):
            return InForce(accepted: accepted, release: release, desired: try release.desiredState(), path: path)
        }
    }

    /// The release in force (`inForce(trust:now:)`) verified under the pinned trust policy, or,
    /// when nothing is pinned, under the repository's at `trustFile` (a release accepted before
    /// any policy was pinned). Nil when no release was accepted here.
    public func inForce(trustFile: String, now: Date) throws -> InForce? {
        guard try AcceptedRelease.load(from: store) != nil else { return nil }
        guard let trust = try PinnedTrust.load(from: store) ?? (FileManager.default.fileExists(atPath: trustFile) ? try TrustPolicy.load(file: trustFile) : nil)
        else {
            throw VerificationError(.trustNotPinned, "no trust policy is pinned in \(store.root)/trust to verify the release in force with")
        }
        return try inForce(trust: trust, now: now)
    }

    /// Removes the folders of releases other than `current` beyond the `kept` newest (by
    /// version), and whatever an interrupted `save` left behind. Call under the state lock.
    public func prune(keeping current: ReleaseRef) throws {
        try store.removeLeftoverFolders(in: Self.folder)
        var others: [(version: Int, name: String)] = []
        for name in try store.list(Self.folder) where "\(Self.folder)/\(name)" != Self.key(current.digest) {
            others.append((version(of: name) ?? -1, name))
        }
        others.sort { ($0.version, $0.name) > ($1.version, $1.name) }
        for old in others.dropFirst(Self.kept) { try store.removeFolder("\(Self.folder)/\(old.name)") }
    }

    /// The version a kept release's envelope names; nil when it cannot be read (such a folder is
    /// removed first).
    private func version(of name: String) -> Int? {
        guard let data = try? store.read("\(Self.folder)/\(name)/\(ReleaseIndex.envelopeName)"),
            let envelope = try? Envelope(json: data), let index = try? ReleaseIndex.decode(envelope.payload)
        else { return nil }
        return index.version
    }
}
