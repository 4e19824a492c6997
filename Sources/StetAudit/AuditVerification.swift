public import Foundation
import StetCrypto
import StetState

/// A read-only check of a whole log: every line (envelope, signature, payload, seq, chain),
/// the Merkle root, and that the log still holds each given checkpoint's tree.
public struct AuditVerification: Sendable {
    public struct CheckpointResult: Sendable, Encodable {
        public let source: String
        public let origin: String?
        public let size: Int?
        public let signer: String?
        public let consistent: Bool
        public let message: String
    }

    public struct Report: Sendable {
        public let path: String
        public let size: Int
        public let root: Data
        public let failure: AuditFailure?
        public let tornBytes: Int
        public let checkpoints: [CheckpointResult]

        /// True when every line, and every checkpoint, holds.
        public var passed: Bool { failure == nil && tornBytes == 0 && checkpoints.allSatisfy(\.consistent) }
    }

    public let trust: AuditTrust

    public init(trust: AuditTrust) { self.trust = trust }

    /// Verifies `STATE/audit/log.jsonl` (an absent log is an empty one) against `checkpoints`
    /// (each a source name and its note text).
    public func verify(stateDirectory: String, checkpoints: [(source: String, note: String)]) throws -> Report {
        let store = FileStateStore(root: stateDirectory)
        let path = store.path(AuditLog.logKey)
        var parsed: [(source: String, checkpoint: Checkpoint, signer: String)] = []
        var results: [CheckpointResult] = []
        for (source, note) in checkpoints {
            do {
                let (checkpoint, signer) = try Checkpoint.verify(note: note, trust: trust, source: source)
                parsed.append((source, checkpoint, signer))
            } catch {
                results.append(CheckpointResult(
                    source: source, origin: nil, size: nil, signer: nil, consistent: false, message: "\(error)"))
            }
        }
        var scanner = AuditScanner(trust: trust)
        scanner.rootsAt = Set(parsed.map(\.checkpoint.size))
        let scan: AuditScan
        if let fd = try store.open(AuditLog.logKey, flags: O_RDONLY) {
            defer { close(fd) }
            scan = try scanner.scan(fd: fd, from: .start)
        } else {
            scan = AuditScan(position: .start, failure: nil, tornBytes: 0, roots: [0: Merkle.emptyRoot])
        }
        let roots = scan.roots
        for (source, checkpoint, signer) in parsed {
            let result: (Bool, String)
            if let root = roots[checkpoint.size] {
                result = root == checkpoint.root
                    ? (true, "the log's first \(checkpoint.size) entries have this root")
                    : (false, "the log's first \(checkpoint.size) entries have another root: history was rewritten since this checkpoint")
            } else if scan.failure != nil {
                result = (false, "not reached: the log fails before entry \(checkpoint.size)")
            } else {
                result = (false, "the checkpoint has \(checkpoint.size) entries, the log only \(scan.position.size): the log was truncated")
            }
            results.append(CheckpointResult(
                source: source, origin: checkpoint.origin, size: checkpoint.size, signer: signer, consistent: result.0,
                message: result.1))
        }
        return Report(
            path: path, size: scan.position.size, root: scan.position.tree.root, failure: scan.failure,
            tornBytes: scan.tornBytes, checkpoints: results)
    }
}
