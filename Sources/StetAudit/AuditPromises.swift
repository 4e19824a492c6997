import Foundation
import StetCrypto
import StetState

/// What the state directory promises about the log's length: it holds at least as many
/// entries as its signed head (`audit/head.json`) and its local checkpoint (`audit/checkpoint`)
/// count. Both are written only after the entries they count were fsynced, so a crash can tear
/// a line past them but never leave the log shorter: a log that falls short, or is gone while
/// either is there, was cut. Writers refuse to append to it and `stet audit verify` fails.
///
/// They are kept beside the log, so whoever can replace all three with older copies can still
/// shorten the log unseen; checkpoints kept off the host (`audit verify --checkpoint`) catch
/// that.
struct AuditPromises {
    var head: AuditHead?
    var checkpoint: Checkpoint?

    static let checkpointKey = AuditLog.folder + "/" + AuditLog.checkpointName

    /// Reads both. A head or checkpoint that is there but not signed by a key of `trust` is
    /// damage (`tampered`): it is not set aside.
    static func load(from store: FileStateStore, trust: AuditTrust) throws -> AuditPromises {
        let head = try AuditHead.load(from: store, trust: trust)
        var checkpoint: Checkpoint?
        if let note = try store.read(checkpointKey) {
            let path = store.path(checkpointKey)
            do {
                checkpoint = try Checkpoint.verify(note: String(decoding: note, as: UTF8.self), trust: trust, source: path).0
            } catch let error as AuditError {
                throw AuditError(
                    .tampered,
                    "\(error.message). The checkpoint records how long the log was; nothing more is appended until the log "
                        + "is investigated (`stet audit verify`)")
            }
        }
        return AuditPromises(head: head, checkpoint: checkpoint)
    }

    /// How the local checkpoint is named in messages.
    static let checkpointSource = "its local checkpoint"

    /// Nil when a log of `size` entries (nil: there is no log file) keeps both promises;
    /// otherwise the failure naming the larger promise and the entries missing.
    func shortfall(size: Int?) -> AuditFailure? {
        let promises = [head.map { ($0.size, $0.source) }, checkpoint.map { ($0.size, Self.checkpointSource) }].compactMap { $0 }
        guard let largest = promises.max(by: { $0.0 < $1.0 }) else { return nil }
        return Self.shortfall(size: size, promised: largest.0, by: largest.1)
    }

    /// The one way Stet says a log is shorter than something promised: "the log has 4 entries;
    /// its signed head of <time> says 6: entries 4-5 are missing". Nil when it is not.
    static func shortfall(size: Int?, promised: Int, by source: String) -> AuditFailure? {
        let have = size ?? 0
        guard promised > have else { return nil }
        let missing = promised - have == 1 ? "entry \(have) is missing" : "entries \(have)-\(promised - 1) are missing"
        let log = size == nil ? "there is no log file" : "the log has \(have) \(have == 1 ? "entry" : "entries")"
        return AuditFailure(line: have + 1, check: .truncated, message: "\(log); \(source) says \(promised): \(missing)")
    }

    /// The failure when the log holds at least the head's entries, but not the bytes it hashed:
    /// every line verifies, yet history before the head was rewritten (by an operator key).
    static func rewritten(_ head: AuditHead) -> AuditFailure {
        AuditFailure(
            line: 1, check: .rewritten,
            message: "the log's first \(head.size) entries are not the ones \(head.source) describes: history was rewritten")
    }
}
