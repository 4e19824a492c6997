import Foundation
public import StetCore
public import StetManifest
import StetState

/// The commit a release from git came from, kept beside `release.json` (`git/accepted.json`,
/// digest → commit; `release.json` keeps its first form), and the release in force as every audit
/// entry names it.
extension ReleaseStore {
    static let commitKey = "git/accepted.json"

    private struct Commit: Codable {
        var digest: String
        var commit: String
    }

    /// Records that the release with `digest` came from `commit`.
    func recordCommit(_ commit: String, of digest: String) throws {
        try store.write(Self.commitKey, try JSONCoding.encoder.encode(Commit(digest: digest, commit: commit)))
    }

    /// The commit the release with `digest` came from, when it came from git.
    func commit(of digest: String) -> String? {
        guard let data = try? store.read(Self.commitKey), let recorded = try? JSONCoding.decoder.decode(Commit.self, from: data),
            recorded.digest == digest
        else { return nil }
        return recorded.commit
    }

    /// The release in force, with the commit it came from: what audit entries record. `none`
    /// before the first release (or when `release.json` cannot be read: the entry then says no
    /// release rather than stop the action that writes it).
    public func reference() -> ReleaseRef {
        guard let accepted = try? AcceptedRelease.load(from: store) else { return .none }
        var release = accepted.release
        release.commit = commit(of: release.digest)
        return release
    }
}
