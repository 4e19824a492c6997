public import Foundation
public import StetCrypto
public import StetState
public import StetCore

/// What `stet verify` found about a release, whether or not it was accepted.
public struct ReleaseReport: Sendable, Encodable {
    public struct Signer: Sendable, Encodable {
        public enum Status: String, Sendable, Encodable {
            /// A valid signature by a trusted key of role `release`; counts toward the threshold.
            case counted
            /// Valid, by a key of the policy that is not in role `release`.
            case notInRole = "not-in-role"
            /// Does not verify under any key of the policy.
            case invalid
            /// A second signature by a key already counted.
            case duplicate
        }
        public let keyid: String
        public let name: String?
        public let status: Status
        public let example: Bool
    }

    public struct Refusal: Sendable, Encodable {
        public let code: String
        public let message: String

        public init(code: String, message: String) {
            self.code = code
            self.message = message
        }
    }

    public var directory: String
    public var version: Int?
    public var digest: String?
    public var created: Date?
    public var expires: Date?
    public var files: Int?
    public var signers: [Signer] = []
    public var threshold: Int
    public var thresholdMet = false
    public var warnings: [String] = []
    public var refused: Refusal?

    /// The release found, once both its version and digest were read.
    public var release: ReleaseRef? {
        guard let version, let digest else { return nil }
        return ReleaseRef(version: version, digest: digest)
    }
}

/// A release that passed every check, with the bytes of its files as they were hashed.
public struct VerifiedRelease: Sendable {
    public struct File: Sendable {
        /// Relative and `/`-separated, as the index lists it.
        public let path: String
        /// As messages should show it (the path in the directory it was read from).
        public let name: String
        public let bytes: Data
    }

    public let index: ReleaseIndex
    /// Version and `sha256:<hex>` digest of the index bytes.
    public let release: ReleaseRef
    /// `release.dsse.json` as it was read.
    public let envelope: Data
    /// The listed files with their verified bytes, sorted by path.
    public let files: [File]
    public let report: ReleaseReport
    /// The manifest files among `files`, each decoded on the thread that read and hashed it,
    /// once its digest matched the signed index.
    let manifests: DecodedManifests

    public var digest: String { release.digest }
}

/// Checks a manifest directory's signed release against a trust policy, in the order of the
/// release contract: envelope and type; signatures and threshold; expiry; version against the
/// accepted one; paths and symbolic links; file digests and completeness. Reads only, writes
/// nothing. Path checks run before any listed file is read, so no byte outside the directory
/// is ever opened.
public struct ReleaseVerifier: Sendable {
    public let directory: String
    public let trust: TrustPolicy
    public let accepted: AcceptedRelease?
    public let now: Date
    /// Set when `directory` holds the copy of the release in force that the state directory
    /// keeps (`ReleaseStore`): it must be exactly that release, and it stays in force once it
    /// has expired (step 3 is for releases not yet accepted: a release in force is never torn
    /// down for its age, only replaced by a newer one).
    public var inForce: ReleaseRef?
    /// How messages name `directory` when its path means nothing to the reader: a git commit's
    /// tree unpacked in the state directory is `commit 1a2b3c4d5e6f:manifests`.
    public var shownAs: String?

    public init(directory: String, trust: TrustPolicy, accepted: AcceptedRelease?, now: Date) {
        self.directory = directory
        self.trust = trust
        self.accepted = accepted
        self.now = now
    }

    public struct Outcome: Sendable {
        public var report: ReleaseReport
        public var result: Result<VerifiedRelease, VerificationError>
    }

    /// The verdict on the release. Throws, deciding nothing, when the host could not read a file
    /// of it (`InputFile.Failure` with a `hostError`: no descriptor left, an I/O error): the
    /// release may well be good, and such a failure is never a refusal.
    public func verify() throws(InputFile.Failure) -> Outcome {
        var report = ReleaseReport(directory: shownAs ?? directory, threshold: trust.threshold(of: .release))
        var unreadable: InputFile.Failure?
        do {
            let release = try check(&report, unreadable: &unreadable)
            return Outcome(report: report, result: .success(release))
        } catch {
            if let unreadable { throw unreadable }
            let error = VerificationError(error.code, shown(error.message))
            report.refused = ReleaseReport.Refusal(code: error.code.rawValue, message: error.message)
            return Outcome(report: report, result: .failure(error))
        }
    }

