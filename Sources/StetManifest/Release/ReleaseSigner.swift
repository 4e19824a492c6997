public import Foundation
public import StetCore
public import StetCrypto
import StetState

/// A release that could not be signed: invalid manifests, an unsafe directory, a key the trust
/// policy does not allow, or an envelope that cannot be read.
public struct SigningError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { message }
}

/// Makes or extends `release.dsse.json`.
///
/// The index is built from the directory. When the files are unchanged since the envelope's
/// payload, the payload is kept and the new signature joins the existing ones (a second
/// reviewer). When they changed, or `renew` asks for a fresh expiry, the version goes up by one
/// and earlier signatures are dropped, since they signed other content.
public struct ReleaseSigner: Sendable {
    public struct Result: Sendable, Encodable {
        public var version: Int
        public var digest: String
        /// True when a new payload (a new version) was written.
        public var newVersion: Bool
        public var signatures: Int
        public var files: Int
        public var expires: Date
        public var warnings: [String]
    }

    public let directory: String
    public let key: PrivateKey
    /// The repository's policy: the key must be in role `release` unless `force`.
    public let trust: TrustPolicy?
    public var force = false
    public var renew = false
    public var validity: StetDuration = StetDuration(milliseconds: 30 * 86_400_000)

    public init(directory: String, key: PrivateKey, trust: TrustPolicy?) {
        self.directory = directory
        self.key = key
        self.trust = trust
    }

    public func sign(now: Date) throws -> Result {
        var warnings: [String] = []
        if !force {
            guard let trust else {
                throw SigningError(message: "no trust policy to check the key against; pass --trust FILE, or --force to sign anyway")
            }
            let releaseKeys = trust.keys(in: .release)
            guard let signer = releaseKeys.first(where: { $0.publicKey == key.publicKey }) else {
                throw SigningError(message:
                    "key \(key.publicKey.keyID) is not in the trust policy's release role "
                    + "(\(trust.roles[.release]?.keys.joined(separator: ", ") ?? "")); its signature would not count. "
                    + "Use --force to sign anyway")
            }
            if signer.example { warnings.append("signing with \(signer.name), a key marked example-only") }
        }
        let files = try indexFiles()
        let envelopePath = ManifestLoader.join(directory, ReleaseIndex.envelopeName)
        var envelope: Envelope
        var newVersion = true
        if let existing = try existingRelease(at: envelopePath) {
            if existing.index.files == files, !renew {
                envelope = existing.envelope
                newVersion = false
                if existing.index.expires <= now {
                    warnings.append("release version \(existing.index.version) has expired; sign with --renew to extend it")
                }
            } else {
                guard existing.index.version < Int.max else {
                    throw SigningError(message: "\(envelopePath): version \(existing.index.version) has no next version")
                }
                envelope = makeEnvelope(version: existing.index.version + 1, files: files, now: now)
            }
        } else {
            envelope = makeEnvelope(version: 1, files: files, now: now)
        }
        try envelope.sign(with: key)
        try AtomicFile.write(envelope.json(pretty: true), to: envelopePath)
        let index = try ReleaseIndex.decode(envelope.payload)
        return Result(
            version: index.version, digest: envelope.payload.sha256Reference, newVersion: newVersion,
            signatures: envelope.signatures.count, files: files.count, expires: index.expires, warnings: warnings)
    }

    private func makeEnvelope(version: Int, files: [String: String], now: Date) -> Envelope {
        let created = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))
        let index = ReleaseIndex(
            version: version, created: created, expires: created.addingTimeInterval(validity.seconds), files: files)
        return Envelope(payloadType: ReleaseIndex.payloadType, payload: index.encoded())
    }

    /// Digests of every manifest file, after checking the directory is safe and valid to sign.
    private func indexFiles() throws -> [String: String] {
        let dir = ManifestDirectory(path: directory)
        let listing = try dir.list()
        if let escape = listing.symlinks.first(where: { !dir.staysInside($0) }) {
            throw SigningError(message: "\(ManifestLoader.join(directory, escape)) is a symbolic link that leads outside \(directory)")
        }
        var files: [String: String] = [:]
        var contents: [(name: String, bytes: Data)] = []
        if let (first, second) = ManifestDirectory.normalisationClash(listing.manifests) {
            throw SigningError(message: "\(first) and \(second) are the same name in Unicode normal form; rename one")
        }
        for relative in listing.manifests {
            let full = ManifestLoader.join(directory, relative)
            if let problem = ManifestDirectory.nameProblem(relative) { throw SigningError(message: "\(full) \(problem)") }
            guard let bytes = try InputFile.read(full, limit: ManifestLoader.maximumFileSize) else {
                throw SigningError(message: "cannot read \(full)")
            }
            files[relative] = bytes.sha256Reference
            contents.append((full, bytes))
        }
        guard !files.isEmpty else { throw SigningError(message: "\(directory) has no .yaml or .yml files to sign") }
        _ = try ManifestLoader.decode(files: contents)
        return files
    }

    private func existingRelease(at path: String) throws -> (envelope: Envelope, index: ReleaseIndex)? {
        guard let bytes = try InputFile.read(path, limit: InputFile.Limit.releaseEnvelope) else { return nil }
        do {
            let envelope = try Envelope(json: bytes)
            guard envelope.payloadType == ReleaseIndex.payloadType else {
                throw SigningError(message: "\(path) has payloadType \"\(envelope.payloadType)\"; remove it to start a new release")
            }
            return (envelope, try ReleaseIndex.decode(envelope.payload))
        } catch let error as SigningError {
            throw error
        } catch {
            throw SigningError(message: "\(path) cannot be read (\(error)); remove it to start a new release")
        }
    }
}
