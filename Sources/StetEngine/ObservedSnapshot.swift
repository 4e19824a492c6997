public import Foundation
public import StetAudit
public import StetCore
public import StetCrypto
import StetManifest
import StetState

/// A host's observed state, signed, for planning elsewhere (`stet status --export FILE`, read
/// by `stet plan --proposal DIR --observed FILE`): CI plans a pull request against what the host
/// really runs without any access to the host.
///
/// A DSSE envelope of type `application/vnd.stet.observed+json`, signed by an operator key,
/// whose payload is JSON with sorted keys:
/// `{"type": "stet.observed/v1", "createdAt", "host", "release": {"version", "digest"},
///   "observed": ObservedState}`. It is read only as a preview's input: nothing is ever applied
/// from it. Reading it checks, in this order, each failure a `Refused` (exit 10): the envelope
/// and its payload type; a valid signature by an operator key of the policy given; the payload
/// in form (`type`, every name a DNS label equal to its key, replica indexes, ports, pids and
/// spec hashes as Stet writes them, every text and count bounded); its age (at most `maxAge`,
/// and not ahead of the clock by more than five minutes).
public struct ObservedSnapshot: Codable, Sendable, Equatable {
    public static let payloadType = "application/vnd.stet.observed+json"
    public static let type = "stet.observed/v1"
    /// How far ahead of this host's clock a snapshot may be dated (clock skew).
    public static let maximumSkew: TimeInterval = 300
    /// The default `--max-age`.
    public static let defaultMaxAge = StetDuration.seconds(3600)

    public var type: String
    public var createdAt: Date
    public var host: String
    /// The release in force on the host when it observed (`ReleaseRef.none` when none was).
    public var release: ReleaseRef
    public var observed: ObservedState

    public init(observed: ObservedState, release: ReleaseRef, host: String, createdAt: Date) {
        self.type = Self.type
        self.createdAt = createdAt
        self.host = host
        self.release = release.withoutCommit
        self.observed = observed
    }

    /// Why a snapshot is not taken: not signed by an operator, out of form, too old. Exit 10.
    public struct Refused: Error, CustomStringConvertible, Sendable {
        public let message: String
        public var description: String { message }
    }

    /// The signed envelope's JSON.
    public func signed(with key: PrivateKey) throws -> Data {
        let encoder = JSONCoding.encoder
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var envelope = Envelope(payloadType: Self.payloadType, payload: try encoder.encode(self))
        try envelope.sign(with: key)
        return envelope.json(pretty: true)
    }

    /// Writes this snapshot signed by the operator whose log is `audit` to `path`: the
    /// `export-status` entry first (under the release in force), then the file, atomically.
    public func export(to path: String, key: PrivateKey, audit: any AuditSink) throws {
        let data = try signed(with: key)
        try audit.append(AuditRecord(
            kind: .result, release: release, action: "export-status",
            reason: "observed state of \(observed.services.count) services, \(observed.backups.count) backup policies and "
                + "\(observed.monitors.count) monitors exported to \(path)",
            outcome: .ok))
        try AtomicFile.write(data, to: path, mode: 0o644)
    }

    /// Reads a snapshot from `data` (from `source`, for messages), signed by one of
    /// `operators`, at most `maxAge` old at `now`. Throws `Refused`.
    public static func open(
        _ data: Data, source: String, operators: [(name: String, publicKey: PublicKey)], maxAge: StetDuration, now: Date
    ) throws
        -> (snapshot: ObservedSnapshot, signer: String)
    {
        let envelope: Envelope
        do {
            envelope = try Envelope(json: data)
        } catch {
            throw Refused(message: "\(source): not a signed snapshot: \(error)")
        }
        guard envelope.payloadType == payloadType else {
            throw Refused(message: "\(source): payloadType is \"\(TextEscaping.excerpt(envelope.payloadType, limit: 80))\", expected \"\(payloadType)\"")
        }
        guard let signer = envelope.validSigners(among: operators.map(\.publicKey)).first else {
            throw Refused(message: "\(source): not signed by an operator key of the trust policy in force")
        }
        let snapshot = try payload(envelope.payload, source: source)
        let age = now.timeIntervalSince(snapshot.createdAt)
        guard age >= -maximumSkew else {
            throw Refused(message: "\(source): taken at \(RFC3339.format(snapshot.createdAt)), "
                + "\(StetDuration(seconds: -age).rounded) ahead of this host's clock")
        }
        guard age <= maxAge.seconds else {
            throw Refused(message: "\(source): the snapshot is \(StetDuration(seconds: age).rounded) old (taken at "
                + "\(RFC3339.format(snapshot.createdAt))); at most \(maxAge) is accepted (--max-age): export a fresh one on the host")
        }
        return (snapshot, operators.first { $0.publicKey == signer }?.name ?? signer.keyID)
    }

