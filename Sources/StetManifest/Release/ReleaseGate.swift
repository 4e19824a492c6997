public import Foundation
public import StetCore
import StetCrypto
public import StetState

/// The one way a command gets a release to act on: resolve the trust policy in force (pinned,
/// rotated, or pinned now on first use), verify the release against it, parse its manifests,
/// and, when asked to accept, record the release and any new pinned policy. A refusal writes
/// nothing to the state directory.
///
/// Refused or unreadable: a release or policy that was read and failed a check is `Refused`
/// (recorded, exit 10). A file the host could not read (no descriptor left, no permission, an
/// I/O error) throws its `InputFile.Failure` (`hostError` set), and a state file `StateError`:
/// nothing was judged, so nothing is recorded as refused and what is in force stays (exit 1;
/// the loop tries again at its next check).
public struct ReleaseGate: Sendable {
    public var manifests: String
    /// The repository's `trust.yaml`; its folder also holds the public keys and `trust.dsse.json`.
    public var trustFile: String
    public var store: FileStateStore
    public var trustOnFirstUse = false
    /// When the manifests come from a tree Stet unpacked (a git commit): the manifest directory
    /// and the trust policy must lead, through every symbolic link, to this folder or below it.
    /// A link out of it is refused like one out of the manifest directory.
    public var root: String?
    /// How messages name the manifest directory (`ReleaseVerifier.shownAs`): a git commit's
    /// tree, not the folder in the state directory it was unpacked to.
    public var shownAs: String?

    public init(manifests: String, trustFile: String, store: FileStateStore) {
        self.manifests = manifests
        self.trustFile = trustFile
        self.store = store
    }

    public struct Passed: Sendable {
        public let release: VerifiedRelease
        public let desired: DesiredState
        public let trust: TrustDecision
    }

    public struct Refused: Error, Sendable {
        public let error: VerificationError
        /// Nil when the trust policy itself was refused, before any release was read.
        public let report: ReleaseReport?
        public let trust: TrustDecision?
    }

    /// Verifies the release; with `accept`, keeps its copy and records it as the release in
    /// force (`record`), without an audit entry: commands and the loop accept through
    /// `ReleaseAcceptance` (StetEngine), which audits first. Throws `Refused`, `ManifestError` (a
    /// signed release whose manifests do not parse, or a trust policy that does not),
    /// `InputFile.Failure` (the host could not read a file), or `StateError`.
    public func open(accept: Bool, now: Date) throws -> Passed {
        let passed = try verify(trust: try resolveTrust(acting: accept), now: now)
        if accept {
            try ReleaseStore(store: store).save(passed.release)
            try record(passed, now: now)
        }
        return passed
    }

    /// The trust policy in force: pinned, rotated from the pinned one, or pinned now on first
    /// use. Writes nothing. Throws `Refused` (without a report), `ManifestError` (a repository
    /// policy that does not parse), `InputFile.Failure` or `StateError` (unreadable).
    public func resolveTrust(acting: Bool) throws -> TrustDecision {
        let rotationPath = ((trustFile as NSString).deletingLastPathComponent as NSString)
            .appendingPathComponent(TrustRotation.envelopeName)
        for path in [trustFile, rotationPath] {
            if let escape = leavesRoot(path) { throw Refused(error: escape, report: nil, trust: nil) }
        }
        var info = stat()
        if lstat(trustFile, &info) != 0 {
            // Absent is an answer; a folder the host cannot look into is not.
            let failure = InputFile.Failure(path: trustFile, "cannot look up", errorNumber: errno)
            if failure.hostError != nil { throw failure }
        }
        let repository: TrustPolicy? = FileManager.default.fileExists(atPath: trustFile) ? try TrustPolicy.load(file: trustFile) : nil
        let pinned = try PinnedTrust.load(from: store)
        let rotation: Data?
        do {
            // Not through a link, as trust.yaml (`TrustPolicy.load`).
            rotation = try InputFile.read(rotationPath, limit: InputFile.Limit.trustPolicy, followSymlinks: false)
        } catch {
            if error.hostError != nil { throw error }
            throw Refused(error: VerificationError(.rotationMalformed, error.description), report: nil, trust: nil)
        }
        do {
            return try TrustResolver.resolve(
                repository: repository, rotation: rotation,
                pinned: pinned, acting: acting, trustOnFirstUse: trustOnFirstUse,
                stateDirectory: store.location)
        } catch {
            throw Refused(error: error, report: nil, trust: nil)
        }
    }

    /// Verifies the release under `trust` and parses its manifests. Writes nothing.
    public func verify(trust decision: TrustDecision, now: Date) throws -> Passed {
        if let escape = leavesRoot(manifests) {
            var report = ReleaseReport(directory: manifests, threshold: decision.policy.threshold(of: .release))
            report.refused = ReleaseReport.Refusal(code: escape.code.rawValue, message: escape.message)
            throw Refused(error: escape, report: report, trust: decision)
        }
        var verifier = ReleaseVerifier(directory: manifests, trust: decision.policy, accepted: try AcceptedRelease.load(from: store), now: now)
        verifier.shownAs = shownAs
        let outcome = try verifier.verify()
        let release: VerifiedRelease
        switch outcome.result {
        case .failure(let error): throw Refused(error: error, report: outcome.report, trust: decision)
        case .success(let verified): release = verified
        }
        return Passed(release: release, desired: try release.desiredState(), trust: decision)
    }

    /// Makes a verified release whose copy `ReleaseStore.save` has kept the release in force:
    /// pins the trust policy it was verified with if that is new, writes `release.json` (only
    /// ever forward: an older release, or another with the same version, is refused), then
    /// removes copies of releases no longer kept. Call under the state lock.
    public func record(_ passed: Passed, now: Date) throws {
        let release = passed.release.release
        let releases = ReleaseStore(store: store)
        guard releases.holds(release) else {
            throw StateError.corrupt(store.path(ReleaseStore.key(release.digest) ?? ReleaseStore.folder), "the copy of the release to accept is missing")
        }
        let current = try AcceptedRelease.load(from: store)
        if let current, current.version > release.version || (current.version == release.version && current.digest != release.digest) {
            throw VerificationError(
                .rollback, "release version \(release.version) cannot replace version \(current.version), accepted at \(RFC3339.format(current.acceptedAt))")
        }
        if passed.trust.needsPinning { try PinnedTrust.save(passed.trust.policy, to: store, now: now) }
        if current?.release != release { try AcceptedRelease(release, acceptedAt: now).save(to: store) }
        try releases.prune(keeping: release)
    }

    /// The refusal when `path` (below `root`) leads out of `root`: it, or the nearest part of
    /// it that exists, resolves elsewhere, or is a link that resolves nowhere. A path that does
    /// not exist inside `root` is not refused here (the verifier says what is missing).
    private func leavesRoot(_ path: String) -> VerificationError? {
        guard let root else { return nil }
        guard let realRoot = ManifestDirectory.realPath(root) else {
            return VerificationError(.fileMissing, "\(root) does not exist")
        }
        var current = path
        while true {
            if let real = ManifestDirectory.realPath(current) {
                if real == realRoot || real.hasPrefix(realRoot + "/") { return nil }
                return VerificationError(.symlinkEscape, "\(path) leads outside \(root) (to \(real)) through a symbolic link")
            }
            var info = stat()
            if lstat(current, &info) == 0 {
                return VerificationError(.symlinkEscape, "\(path) leads through a symbolic link that resolves nowhere inside \(root)")
            }
            let parent = (current as NSString).deletingLastPathComponent
            guard parent != current, parent.count >= root.count else { return nil }
            current = parent
        }
    }
}
