import Foundation
import StetCore
import StetCrypto
import StetState

/// What a writer leaves in `audit/head.json` after every append, once the entries are fsynced:
/// how many entries and bytes the log then held, the SHA-256 of those bytes, the tree and the
/// time, signed by its operator key.
///
/// It serves twice. As a resume point, the next writer hashes the same bytes (fast) instead of
/// verifying every signature again (slow); if a single byte changed, the digests differ and it
/// verifies everything from the start. As a promise, it is a lower bound: the log grows past
/// its head but never shrinks below it, and since the head is written only after the fsync, no
/// crash can leave a log shorter than its head (`AuditPromises`).
struct AuditHead: Sendable {
    static let payloadType = "application/vnd.stet.audit-head+json"
    static let key = AuditLog.folder + "/" + AuditLog.headName

    private struct Payload: Codable {
        var size: Int
        var bytes: Int
        var prefixDigest: String
        var lastLeaf: String
        var peaks: [String]
        /// When it was written (RFC 3339 UTC); absent from heads written before it was added.
        var time: String?
        /// The `seq` of `log.jsonl`'s first line when the log was restarted after damage
        /// (`AuditRestart`); absent for 0.
        var base: Int?
        /// The time of the restart entry that begins `log.jsonl`, which names the segment;
        /// absent for a log never restarted.
        var segment: String?
        /// The tree's peaks and the last leaf hash before `log.jsonl`'s first line, when `base`
        /// is not 0: a writer resumes the file from here without reading the damaged files.
        var startPeaks: [String]?
        var startLeaf: String?
    }

    let size: Int
    let bytes: Int
    let prefixDigest: Data
    let lastLeaf: Data?
    let tree: MerkleAccumulator
    let time: String?
    /// The `seq` of the first line of the log file it describes.
    let base: Int
    /// The restart time that names the segment it describes (nil: the first segment).
    let segment: String?
    /// Where that file begins: its first entry's seq (`base`), the tree and the last leaf
    /// before it.
    let start: AuditPosition
    /// Name of the operator key that signed it.
    let signer: String

    /// How messages name it: "its signed head of <time>".
    var source: String { "its signed head" + (time.map { " of \($0)" } ?? "") }

    /// Signs and writes the head for `position`; `prefix` has hashed exactly its bytes.
    static func store(
        _ position: AuditPosition, start: AuditPosition, segment: String?, prefix: SHA256, time: Date, in store: FileStateStore,
        key: PrivateKey
    ) throws {
        let payload = Payload(
            size: position.size, bytes: position.bytes, prefixDigest: prefix.copy().finalize().hexString,
            lastLeaf: position.prev, peaks: position.tree.peaks.map(\.hexString),
            time: RFC3339.format(time, milliseconds: true), base: start.size == 0 ? nil : start.size,
            segment: segment, startPeaks: start.size == 0 ? nil : start.tree.peaks.map(\.hexString),
            startLeaf: start.size == 0 ? nil : start.prev)
        var envelope = Envelope(payloadType: payloadType, payload: try JSONEncoder().encode(payload))
        try envelope.sign(with: key)
        try store.write(Self.key, envelope.json())
    }

    /// The head in `store`; nil when there is none. A head that is there but does not parse, or
    /// is not signed by a key of `trust`, is damage: `tampered`, since an attacker who removes
    /// entries would rather make the head unreadable than let it count them.
    static func load(from store: FileStateStore, trust: AuditTrust) throws -> AuditHead? {
        guard let data = try store.read(key) else { return nil }
        func damaged(_ detail: String) -> AuditError {
            AuditError(
                .tampered,
                "\(store.path(key)) is damaged: \(detail). It records how long the log was; nothing more is appended until "
                    + "the log is investigated (`stet audit verify`)")
        }
        guard let envelope = try? Envelope(json: data), envelope.payloadType == payloadType else {
            throw damaged("not a DSSE envelope of type \(payloadType)")
        }
        guard let signer = envelope.validSigners(among: trust.keys.values.map(\.publicKey)).first,
            let name = trust.key(id: signer.keyID)?.name
        else { throw damaged("no valid signature by an operator key of the trust policy") }
        guard (try? StrictJSON.checkUniqueKeys(envelope.payload)) != nil,
            let payload = try? JSONDecoder().decode(Payload.self, from: envelope.payload)
        else {
            throw damaged("the payload is not a head (size, bytes, prefixDigest, lastLeaf, peaks)")
        }
        let lastLeaf = payload.lastLeaf.isEmpty ? nil : Data(hexString: payload.lastLeaf)
        guard payload.size >= 0, payload.bytes >= payload.size,
            let digest = Data(hexString: payload.prefixDigest), digest.count == SHA256.byteCount,
            let tree = MerkleAccumulator(size: payload.size, peaks: payload.peaks.compactMap { Data(hexString: $0) }),
            payload.lastLeaf.isEmpty || lastLeaf?.count == Merkle.hashSize, (payload.size == 0) == (lastLeaf == nil),
            payload.time.map({ RFC3339.parse($0) != nil }) ?? true,
            (0...payload.size).contains(payload.base ?? 0), payload.segment.map({ RFC3339.parse($0) != nil }) ?? true,
            let start = Self.start(base: payload.base ?? 0, peaks: payload.startPeaks, leaf: payload.startLeaf)
        else { throw damaged("its sizes, digests or tree do not fit together") }
        return AuditHead(
            size: payload.size, bytes: payload.bytes, prefixDigest: digest, lastLeaf: lastLeaf, tree: tree, time: payload.time,
            base: payload.base ?? 0, segment: payload.segment, start: start, signer: name)
    }

    /// The position where the file begins, from a head's `base`, `startPeaks` and `startLeaf`.
    private static func start(base: Int, peaks: [String]?, leaf: String?) -> AuditPosition? {
        guard base > 0 else { return peaks == nil && leaf == nil ? .start : nil }
        guard let peaks, let leaf, let lastLeaf = Data(hexString: leaf), lastLeaf.count == Merkle.hashSize,
            let tree = MerkleAccumulator(size: base, peaks: peaks.compactMap { Data(hexString: $0) })
        else { return nil }
        return AuditPosition(size: base, bytes: 0, tree: tree, lastLeaf: lastLeaf, base: base)
    }

    /// The position to resume from, and a hasher that has hashed the bytes before it, when
    /// the log starts with exactly the bytes the head describes; nil when it does not (shorter,
    /// or other bytes).
    func resume(fd: Int32) throws -> (AuditPosition, SHA256)? {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw AuditError.io("stat the audit log", errno) }
        guard Int(info.st_size) >= bytes else { return nil }
        let hasher = try Self.hashPrefix(fd: fd, from: 0, to: bytes, into: SHA256())
        guard hasher.copy().finalize() == prefixDigest else { return nil }
        return (AuditPosition(size: size, bytes: bytes, tree: tree, lastLeaf: lastLeaf, base: base), hasher)
    }

    /// Feeds bytes `start..<end` of the file to `hasher` and returns it.
    static func hashPrefix(fd: Int32, from start: Int, to end: Int, into hasher: SHA256) throws -> SHA256 {
        let block = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: block, alignment: 16)
        defer { buffer.deallocate() }
        var offset = start
        while offset < end {
            let n = pread(fd, buffer.baseAddress, min(block, end - offset), off_t(offset))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw AuditError.io("read the audit log", n < 0 ? errno : EIO) }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            offset += n
        }
        return hasher
    }
}