    /// The snapshot a signed payload holds, every name and number in form (`formProblem`).
    package static func payload(_ data: Data, source: String) throws(Refused) -> ObservedSnapshot {
        let snapshot: ObservedSnapshot
        do {
            try StrictJSON.checkUniqueKeys(data)
            snapshot = try JSONCoding.decoder.decode(ObservedSnapshot.self, from: data)
        } catch {
            throw Refused(message: "\(source): the payload is not an observed state: \(TextEscaping.excerpt("\(error)", limit: 300))")
        }
        if let problem = snapshot.formProblem() { throw Refused(message: "\(source): \(problem)") }
        return snapshot
    }

    // MARK: - Form

    /// The most resources of each kind, snapshots per policy, and characters per text.
    static let maximumResources = 100_000
    static let maximumSnapshots = 1_000_000
    static let maximumText = 4096

    /// The first thing out of the form Stet writes, or nil. Everything here is shown or hashed
    /// later (names become `ResourceID`s, reasons quote texts): a signature says who wrote the
    /// snapshot, not that its content is safe to use.
    func formProblem() -> String? {
        guard type == Self.type else { return "type is \"\(TextEscaping.excerpt(type, limit: 40))\", expected \"\(Self.type)\"" }
        if host.isEmpty || host.utf8.count > 255 || host.unicodeScalars.contains(where: { TextEscaping.needsEscape($0, keepNewlines: false) }) {
            return "host: expected a host name of 1 to 255 printable characters"
        }
        if !release.isNone, release.version < 1 || ReleaseStore.key(release.digest) == nil || release.commit != nil {
            return "release: expected a version from 1 and a digest sha256: and 64 lowercase hex digits"
        }
        let counts = [observed.services.count, observed.backups.count, observed.monitors.count]
        if counts.contains(where: { $0 > Self.maximumResources }) { return "observed: more than \(Self.maximumResources) resources of one kind" }
        for (name, service) in observed.services {
            let at = "observed.services[\"\(TextEscaping.excerpt(name, limit: 70))\"]"
            guard ResourceID.isValidName(name), service.name == name else { return "\(at): expected a DNS label as the name, equal to its key" }
            for (index, replica) in service.replicas {
                guard ResourceID.isValidReplica(index), replica.index == index else {
                    return "\(at).replicas: expected indexes from 0 to \(Service.maximumReplicas - 1), each equal to its key"
                }
                if let problem = Self.problem(replica) { return "\(at).replicas[\(index)].\(problem)" }
            }
        }
        for (name, backup) in observed.backups {
            let at = "observed.backups[\"\(TextEscaping.excerpt(name, limit: 70))\"]"
            guard ResourceID.isValidName(name), backup.name == name else { return "\(at): expected a DNS label as the name, equal to its key" }
            guard backup.snapshots.count <= Self.maximumSnapshots else { return "\(at).snapshots: more than \(Self.maximumSnapshots)" }
            if backup.snapshots.contains(where: { !Self.isHex($0.id, upTo: 64) }) { return "\(at).snapshots: expected ids of 1 to 64 hex digits" }
            var texts = [backup.lastCheck?.detail, backup.lastRestoreTest?.detail]
            if case .unreadable(let why) = backup.repository { texts.append(why) }
            if texts.contains(where: { ($0?.utf8.count ?? 0) > Self.maximumText }) { return "\(at): a text longer than \(Self.maximumText) bytes" }
        }
        for (name, monitor) in observed.monitors {
            let at = "observed.monitors[\"\(TextEscaping.excerpt(name, limit: 70))\"]"
            guard ResourceID.isValidName(name), monitor.name == name else { return "\(at): expected a DNS label as the name, equal to its key" }
            guard Self.isDigest(monitor.specHash) else { return "\(at).specHash: expected sha256: and 64 lowercase hex digits" }
            if (monitor.state.lastDetail?.utf8.count ?? 0) > Self.maximumText { return "\(at).state.lastDetail: longer than \(Self.maximumText) bytes" }
        }
        return nil
    }

    static func problem(_ replica: ObservedReplica) -> String? {
        if replica.pid < 0 { return "pid: expected a process id from 0" }
        if let port = replica.port, !(1...65535).contains(port) { return "port: expected 1 to 65535" }
        if !isDigest(replica.specHash) { return "specHash: expected sha256: and 64 lowercase hex digits" }
        if replica.restarts < 0 { return "restarts: expected a count from 0" }
        if (replica.lastExit?.utf8.count ?? 0) > maximumText { return "lastExit: longer than \(maximumText) bytes" }
        return nil
    }

    /// `sha256:` and 64 lowercase hex digits, or empty (a record not yet started from a spec).
    static func isDigest(_ text: String) -> Bool {
        text.isEmpty || text.hasPrefix("sha256:") && text.utf8.count == 71 && text.utf8.dropFirst(7).allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    static func isHex(_ text: String, upTo length: Int) -> Bool {
        (1...length).contains(text.utf8.count) && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }
}
