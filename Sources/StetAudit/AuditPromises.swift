import Foundation
import StetCrypto
import StetState

/// What the state directory promises about the log's length: it holds at least as many
/// entries as its signed head (`audit/head.json`) and its local checkpoint (`audit/checkpoint`)
/// count. Both are written only after the entries they count were fsynced, so a crash can tear
/// a line past them but never leave the log shorter: a log that falls short, or is gone while
/// either is there, was cut. Writers refuse to append to it and `stet audit verify` fails.
///
/// A writer signs the head of an empty log before it creates the log file, so no crash leaves
/// a log without its head: a log found without one had it removed, and with it the count it
/// must keep. Nor is a state directory that has accepted a release or pinned a trust policy
/// without a log: both are recorded in the log before they are written (`recorded`).
///
/// They are kept beside the log, so whoever can replace all three with older copies can still
/// shorten the log unseen; checkpoints kept off the host (`audit verify --checkpoint`) catch
/// that.
struct AuditPromises {
    var head: AuditHead?
    var checkpoint: Checkpoint?
    /// The path of a state file that Stet writes only after the log has recorded it (the
    /// accepted release, the pinned trust policy), when one is there.
    var recorded: String?

    static let checkpointKey = AuditLog.folder + "/" + AuditLog.checkpointName

    /// State files written only after an entry that records them: while one is there, the log
    /// has entries.
    static let recordedFirst = [AcceptedRelease.key, StateKey.pinnedTrust]

    /// The first of `recordedFirst` in `store`, as a path.
    static func recordedState(in store: FileStateStore) throws -> String? {
        for key in recordedFirst where try store.read(key) != nil { return store.path(key) }
        return nil
    }

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
        return AuditPromises(head: head, checkpoint: checkpoint, recorded: try recordedState(in: store))
    }

    /// How the local checkpoint is named in messages.
    static let checkpointSource = "its local checkpoint"

    /// Nil when a log of `size` entries (nil: there is no log file) keeps both promises and
    /// has its head; otherwise the failure naming the larger promise and the entries missing,
    /// or the head that is missing.
    func shortfall(size: Int?) -> AuditFailure? {
        let promises = [head.map { ($0.size, $0.source) }, checkpoint.map { ($0.size, Self.checkpointSource) }].compactMap { $0 }
        if let largest = promises.max(by: { $0.0 < $1.0 }), let failure = Self.shortfall(size: size, promised: largest.0, by: largest.1) {
            return failure
        }
        return head == nil ? Self.headMissing(size: size, recorded: recorded) : nil
    }

    /// The failure when there is no head although a log (of `size` entries) or a state file
    /// recorded in it (`recorded`) is there; nil when nothing was ever written.
    static func headMissing(size: Int?, recorded: String?) -> AuditFailure? {
        if let size {
            return AuditFailure(
                line: size + 1, check: .truncated,
                message: "the log has \(size) \(size == 1 ? "entry" : "entries") but no signed head: Stet signs the head before "
                    + "the log's first entry, so it was removed, and with it the count of entries the log must keep")
        }
        if let recorded {
            return AuditFailure(
                line: 1, check: .truncated,
                message: "there is no log file and no signed head, but \(recorded) is there, which Stet writes only after "
                    + "the log has recorded it: the log was removed")
        }
        return nil
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
