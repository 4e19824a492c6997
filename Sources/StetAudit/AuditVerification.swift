public import Foundation
public import StetCrypto
import StetState

/// A read-only check of a whole log: every line (envelope, signature, payload, seq, chain),
/// the Merkle root, and that the log still holds the tree of its signed head, of its local
/// checkpoint and of each given checkpoint.
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
        /// The state directory's own promises about the log (`AuditPromises`), when they are
        /// there: its signed head (`audit/head.json`) and its local checkpoint.
        public let head: CheckpointResult?
        public let localCheckpoint: CheckpointResult?
        public let checkpoints: [CheckpointResult]
        /// Where the log was restarted after damage, oldest first: every segment verifies and the
        /// chain runs on across each restart, but the damage happened (and is kept).
        public let restarts: [AuditRestart]

        public var promises: [CheckpointResult] { [head, localCheckpoint].compactMap { $0 } }

        /// What went wrong first, in a sentence, or nil when the report passed.
        public var firstProblem: String? {
            guard !passed else { return nil }
            return failure.map { "line \($0.line) fails its \($0.check.rawValue) check" }
                ?? promises.first { !$0.consistent }?.message
                ?? restarts.last.map { "the log starts after damage at \($0.entry.time); earlier entries in \($0.damagedPath)" }
                ?? (tornBytes > 0 ? "line \(size + 1) is a torn write"
                    : "checkpoint \(checkpoints.first { !$0.consistent }?.source ?? "") is not consistent with the log")
        }

        /// What the bytes past the last complete line are, and what the next writer does.
        public var tornMessage: String {
            "the last \(tornBytes) bytes lack a final newline (a write cut short by a crash); the next writer cuts "
                + "them off into \(AuditLog.brokenName) and records a recovery entry"
        }

        /// True when every line, every promise and every checkpoint holds, and the log was
        /// never damaged.
        public var passed: Bool {
            failure == nil && tornBytes == 0 && restarts.isEmpty && promises.allSatisfy(\.consistent)
                && checkpoints.allSatisfy(\.consistent)
        }
    }

    public let trust: AuditTrust

    public init(trust: AuditTrust) { self.trust = trust }

    /// Verifies `STATE/audit/log.jsonl` against its signed head, its local checkpoint and
    /// `checkpoints` (each a source name and its note text), and every segment before it when
    /// it was restarted after damage (`AuditRestart`). An absent log is an empty one,
    /// which fails only when a head or checkpoint counts entries, or the state directory holds
    /// what only a log records. A log without its head fails.
    public func verify(stateDirectory: String, checkpoints: [(source: String, note: String)]) throws -> Report {
        let store = FileStateStore(root: stateDirectory)
        let path = store.path(AuditLog.logKey)
        // The head and the local checkpoint are read like the others; a damaged one fails here
        // as a writer refuses it.
        var head: Result<AuditHead?, AuditError>
        do {
            head = .success(try AuditHead.load(from: store, trust: trust))
        } catch let error as AuditError {
            head = .failure(error)
        }
        var notes = checkpoints.map { (source: $0.source, note: $0.note, local: false) }
        if let local = try store.read(AuditPromises.checkpointKey) {
            notes.insert((store.path(AuditPromises.checkpointKey), String(decoding: local, as: UTF8.self), true), at: 0)
        }
        var parsed: [(source: String, checkpoint: Checkpoint, signer: String, local: Bool)] = []
        var failed: [(result: CheckpointResult, local: Bool)] = []
        for (source, note, local) in notes {
            do {
                let (checkpoint, signer) = try Checkpoint.verify(note: note, trust: trust, source: source)
                parsed.append((source, checkpoint, signer, local))
            } catch {
                failed.append((
                    CheckpointResult(source: source, origin: nil, size: nil, signer: nil, consistent: false, message: "\(error)"),
                    local))
            }
        }
        var scanner = AuditScanner(trust: trust)
        scanner.rootsAt = Set(parsed.map(\.checkpoint.size))
        if case .success(let loaded?) = head { scanner.rootsAt.insert(loaded.size) }
        let scan: AuditScan
        let exists: Bool
        var restarts: [AuditRestart] = []
        if let fd = try store.open(AuditLog.logKey, flags: O_RDONLY) {
            defer { close(fd) }
            exists = true
            (scan, restarts) = try AuditSegments.scanAll(fd: fd, store: store, trust: trust, rootsAt: scanner.rootsAt)
        } else {
            exists = false
            scan = AuditScan(position: .start, failure: nil, tornBytes: 0, roots: [0: Merkle.emptyRoot])
        }
        let size = exists ? scan.position.size : nil
        let roots = scan.roots

        /// Whether the log holds a tree of `promised` entries with `root`; `source` names the
        /// promise in messages.
        func holds(promised: Int, root: Data, source: String) -> (Bool, String) {
            if let have = roots[promised] {
                return have == root
                    ? (true, "the log's first \(promised) entries have this root")
                    : (false, "the log's first \(promised) entries have another root: history was rewritten since it was signed")
            }
            if scan.failure != nil { return (false, "not reached: the log fails before entry \(promised)") }
            let shortfall = AuditPromises.shortfall(size: size, promised: promised, by: source)
            return (false, shortfall?.message ?? "the log does not reach \(promised) entries")
        }

        var headResult: CheckpointResult?
        let headPath = store.path(AuditHead.key)
        switch head {
        case .failure(let error):
            headResult = CheckpointResult(
                source: headPath, origin: nil, size: nil, signer: nil, consistent: false, message: error.message)
        case .success(let loaded?):
            let (consistent, message) = holds(promised: loaded.size, root: loaded.tree.root, source: loaded.source)
            headResult = CheckpointResult(
                source: headPath, origin: nil, size: loaded.size, signer: loaded.signer, consistent: consistent,
                message: message + (consistent ? loaded.time.map { " (head written \($0))" } ?? "" : ""))
        case .success(nil):
            // No crash leaves a log, or what only a log records, without its head.
            if let missing = AuditPromises.headMissing(size: size, recorded: try AuditPromises.recordedState(in: store)) {
                headResult = CheckpointResult(
                    source: headPath, origin: nil, size: nil, signer: nil, consistent: false, message: missing.message)
            }
        }
        var localResult: CheckpointResult?
        var results: [CheckpointResult] = []
        for (result, local) in failed {
            if local { localResult = result } else { results.append(result) }
        }
        for (source, checkpoint, signer, local) in parsed {
            let (consistent, message) = holds(
                promised: checkpoint.size, root: checkpoint.root,
                source: local ? AuditPromises.checkpointSource : "the checkpoint")
            let result = CheckpointResult(
                source: source, origin: checkpoint.origin, size: checkpoint.size, signer: signer, consistent: consistent,
                message: message)
            if local { localResult = result } else { results.append(result) }
        }
        return Report(
            path: path, size: scan.position.size, root: scan.position.tree.root, failure: scan.failure,
            tornBytes: scan.tornBytes, head: headResult, localCheckpoint: localResult, checkpoints: results, restarts: restarts)
    }
}