    /// `text` with `directory` named as `shownAs`.
    private func shown(_ text: String) -> String { Self.shown(text, directory: directory, as: shownAs) }

    private static func shown(_ text: String, directory: String, as shownAs: String?) -> String {
        guard let shownAs else { return text }
        return text.replacingOccurrences(of: directory, with: shownAs)
    }

    /// Reads a file of the release: nil when it is not there; a refusal with `code` when it is
    /// not a file Stet takes (not regular, too large). When the host could not read it, the
    /// failure goes to `unreadable` and ends the check; `verify` throws it instead of refusing.
    private func read(
        _ path: String, limit: Int, refusing code: VerificationError.Code, unreadable: inout InputFile.Failure?
    ) throws(VerificationError) -> Data? {
        do {
            return try InputFile.read(path, limit: limit)
        } catch {
            if error.hostError != nil { unreadable = error }
            throw VerificationError(code, error.description)
        }
    }

    private func path(_ relative: String) -> String { ManifestLoader.join(directory, relative) }

    /// Throws the refusal; a file the host could not read ends it too, and is in `unreadable`.
    private func check(_ report: inout ReleaseReport, unreadable: inout InputFile.Failure?) throws(VerificationError) -> VerifiedRelease {
        let dir = ManifestDirectory(path: directory)
        // The directory is listed while the envelope and the index are read and checked (it
        // reads no file of the release), and waited for only if the check gets that far.
        let walk = Background { () throws(any Error) in try dir.list() }
        defer { walk.wait() }
        let envelopePath = path(ReleaseIndex.envelopeName)
        // 1. The envelope parses and has the release payload type.
        guard let bytes = try read(envelopePath, limit: InputFile.Limit.releaseEnvelope, refusing: .envelopeMalformed, unreadable: &unreadable)
        else {
            throw VerificationError(
                .envelopeMissing, "\(envelopePath) does not exist or cannot be read; sign a release with `stet release sign`")
        }
        let envelope: Envelope
        do {
            envelope = try Envelope(json: bytes)
        } catch {
            throw VerificationError(.envelopeMalformed, "\(envelopePath) is not a DSSE envelope: \(error)")
        }
        guard envelope.payloadType == ReleaseIndex.payloadType else {
            throw VerificationError(
                .wrongPayloadType,
                "\(envelopePath) has payloadType \"\(TextEscaping.excerpt(envelope.payloadType, limit: 80))\", "
                    + "expected \"\(ReleaseIndex.payloadType)\"")
        }
        let digest = envelope.payload.sha256Reference
        report.digest = digest

        // 2. Signatures by distinct trusted keys of role release, at least the threshold. The
        // index is decoded beside them (for the report, whether they count or not).
        let payload = envelope.payload
        let decoding = Background { () throws(VerificationError) in try ReleaseIndex.decode(payload) }
        defer { decoding.wait() }
        let counted = classifySignatures(envelope, into: &report)
        let index = try decoding.result()
        report.version = index.version
        report.created = index.created
        report.expires = index.expires
        report.files = index.files.count
        report.thresholdMet = counted.count >= report.threshold
        for name in counted where trust.keys[name]?.example == true {
            report.warnings.append(
                "key \(name) is marked example-only: its private half is published with Stet's example; "
                    + "never trust it on a host you care about")
        }
        guard report.thresholdMet else {
            let names = counted.isEmpty ? "none" : counted.joined(separator: ", ")
            var detail = "\(counted.count) of \(report.threshold) required signatures from trusted release keys (counted: \(names))"
            let others = report.signers.filter { $0.status != .counted }
            if !others.isEmpty {
                // At most a few named: the refusal is recorded, and must stay small.
                let shown = 5
                detail += "; not counted: " + others.prefix(shown).map { signer in
                    let who = signer.name.map { "key \($0)" } ?? "keyid \(signer.keyid.prefix(16))…"
                    switch signer.status {
                    case .invalid: return "a signature (\(who)) that does not verify under any trusted key"
                    case .notInRole: return "\(who), which is not in role release"
                    case .duplicate: return "a second signature by \(who) (a key counts once)"
                    case .counted: return ""
                    }
                }.joined(separator: "; ") + (others.count > shown ? "; and \(others.count - shown) more" : "")
            }
            let missing = trust.keys(in: .release).map(\.name).filter { !counted.contains($0) }.sorted()
            if !missing.isEmpty {
                detail += "; add signatures with `stet release sign` by " + (missing.count == 1 ? "" : "one of ")
                    + missing.prefix(5).joined(separator: ", ") + (missing.count > 5 ? " and \(missing.count - 5) more" : "")
            }
            throw VerificationError(.belowThreshold, detail)
        }

        // 3. Not expired (a frozen mirror cannot serve an old release for ever). The copy of the
        // release in force was checked when it was accepted; it stays in force after it expires.
        if inForce == nil {
            guard index.expires > now else {
                throw VerificationError(
                    .expired, "release version \(index.version) expired at \(RFC3339.format(index.expires)); sign it again with --renew")
            }
            // A release from the future is not one a signer meant: a clock off by more than the
            // allowance is a problem to fix first.
            guard index.created <= now.addingTimeInterval(ReleaseIndex.clockSkewAllowance) else {
                throw VerificationError(
                    .createdInFuture,
                    "release version \(index.version) was created at \(RFC3339.format(index.created)), after now "
                        + "(\(RFC3339.format(now))) by more than \(Int(ReleaseIndex.clockSkewAllowance)) s; check both clocks")
            }
        }
        // Nor is one that expires before it was made.
        guard index.created < index.expires else {
            throw VerificationError(
                .indexMalformed,
                "release version \(index.version) expires at \(RFC3339.format(index.expires)), before it was created "
                    + "(\(RFC3339.format(index.created)))")
        }
        if index.expires <= now {
            report.warnings.append(
                "release version \(index.version) expired at \(RFC3339.format(index.expires)); it stays in force until a newer "
                    + "release is accepted: sign one (or this one again with --renew)")
        } else if index.expires.timeIntervalSince(now) < 7 * 86_400 {
            report.warnings.append("release version \(index.version) expires at \(RFC3339.format(index.expires)), in less than 7 days")
        }

        // 4. Not older than the release in force, and no second content for the same version.
        // The kept copy of the release in force must be exactly the release `release.json` names.
        if let inForce, index.version != inForce.version || digest != inForce.digest {
            throw VerificationError(
                .storedReleaseMismatch,
                "\(directory) holds release version \(index.version) with digest \(digest), but the release in force is version "
                    + "\(inForce.version) with digest \(inForce.digest)")
        }
        if let accepted {
            if index.version < accepted.version {
                throw VerificationError(
                    .rollback,
                    "release version \(index.version) is older than version \(accepted.version), accepted at "
                        + "\(RFC3339.format(accepted.acceptedAt)); an older release is never taken back: to undo a change, "
                        + "sign the old content as a new release")
            }
            if index.version == accepted.version, digest != accepted.digest {
                throw VerificationError(
                    .equivocation,
                    "release version \(index.version) has digest \(digest), but version \(accepted.version) was accepted "
                        + "with digest \(accepted.digest): two different releases with one version; sign the change as a new "
                        + "version (`stet release sign` makes version + 1 when files change)")
            }
        }

        // 6. Paths relative without `..`; no symbolic link leading outside the directory.
        let listing: ManifestDirectory.Listing
        do {
            listing = try walk.result()
        } catch let failure as InputFile.Failure {
            unreadable = failure
            throw VerificationError(.fileMissing, failure.description)
        } catch {
            throw VerificationError(.fileMissing, "\(error)")
        }
        let entries = index.files.sorted { $0.key < $1.key }
        let listed = entries.map(\.key)
        for relative in listed {
            guard ManifestDirectory.isSafeRelativePath(relative) else {
                throw VerificationError(
                    .unsafePath,
                    "the release lists \"\(TextEscaping.excerpt(relative))\": paths must be relative, '/'-separated, without '.' or '..'")
            }
            if let problem = ManifestDirectory.nameProblem(relative) {
                throw VerificationError(.unsafePath, "the release lists \"\(TextEscaping.excerpt(relative))\", which \(problem)")
            }
        }
        for relative in listing.manifests {
            if let problem = ManifestDirectory.nameProblem(relative) {
                throw VerificationError(.unsafePath, "\(path(relative)) \(problem)")
            }
        }
        if let (first, second) = ManifestDirectory.normalisationClash(listing.manifests + listed) {
            throw VerificationError(
                .unsafePath,
                "\"\(TextEscaping.excerpt(first))\" and \"\(TextEscaping.excerpt(second))\" are the same name in Unicode "
                    + "normal form but different files; rename one")
        }
        // Every link met while listing, and every listed path that passes through a link
        // (the listing skips hidden folders, an index need not), must resolve inside.
        let linked = listing.symlinks + listed.filter { !listing.direct.contains($0) && isSymlinkOnPath($0) }
        if let escape = linked.first(where: { !dir.staysInside($0) }) {
            throw VerificationError(.symlinkEscape, "\(path(escape)) is a symbolic link that leads outside \(directory)")
        }

        // 5. Every listed file with its digest; every manifest file listed.
        // Read, hashed and (a manifest whose digest matches) decoded on every core; judged in
        // order, so the refusal names the first file.
        let (files, runs) = readAll(entries)
        if let (index, problem) = runs.lazy.compactMap(\.failure).first {
            let (relative, expected) = entries[index]
            switch problem {
            case .unreadable(let error):
                if error.hostError != nil { unreadable = error }
                throw VerificationError(.fileUnreadable, error.description)
            case .missing:
                throw VerificationError(
                    .fileMissing,
                    "\(path(relative)) is listed in the release but does not exist; restore it, or sign the release again without "
                        + "it (`stet release sign`)")
            case .modified(let actual):
                throw VerificationError(
                    .fileModified,
                    "\(path(relative)) has digest \(actual), but the release lists \(expected): it changed after signing; "
                        + "revert the change, or have it reviewed and signed as a new release (`stet release sign`)")
            }
        }
        if let extra = listing.manifests.first(where: { index.files[$0] == nil }) {
            throw VerificationError(
                .fileUnlisted, "\(path(extra)) is not part of release version \(index.version): sign the release again to include it, or remove it")
        }
        return VerifiedRelease(
            index: index, release: ReleaseRef(version: index.version, digest: digest), envelope: bytes, files: files, report: report,
            manifests: DecodedManifests(runs.map(\.manifests)))
    }

