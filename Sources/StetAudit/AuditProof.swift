import Foundation
import StetCrypto
import StetState

/// An inclusion proof of one entry in a signed checkpoint, self-contained: the entry's line,
/// the audit path, and the checkpoint note. Anyone with the trust policy can check it offline.
public struct AuditProof: Codable, Equatable, Sendable {
    public static let format = "stet.audit.proof/v1"

    public var format: String
    public var seq: Int
    /// The log line, without its newline.
    public var entry: String
    /// Base64 of the entry's leaf hash.
    public var leafHash: String
    public var treeSize: Int
    /// Base64 hashes, leaf to root.
    public var proof: [String]
    /// The signed checkpoint note.
    public var checkpoint: String

    /// Builds the proof of entry `seq` in the checkpoint stored beside the log.
    public static func make(stateDirectory: String, seq: Int, trust: AuditTrust) throws -> AuditProof {
        let store = FileStateStore(root: stateDirectory)
        let checkpointPath = store.path(AuditLog.folder + "/" + AuditLog.checkpointName)
        guard let noteData = try store.read(AuditLog.folder + "/" + AuditLog.checkpointName) else {
            throw AuditError(.invalid, "no checkpoint at \(checkpointPath): run `stet audit checkpoint` first")
        }
        let note = String(decoding: noteData, as: UTF8.self)
        let (checkpoint, _) = try Checkpoint.verify(note: note, trust: trust, source: checkpointPath)
        guard seq >= 0, seq < checkpoint.size else {
            throw AuditError(
                .invalid,
                "entry \(seq) is not in the current checkpoint (\(checkpoint.size) entries); run `stet audit checkpoint` to take a newer one")
        }
        var builder = MerkleProofBuilder(ranges: MerkleProofShape.inclusion(index: seq, size: checkpoint.size))
        var line: AuditScanner.Line?
        let path = store.path(AuditLog.logKey)
        guard let fd = try store.open(AuditLog.logKey, flags: O_RDONLY) else { throw AuditError.io("open \(path)", ENOENT) }
        defer { close(fd) }
        let (scan, _) = try AuditSegments.scanAll(fd: fd, store: store, trust: trust) { visited in
            builder.add(leafHash: visited.leafHash)
            if visited.entry.seq == seq { line = visited }
            if visited.tree.size == checkpoint.size {
                guard visited.tree.root == checkpoint.root else {
                    throw AuditError(.invalid, "the log no longer matches the stored checkpoint (history was rewritten)")
                }
                return false
            }
            return true
        }
        if let failure = scan.failure { throw AuditError.tampered(failure, path: path) }
        guard let line, let hashes = builder.proof else {
            throw AuditError(.invalid, "the log is shorter than its checkpoint (\(checkpoint.size) entries)")
        }
        return AuditProof(
            format: format, seq: seq, entry: String(decoding: line.text, as: UTF8.self),
            leafHash: line.leafHash.base64EncodedString(), treeSize: checkpoint.size,
            proof: hashes.map { $0.base64EncodedString() }, checkpoint: note)
    }

    /// Checks the proof: the checkpoint is signed by a trusted operator key, the entry line is
    /// signed by one too and has this `seq`, its leaf hash is the one given, and the path leads
    /// from it to the checkpoint's root. Returns the checkpoint and the entry.
    public func verify(trust: AuditTrust, source: String) throws -> (Checkpoint, AuditEntry) {
        func fail(_ message: String) -> AuditError { AuditError(.invalid, "\(source): \(message)") }
        guard format == Self.format else { throw fail("format is \"\(format)\", expected \"\(Self.format)\"") }
        let (checkpoint, _) = try Checkpoint.verify(note: checkpoint, trust: trust, source: source)
        guard treeSize == checkpoint.size else {
            throw fail("treeSize \(treeSize) is not the checkpoint's size \(checkpoint.size)")
        }
        let parts = try Data(entry.utf8).withUnsafeBytes { raw in
            switch AuditLine.parse(raw) {
            case .success(let parts): return parts
            case .failure(let error): throw fail("entry: \(error.message)")
            }
        }
        guard let key = trust.key(id: parts.keyID), key.publicKey.isValidSignature(parts.signature, for: parts.signedBytes)
        else { throw fail("entry: not signed by an operator key of the trust policy") }
        let decoded: AuditEntry
        do {
            decoded = try AuditEntry.decode(payload: parts.payload)
        } catch {
            throw fail("entry: the payload is not an audit entry")
        }
        guard decoded.seq == seq else { throw fail("the entry's seq is \(decoded.seq), the proof's \(seq)") }
        let leaf = Merkle.leafHash(parts.payload)
        guard Data(base64Encoded: leafHash) == leaf else { throw fail("leafHash is not the entry's leaf hash") }
        let path = proof.compactMap { Data(base64Encoded: $0) }
        guard path.count == proof.count,
            seq >= 0, treeSize > 0,
            MerkleVerifier.verifyInclusion(leafHash: leaf, index: UInt64(seq), size: UInt64(treeSize), proof: path, root: checkpoint.root)
        else { throw fail("the audit path does not lead from entry \(seq) to the checkpoint's root") }
        return (checkpoint, decoded)
    }
}