extension AuditVerification {
    /// The checkpoints of a directory (one kept in git by CI, one per host): every signed note in
    /// it, by name. Other files (a README, .gitkeep) are not checkpoints: they are passed over
    /// and listed with the reason, never counted as failures. Hidden files are not looked at.
    public struct CheckpointDirectory: Sendable {
        public var notes: [(source: String, note: String)] = []
        public var skipped: [(file: String, reason: String)] = []

        /// Reads `directory`; throws `InputFile.Failure` when it cannot be listed.
        public init(_ directory: String) throws {
            let names: [String]
            do {
                names = try FileManager.default.contentsOfDirectory(atPath: directory)
            } catch {
                throw InputFile.Failure(path: directory, message: "cannot read the checkpoint directory")
            }
            for name in names.filter({ !$0.hasPrefix(".") }).sorted() {
                let file = (directory as NSString).appendingPathComponent(name)
                do {
                    guard let data = try InputFile.read(file, limit: InputFile.Limit.note) else { continue }
                    let text = String(decoding: data, as: UTF8.self)
                    guard SignedNote.looksSigned(text) else {
                        skipped.append((file, "not a signed note"))
                        continue
                    }
                    notes.append((file, text))
                } catch {
                    skipped.append((file, error.message))
                }
            }
        }
    }
}