    /// Why a listed file fails step 5.
    private enum FileProblem {
        case missing
        case unreadable(InputFile.Failure)
        /// Its bytes have this digest, not the one listed.
        case modified(String)
    }

    /// A run of neighbouring listed files: the first of them that fails, if one does, and what
    /// those before it that are manifests decode to.
    private struct Run {
        var failure: (index: Int, problem: FileProblem)?
        var manifests = ManifestLoader.Decoded()
    }

    /// Each listed file read, hashed and, when it is a manifest with the digest the signed index
    /// lists, decoded, on every core, in runs; the files in the order given. Only signed bytes
    /// are ever decoded: the index's signatures were counted before any file is read, and a file
    /// is decoded only once the digest of the very bytes decoded is the one listed. The files of
    /// a run after its first failure are not read (their slots hold no bytes): the release is
    /// refused for the first failure of all.
    private func readAll(_ entries: [(key: String, value: String)]) -> (files: [VerifiedRelease.File], runs: [Run]) {
        // What the workers need, and no more: a copy of the verifier each (its trust policy
        // included) would cost a retain and a release of every part of it per file.
        let directory = directory
        let shownAs = shownAs
        let base = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        defer { if base >= 0 { close(base) } }
        var runs: [Run] = []
        let files = [VerifiedRelease.File](unsafeUninitializedCapacity: entries.count) { buffer, initialized in
            let slots = SendableBuffer(buffer)
            runs = Parallel.chunks(of: entries.count) { range in
                var run = Run()
                let hasher = SHA256()
                for index in range {
                    let (relative, expected) = entries[index]
                    let full = ManifestLoader.join(directory, relative)
                    let name = Self.shown(full, directory: directory, as: shownAs)
                    var content = Data()
                    if run.failure == nil {
                        do throws(InputFile.Failure) {
                            // Looked up from the directory opened once; from the root if it could not be.
                            let read = base >= 0
                                ? try InputFile.read(relative, in: base, named: full, limit: ManifestLoader.maximumFileSize)
                                : try InputFile.read(full, limit: ManifestLoader.maximumFileSize)
                            if let read {
                                content = read
                                if !hasher.matches(read, reference: expected) {
                                    run.failure = (index, .modified(read.sha256Reference))
                                } else if ManifestDirectory.isManifest(relative) {
                                    run.manifests.add(name: name, bytes: read)
                                }
                            } else {
                                run.failure = (index, .missing)
                            }
                        } catch {
                            run.failure = (index, .unreadable(error))
                        }
                    }
                    (slots.buffer.baseAddress! + index).initialize(to: VerifiedRelease.File(path: relative, name: name, bytes: content))
                }
                return run
            }
            initialized = entries.count
        }
        return (files, runs)
    }

