import Foundation
import StetCrypto
import StetState

/// The resume point a writer leaves in `audit/head.json`: how many entries and bytes it had
/// checked, the SHA-256 of those bytes, and the tree, signed by its operator key. The next
/// writer hashes the same bytes (fast) instead of verifying every signature again (slow); if
/// a single byte changed, the digests differ and it verifies everything from the start.
enum AuditHead {
    static let payloadType = "application/vnd.stet.audit-head+json"

    private struct Payload: Codable {
        var size: Int
        var bytes: Int
        var prefixDigest: String
        var lastLeaf: String
        var peaks: [String]
    }

    static let key = AuditLog.folder + "/" + AuditLog.headName

    static func store(_ position: AuditPosition, in store: FileStateStore, fd: Int32, key: PrivateKey) throws {
        let payload = Payload(
            size: position.size, bytes: position.bytes, prefixDigest: try prefixDigest(fd: fd, bytes: position.bytes).hexString,
            lastLeaf: position.prev, peaks: position.tree.peaks.map(\.hexString))
        var envelope = Envelope(payloadType: payloadType, payload: try JSONEncoder().encode(payload))
        try envelope.sign(with: key)
        try store.write(Self.key, envelope.json())
    }

    /// The position recorded in the head, if the head is signed by a trusted key and the log
    /// still starts with exactly the bytes it describes; nil otherwise.
    static func resume(store: FileStateStore, fd: Int32, trust: AuditTrust) throws -> AuditPosition? {
        guard let data = try store.read(Self.key),
            let envelope = try? Envelope(json: data), envelope.payloadType == payloadType,
            !envelope.validSigners(among: trust.keys.values.map(\.publicKey)).isEmpty,
            let payload = try? JSONDecoder().decode(Payload.self, from: envelope.payload),
            let tree = MerkleAccumulator(size: payload.size, peaks: payload.peaks.compactMap { Data(hexString: $0) })
        else { return nil }
        var info = stat()
        guard fstat(fd, &info) == 0, Int(info.st_size) >= payload.bytes,
            try prefixDigest(fd: fd, bytes: payload.bytes).hexString == payload.prefixDigest
        else { return nil }
        let lastLeaf = payload.lastLeaf.isEmpty ? nil : Data(hexString: payload.lastLeaf)
        guard (payload.size == 0) == (lastLeaf == nil) else { return nil }
        return AuditPosition(size: payload.size, bytes: payload.bytes, tree: tree, lastLeaf: lastLeaf)
    }

    /// SHA-256 of the first `bytes` bytes of the file.
    static func prefixDigest(fd: Int32, bytes: Int) throws -> Data {
        let hasher = SHA256()
        let block = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: block, alignment: 16)
        defer { buffer.deallocate() }
        var offset = 0
        while offset < bytes {
            let n = pread(fd, buffer.baseAddress, min(block, bytes - offset), off_t(offset))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw AuditError.io("read the audit log", n < 0 ? errno : EIO) }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            offset += n
        }
        return hasher.finalize()
    }
}
