import Foundation
import StetCrypto
import StetManifest
import StetState

/// Looks for a new release, on the loop's release thread: fetches the git source (or takes a
/// fingerprint of the manifest directory) and, when something changed, verifies the release and
/// parses its manifests (`ReleaseAcceptance.check`). Writes nothing but the git mirror and its work
/// tree; the loop records the outcome and accepts the release (`ReleaseAcceptance`), on its own
/// thread. A fetch that hangs therefore delays only
/// the next release, never the loop's reaction to a replica's exit.
struct ReleaseWatcher: Sendable {
    let manifests: String
    let trustFile: String
    let source: GitSource?
    let store: FileStateStore
    /// A fleet node's release directory appears when the fleet first has a release: until then
    /// there is nothing to judge (and nothing to refuse).
    var directoryMayBeAbsent = false

    /// What was looked at: the commit (git) or the fingerprint (directory), to be looked at once.
    struct Seen: Sendable {
        let digest: String
        let commit: String?
        let gate: ReleaseGate
    }

    enum Outcome: Sendable {
        /// The same commit or fingerprint as last time.
        case unchanged
        /// The git source could not be fetched or unpacked; the release in force stays.
        case unreachable(String)
        /// Verified (`ReleaseAcceptance.check`): passed, refused, or manifests that do not parse.
        case checked(ReleaseAcceptance.Check, Seen)
        /// The host could not read a file of the release or of the state directory (an I/O
        /// error, no descriptor left): nothing was judged, and it is no refusal.
        case failed(any Error)
    }

    /// Checks for a release other than `seen` (or the current one again, with `force`).
    func check(after seen: String?, force: Bool) -> Outcome {
        var gate = ReleaseGate(manifests: manifests, trustFile: trustFile, store: store)
        let current: Seen
        if let source {
            // From git: fetch, and look at a commit once.
            do {
                let head = try source.fetch()
                guard force || head != seen else { return .unchanged }
                try source.checkout(head)
                gate = source.gate(commit: head)
                current = Seen(digest: head, commit: head, gate: gate)
            } catch {
                return .unreachable("\(error)")
            }
        } else {
            if directoryMayBeAbsent, !FileManager.default.fileExists(atPath: manifests) { return .unchanged }
            let digest = fingerprint()
            guard force || digest != seen else { return .unchanged }
            current = Seen(digest: digest, commit: nil, gate: gate)
        }
        do {
            return .checked(try ReleaseAcceptance.check(current.gate, now: Date()), current)
        } catch {
            return .failed(error)
        }
    }

    /// A cheap fingerprint of the manifest directory: the envelope's digest and every file's
    /// name, size and modification time. Any change means verifying the release again (a new
    /// signed release, or a file edited without signing).
    func fingerprint() -> String {
        let root = manifests
        // Bounded like verification: an envelope too large (or not a file) is refused there.
        let envelope = try? InputFile.read(
            (root as NSString).appendingPathComponent(ReleaseIndex.envelopeName), limit: InputFile.Limit.releaseEnvelope)
        var text = envelope.map { $0.sha256Reference } ?? "no envelope"
        let names = (FileManager.default.enumerator(atPath: root)?.allObjects as? [String] ?? []).sorted()
        for name in names {
            var info = stat()
            guard lstat((root as NSString).appendingPathComponent(name), &info) == 0 else { continue }
            text += "\n\(name) \(info.st_size) \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec) \(info.st_mode)"
        }
        return Data(text.utf8).sha256Reference
    }
}