    /// True when some component of `relative` is a symbolic link.
    private func isSymlinkOnPath(_ relative: String) -> Bool {
        var current = directory
        for component in relative.split(separator: "/") {
            current += "/" + component
            var info = stat()
            if lstat(current, &info) == 0, info.st_mode & S_IFMT == S_IFLNK { return true }
        }
        return false
    }

    /// Fills `report.signers` and returns the names of the distinct release keys that count.
    private func classifySignatures(_ envelope: Envelope, into report: inout ReleaseReport) -> [String] {
        let releaseKeys = Set(trust.roles[.release]?.keys ?? [])
        let allKeys = trust.keys.values.sorted { $0.name < $1.name }
        let publicKeys = allKeys.map(\.publicKey)
        var counted: [String] = []
        for signature in envelope.signatures {
            let signer = envelope.signer(of: signature, among: publicKeys).map { allKeys[$0] }
            let status: ReleaseReport.Signer.Status
            if let signer {
                if !releaseKeys.contains(signer.name) {
                    status = .notInRole
                } else if counted.contains(signer.name) {
                    status = .duplicate
                } else {
                    status = .counted
                    counted.append(signer.name)
                }
            } else {
                status = .invalid
            }
            report.signers.append(ReleaseReport.Signer(
                keyid: signer?.publicKey.keyID ?? signature.keyID, name: signer?.name, status: status,
                example: signer?.example ?? false))
        }
        return counted
    }
}

/// A value made on another thread while the caller goes on, its result taken once. A check that
/// ends early waits for it (`wait`), so nothing it started goes on running.
private final class Background<Value, Failure: Error>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    /// Written before `done` is signalled, read after it is waited for.
    private var outcome: Result<Value, Failure>?
    private var waited = false

    init(_ make: @escaping @Sendable () throws(Failure) -> Value) {
        DispatchQueue.global().async {
            self.outcome = Result { () throws(Failure) in try make() }
            self.done.signal()
        }
    }

    func result() throws(Failure) -> Value {
        wait()
        return try outcome!.get()
    }

    /// Waits for the work to end, once.
    func wait() {
        guard !waited else { return }
        done.wait()
        waited = true
    }
}

extension VerifiedRelease {
    /// The desired state the verified manifest files declare (each was decoded as it was
    /// verified; this joins them, and checks names and references across files). Throws
    /// `ManifestError` with every problem of every file.
    public func desiredState() throws -> DesiredState {
        try ManifestLoader.join(manifests)
    }
}
