public import Foundation
public import StetCrypto
public import StetCore
import StetState

/// The writer of `STATE/audit/log.jsonl`. Opening it checks the log (and cuts off a torn last
/// write, keeping it in `log.jsonl.broken` and recording a `recovery` entry); each `append`
/// writes a group of entries with one fsync, then the signed head (`AuditHead`). Writers in
/// several processes take turns: each append holds an exclusive `flock` on the log, first reads
/// and checks what others appended, then writes.
///
/// A complete line that fails a check is damage, and damage must not stop Stet from acting: the
/// writer keeps the damaged file as `audit/damaged/log-<time>.jsonl` and restarts the log with a
/// `recovery` entry that continues the chain from the last good entry (`AuditRestart`); each
/// restart is reported in `damages`. A log shorter than what its signed head or local
/// checkpoint count (`AuditPromises`), cut below its head, missing, or rewritten under its head
/// is refused as before: nothing more is appended. The log and everything beside it are state
/// files: never opened through a link, refused when another user could change them
/// (`FileStateStore.open`).
public final class AuditLog: @unchecked Sendable {
    public static let folder = "audit"
    public static let logName = "log.jsonl"
    public static let brokenName = "log.jsonl.broken"
    public static let headName = "head.json"
    public static let checkpointName = "checkpoint"
    /// The log as a key of the state store.
    public static let logKey = folder + "/" + logName

    public let directory: String
    public let origin: String
    private let store: FileStateStore
    private var fd: Int32
    private let trust: AuditTrust
    private let key: PrivateKey
    private let actor: AuditEntry.Actor
    private let release: ReleaseRef
    private let lockTimeout: Double
    /// One writer at a time in this process, in turn. Not a lock of the thread that takes it:
    /// the fsync of an intent (`appendBeforeAction`) gives the turn back on the log's own queue.
    private let turn = AuditTurn()
    /// Where the fsyncs of intents run, beside the actions they come before.
    private let syncQueue = DispatchQueue(label: "stet.audit.sync", qos: .userInitiated)
    private var position: AuditPosition
    /// SHA-256 of the log's bytes up to `position.bytes`, kept going so that each head costs
    /// only the bytes appended since.
    private var prefix = SHA256()
    private var closed = false
    /// The time of the restart that begins the file (`AuditHead.segment`); nil for a log never
    /// restarted.
    private var segment: String?
    /// Where the file begins: the entries, tree and last leaf before its first line.
    private var start = AuditPosition.start
    /// The file must be looked at afresh before anything is appended: just opened, or another
    /// writer restarted the log meanwhile.
    private var needsResume = true
    private var resumedOnce = false
    private var found: [AuditDamage] = []

    public var path: String { (directory as NSString).appendingPathComponent(Self.logName) }
    /// Entries in the log as this writer last saw it.
    public var size: Int { turn.hold { position.size } }
    /// The key id this writer signs with: the acting operator's.
    public var signerKeyID: String { actor.keyid }
    /// Every restart after damage this writer made or saw since it was opened, oldest first.
    public var damages: [AuditDamage] { turn.hold { found } }

    /// Paths of the audit files inside a state directory.
    public static func directory(in stateDirectory: String) -> String {
        (stateDirectory as NSString).appendingPathComponent(folder)
    }

    /// Opens the log in `stateDirectory` for appending as `key`, which must be one of `trust`'s
    /// keys. `release` is recorded in a recovery entry, if one is needed. Waits up to
    /// `lockTimeout` seconds for another writer.
    public init(
        stateDirectory: String, trust: AuditTrust, key: PrivateKey, host: String, via: String,
        release: ReleaseRef, origin: String = Checkpoint.defaultOrigin, lockTimeout: Double = 30,
        now: Date = Date()
    ) throws {
        guard let trusted = trust.key(id: key.publicKey.keyID) else {
            throw AuditError(
                .untrustedKey,
                "key \(key.publicKey.keyID.prefix(16))… is not an operator key of the trust policy in force; "
                    + "audit entries, and so every action, must be signed by a key of the operator role")
        }
        store = FileStateStore(root: stateDirectory)
        directory = try store.makeFolder(Self.folder)
        self.origin = origin
        self.trust = trust
        self.key = key
        self.release = release
        self.lockTimeout = lockTimeout
        actor = AuditEntry.Actor(keyid: key.publicKey.keyID, name: trusted.name, host: host, via: via)
        var promises = try AuditPromises.load(from: store, trust: trust)
        let logPath = store.path(Self.logKey)
        var opened = try store.open(Self.logKey, flags: O_RDWR | O_APPEND)
        if opened == nil {
            // A log that is gone while its head or checkpoint counts entries, or while the state
            // holds what only a log records, was removed.
            if let failure = promises.shortfall(size: nil) { throw AuditError.tampered(failure, path: logPath) }
            // The head of the empty log comes first: no crash leaves a log without its head.
            if promises.head == nil {
                try AuditHead.store(.start, start: .start, segment: nil, prefix: SHA256(), time: now, in: store, key: key)
                promises = try AuditPromises.load(from: store, trust: trust)
            }
            opened = try store.open(Self.logKey, flags: O_RDWR | O_APPEND, create: true)
        }
        guard let opened else { throw AuditError.io("open \(logPath)", ENOENT) }
        fd = opened
        position = .start
        // A throwing init still runs deinit, which closes `fd`: closing it here too would close
        // whatever file another thread opened under the same number meanwhile.
        try withFileLock(now: now) {}
    }

    deinit {
        if !closed { Glibc.close(fd) }
    }

    /// Appends `records` as consecutive entries with one fsync; they count as written once this
    /// returns. Returns the entries as written.
    @discardableResult
    public func append(_ records: [AuditRecord], now: Date = Date()) throws -> [AuditEntry] {
        try append(records, now: now, head: true)
    }

    /// Appends an action's intent (with the records that go with it) and returns as soon as
    /// the entries are written: their fsync runs on the log's queue meanwhile, beside the
    /// action's own preparations, and the action waits for it (`AuditSync.wait`) before it
    /// changes anything. Until the fsync ends the log is held, by this process and against
    /// others, so nothing is appended after entries that may yet be taken out: a failed fsync
    /// cuts them off again, as a failed `append` does, and `wait` throws why.
    ///
    /// The signed head is left to the next append or checkpoint (the action's result follows).
    /// Until then the head counts the entries before these; a crash meanwhile leaves the log
    /// longer than its head, which the next writer checks past the head as always.
    public func appendBeforeAction(_ records: [AuditRecord], now: Date = Date()) throws -> AuditSync {
        guard !records.isEmpty else { return .durable }
        turn.take()
        let written: Written
        do {
            written = try withFileLock(now: now, keepingIt: true) {
                try catchUp(now: now)
                return try writeAhead(records, now: now)
            }
        } catch {
            turn.give()
            throw error
        }
        let sync = AuditSync()
        let fd = self.fd
        syncQueue.async { [self] in
            let result = Result { try settle(written, syncError: fsync(fd) == 0 ? nil : errno) }
            flock(fd, LOCK_UN)
            turn.give()
            sync.finish(result)
        }
        return sync
    }

    private func append(_ records: [AuditRecord], now: Date, head: Bool) throws -> [AuditEntry] {
        guard !records.isEmpty else { return [] }
        return try turn.hold {
            try withFileLock(now: now) {
                try catchUp(now: now)
                return try write(records, now: now, head: head)
            }
        }
    }

    /// Signs and stores a checkpoint of the log as it is now (`audit/checkpoint`) and the
    /// resume point that lets the next writer skip re-verifying signatures (`audit/head.json`).
    @discardableResult
    public func checkpoint(origin: String? = nil, now: Date = Date()) throws -> SignedNote {
        try turn.hold {
            try withFileLock(now: now) {
                try catchUp(now: now)
                return try storeCheckpoint(origin: origin ?? self.origin, now: now)
            }
        }
    }

    /// Stores a checkpoint and releases the file. Further appends are an error.
    public func close() throws {
        guard !closed else { return }
        try checkpoint()
        turn.hold {
            closed = true
            Glibc.close(fd)
        }
    }

    // MARK: - Under the lock

    private func write(_ records: [AuditRecord], now: Date, head: Bool) throws -> [AuditEntry] {
        let written = try writeAhead(records, now: now)
        try settle(written, syncError: fsync(fd) == 0 ? nil : errno)
        let entries = written.entries
        guard head else { return entries }
        do {
            try AuditHead.store(position, start: start, segment: segment, prefix: prefix, time: now, in: store, key: key)
        } catch {
            throw AuditError(
                .io,
                "entries \(entries[0].seq)-\(position.size - 1) were written to \(path), but its signed head could not be "
                    + "updated: \(error)")
        }
        return entries
    }

    /// Entries written to the log and not yet fsynced: the log's position is still before them.
    struct Written: Sendable {
        let bytes: Data
        let entries: [AuditEntry]
        let next: AuditPosition
    }

    /// Signs `records` and writes them after `position`, without the fsync that makes them count
    /// (`settle`). A failed write leaves nothing of them in the file.
    private func writeAhead(_ records: [AuditRecord], now: Date) throws -> Written {
        guard !closed else { throw AuditError(.io, "the audit log is closed") }
        let (bytes, entries, next) = try prepare(records, after: position, time: RFC3339.format(now, milliseconds: true))
        do {
            try AtomicFile.writeAll(bytes, to: fd, path: path)
        } catch {
            cutOff()
            throw error
        }
        return Written(bytes: bytes, entries: entries, next: next)
    }

    /// After the fsync of `written` (`syncError` the errno of one that failed): the entries
    /// count, or they are cut off again and the failure is thrown.
    private func settle(_ written: Written, syncError: Int32?) throws {
        if let syncError {
            cutOff()
            throw AuditError.io("fsync \(path)", syncError)
        }
        position = written.next
        prefix.update(written.bytes)
    }

    /// Leaves no partial entry behind, cutting the file back to `position`: the next writer would
    /// take what follows it for a torn write.
    private func cutOff() {
        _ = ftruncate(fd, off_t(position.bytes))
        _ = fsync(fd)
    }

    /// The signed lines of `records` as entries following `start`, and the position after them.
    private func prepare(_ records: [AuditRecord], after start: AuditPosition, time: String) throws
        -> (bytes: Data, entries: [AuditEntry], next: AuditPosition)
    {
        var next = start
        var entries: [AuditEntry] = []
        var payloads: [Data] = []
        // The chain is sequential (each prev is the leaf hash before it); the signatures are
        // not, so a large group signs on every core.
        for record in records {
            let entry = record.entry(seq: next.size, time: time, prev: next.prev, actor: actor)
            let payload = try entry.payload()
            let leaf = Merkle.leafHash(payload)
            next.tree.append(leafHash: leaf)
            next.lastLeaf = leaf
            next.size += 1
            entries.append(entry)
            payloads.append(payload)
        }
        let lines = try signLines(payloads)
        var bytes = Data(capacity: lines.reduce(0) { $0 + $1.count })
        for line in lines { bytes.append(line) }
        next.bytes += bytes.count
        return (bytes, entries, next)
    }

    /// Signed lines for `payloads`, in order; on all cores when there are many.
    private func signLines(_ payloads: [Data]) throws -> [Data] {
        let key = self.key
        // The actor's key id is this key's, worked out once (deriving it hashes the public key).
        let keyID = actor.keyid
        @Sendable func line(_ payload: Data) throws -> Data {
            let signature = try key.signature(
                for: Envelope.preAuthenticationEncoding(payloadType: AuditEntry.payloadType, payload: payload))
            return AuditLine.line(payload: payload, keyID: keyID, signature: signature)
        }
        guard payloads.count >= 64 else { return try payloads.map(line) }
        // Asked only here: Foundation reads the cgroup's files for it on every call.
        let workers = ProcessInfo.processInfo.activeProcessorCount
        guard workers > 1 else { return try payloads.map(line) }
        var results = [Result<Data, any Error>](repeating: .success(Data()), count: payloads.count)
        results.withUnsafeMutableBufferPointer { output in
            nonisolated(unsafe) let output = output
            let stride = (payloads.count + workers - 1) / workers
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                for index in min(payloads.count, worker * stride)..<min(payloads.count, (worker + 1) * stride) {
                    output[index] = Result { try line(payloads[index]) }
                }
            }
        }
        return try results.map { try $0.get() }
    }

    /// The first look at the file: resumes from the signed head when the log starts with the
    /// bytes it hashed (otherwise from where the head says the file begins; a head of an earlier
    /// segment is taken over only after every earlier segment is checked), checks the rest, and
    /// holds the log to its promises before anything is written. A line that fails restarts the
    /// log; a torn last line is recovered.
    private func resume(now: Date) throws {
        let promises = try AuditPromises.load(from: store, trust: trust)
        var head = promises.head
        switch try AuditSegments.firstLine(fd: fd, trust: trust) {
        case .restart(let entry):
            segment = entry.time
        case .damaged where head?.segment != nil:
            // The restart entry itself is damaged: the file is still the segment its head
            // describes, and the head says where it begins.
            segment = head?.segment
        default:
            segment = nil
        }
        prefix = SHA256()
        var matched = true
        if let loaded = head, loaded.segment == segment {
            // The head says where the file begins: no earlier (damaged) file is read.
            start = loaded.start
            position = start
            if let (at, hasher) = try loaded.resume(fd: fd) {
                position = at
                prefix = hasher
            } else {
                matched = false
            }
        } else {
            let before = try AuditSegments.before(fd: fd, store: store, trust: trust)
            if let failure = before.failure { throw AuditError.tampered(failure, path: path) }
            if let loaded = head {
                // The head describes another segment. An earlier one: a restart stopped before it
                // wrote its new head, which this writer writes now. Any other: an older log was
                // put back in place of the one the head describes.
                guard loaded.segment == nil || before.restarts.contains(where: { $0.entry.time == loaded.segment }) else {
                    throw AuditError.tampered(
                        AuditFailure(
                            line: 1, check: .rewritten,
                            message: "the log " + (segment.map { "restarted after damage at \($0)" } ?? "is the first segment")
                                + ", but \(loaded.source) describes the log restarted at \(loaded.segment ?? "-"): an older log "
                                + "was put back"),
                        path: path)
                }
                head = nil
            }
            start = before.position
            position = start
        }
        let scan = try scanFile()
        if let failure = scan.failure {
            // Damage restarts the log, unless the file is shorter than its head: it was cut, and
            // a cut stays a refusal.
            if let head, head.bytes > fileLength() { throw AuditError.tampered(failure, path: path) }
            // A log without its head had it removed: that stays a refusal too.
            if promises.head == nil, let missing = AuditPromises.headMissing(size: position.size, recorded: promises.recorded) {
                throw AuditError.tampered(missing, path: path)
            }
            try restart(after: failure, head: head, now: now)
            return
        }
        let superseded = promises.head != nil && head == nil
        if !superseded {
            if let failure = promises.shortfall(size: position.size) { throw AuditError.tampered(failure, path: path) }
            // As many entries as the head counts, every line valid, and still not its bytes.
            if !matched, let head { throw AuditError.tampered(AuditPromises.rewritten(head), path: path) }
        } else if let checkpoint = promises.checkpoint,
            let failure = AuditPromises.shortfall(size: position.size, promised: checkpoint.size, by: AuditPromises.checkpointSource)
        {
            throw AuditError.tampered(failure, path: path)
        }
        if scan.tornBytes > 0 {
            try recover(tornBytes: scan.tornBytes, now: now)
        } else if superseded {
            try AuditHead.store(position, start: start, segment: segment, prefix: prefix, time: now, in: store, key: key)
        }
    }

    /// Reads and checks what other writers appended since this one last looked; cuts off a torn
    /// last write, restarts the log after a line that fails.
    private func catchUp(now: Date) throws {
        let scan = try scanFile()
        if let failure = scan.failure {
            try restart(after: failure, head: nil, now: now)
        } else if scan.tornBytes > 0 {
            try recover(tornBytes: scan.tornBytes, now: now)
        }
    }

    private func fileLength() -> Int {
        var info = stat()
        return fstat(fd, &info) == 0 ? Int(info.st_size) : 0
    }

    /// Checks the lines past `position` and moves it (and `prefix`) to the last good one; the
    /// scan names the line that failed, if one did. Throws `tampered` when the log became
    /// shorter than what was checked.
    private func scanFile() throws -> AuditScan {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw AuditError.io("stat \(path)", errno) }
        let length = Int(info.st_size)
        if length < position.bytes {
            throw AuditError.tampered(
                AuditFailure(
                    line: position.nextLine, check: .truncated,
                    message: "the log is \(length) bytes, shorter than the \(position.bytes) bytes already checked"),
                path: path)
        }
        guard length > position.bytes else { return AuditScan(position: position, failure: nil, tornBytes: 0) }
        let scan = try AuditScanner(trust: trust).scan(fd: fd, from: position)
        prefix = try AuditHead.hashPrefix(fd: fd, from: position.bytes, to: scan.position.bytes, into: prefix)
        position = scan.position
        return scan
    }

    /// Restarts the log after `failure`: keeps the whole file as `audit/damaged/log-<time>.jsonl`
    /// (the local checkpoint, which counts its entries, beside it), and puts in its place a new
    /// file whose first entry is a `recovery` entry continuing the chain from the last good
    /// entry. Each step leaves a state the next writer handles: the damaged log again, or the
    /// new one with the old head (`resume`).
    private func restart(after failure: AuditFailure, head: AuditHead?, now: Date) throws {
        // Names must not repeat and restart times grow along the chain, whatever the clock did.
        var date = now
        if let segment, let last = RFC3339.parse(segment), date <= last.addingTimeInterval(0.001) {
            date = last.addingTimeInterval(0.002)
        }
        let time = RFC3339.format(date, milliseconds: true)
        let damagedKey = AuditSegments.damagedKey(time: time)
        let damagedPath = store.path(damagedKey)
        let folder = try store.makeFolder(AuditSegments.damagedFolder)
        let length = fileLength()
        let digest = try AuditHead.hashPrefix(fd: fd, from: 0, to: length, into: SHA256()).finalize()
        // 1. The damaged file keeps its bytes under a second name: nothing is copied.
        guard link(path, damagedPath) == 0 else { throw AuditError.io("keep the damaged log as \(damagedPath)", errno) }
        try AtomicFile.syncDirectory(folder)
        // 2. The local checkpoint counts entries of the damaged file: it goes with it.
        let checkpointPath = store.path(AuditPromises.checkpointKey)
        if try store.read(AuditPromises.checkpointKey) != nil {
            let kept = store.path(AuditSegments.damagedFolder + "/checkpoint-" + time.filter { $0 != "-" && $0 != ":" })
            guard rename(checkpointPath, kept) == 0 else { throw AuditError.io("move \(checkpointPath) to \(kept)", errno) }
            try AtomicFile.syncDirectory(folder)
            try AtomicFile.syncDirectory(directory)
        }
        // 3. The new file, written and locked before it takes the log's name.
        let newKey = Self.folder + "/" + Self.logName + ".restart"
        try store.remove(newKey)
        guard let newFD = try store.open(newKey, flags: O_RDWR | O_APPEND, create: true) else {
            throw AuditError.io("create \(store.path(newKey))", ENOENT)
        }
        var handedOver = false
        defer { if !handedOver { Glibc.close(newFD) } }
        guard flock(newFD, LOCK_EX | LOCK_NB) == 0 else { throw AuditError.io("lock \(store.path(newKey))", errno) }
        var begins = position
        begins.bytes = 0
        begins.base = position.size
        let lastGood = position.size == 0 ? "no entry before it was good"
            : "its last good entry is \(position.size - 1) (leaf hash \(position.prev))"
        let lost = head.map { $0.size > position.size ? "; \($0.source) counted \($0.size) entries: entries \(position.size)-\($0.size - 1) are only in the damaged file" : "" } ?? ""
        let reason = "line \(failure.line) of the log failed its \(failure.check.rawValue) check; the log as it was (\(length) bytes, "
            + "sha256:\(digest.hexString)) is kept as \(damagedKey) and continues here from entry \(position.size); \(lastGood)\(lost)"
        let record = AuditRecord(
            kind: .recovery, release: release, action: AuditSegments.restartAction, reason: reason, outcome: .ok,
            error: "\(failure.check.rawValue): \(String(failure.message.prefix(300)))")
        let (bytes, _, next) = try prepare([record], after: begins, time: time)
        try AtomicFile.writeAll(bytes, to: newFD, path: store.path(newKey))
        guard fsync(newFD) == 0 else { throw AuditError.io("fsync \(store.path(newKey))", errno) }
        // 4. It takes the log's name; from here on it is the log, and this writer holds its lock.
        guard rename(store.path(newKey), path) == 0 else { throw AuditError.io("rename \(store.path(newKey)) to \(path)", errno) }
        try AtomicFile.syncDirectory(directory)
        Glibc.close(fd)
        fd = newFD
        handedOver = true
        position = next
        start = begins
        prefix = SHA256()
        prefix.update(bytes)
        segment = time
        // 5. Its head.
        try AuditHead.store(position, start: start, segment: segment, prefix: prefix, time: now, in: store, key: key)
        found.append(AuditDamage(time: time, damagedPath: damagedPath, failure: failure, firstSeq: begins.base, summary: reason))
        if found.count > 100 { found.removeFirst(found.count - 100) }
    }

    /// Moves a torn last write to `log.jsonl.broken`, cuts it from the log and records it.
    private func recover(tornBytes: Int, now: Date) throws {
        var torn = Data(count: tornBytes)
        let n = torn.withUnsafeMutableBytes { pread(fd, $0.baseAddress, tornBytes, off_t(position.bytes)) }
        guard n == tornBytes else { throw AuditError.io("read the torn end of \(path)", n < 0 ? errno : EIO) }
        let brokenKey = Self.folder + "/" + Self.brokenName
        let brokenPath = store.path(brokenKey)
        guard let broken = try store.open(brokenKey, flags: O_WRONLY | O_APPEND, create: true) else {
            throw AuditError.io("open \(brokenPath)", ENOENT)
        }
        defer { Glibc.close(broken) }
        torn.append(0x0A)
        let written = torn.withUnsafeBytes { Glibc.write(broken, $0.baseAddress, $0.count) }
        guard written == torn.count, fsync(broken) == 0 else { throw AuditError.io("write \(brokenPath)", errno) }
        try AtomicFile.syncDirectory(directory)
        guard ftruncate(fd, off_t(position.bytes)) == 0, fsync(fd) == 0 else {
            throw AuditError.io("cut the torn end of \(path)", errno)
        }
        _ = try write(
            [AuditRecord(
                kind: .recovery, release: release, action: "cut-torn-write",
                reason: "line \(position.size + 1) was a write cut short (\(tornBytes) bytes without a final newline at "
                    + "byte \(position.bytes)); it was removed from the log and kept in \(Self.brokenName)",
                outcome: .ok)],
            now: now, head: true)
    }

    private func storeCheckpoint(origin: String, now: Date) throws -> SignedNote {
        let note = try Checkpoint(origin: origin, size: position.size, root: position.tree.root).signed(with: key)
        try AuditHead.store(position, start: start, segment: segment, prefix: prefix, time: now, in: store, key: key)
        try store.write(AuditPromises.checkpointKey, Data(note.rendered.utf8))
        return note
    }

    /// Runs `body` holding the exclusive lock on the log file, waiting up to `lockTimeout`. The
    /// lock that counts is the one on the file named `log.jsonl`: when another writer restarted
    /// the log meanwhile, this writer opens the new file, locks it and looks at it afresh.
    /// With `keepingIt`, the lock is still held when `body` returns (not when it throws): the
    /// caller lets it go.
    private func withFileLock<T>(now: Date, keepingIt: Bool = false, _ body: () throws -> T) throws -> T {
        let deadline = Date().addingTimeInterval(lockTimeout)
        while true {
            while flock(fd, LOCK_EX | LOCK_NB) != 0 {
                guard errno == EWOULDBLOCK || errno == EINTR else { throw AuditError.io("lock \(path)", errno) }
                guard Date() < deadline else {
                    throw AuditError(
                        .locked,
                        "another stet process has held \(path) for more than \(lockTimeout) s (--lock-timeout); try again when it is done")
                }
                usleep(2_000)
            }
            if try holdsTheLog() { break }
            flock(fd, LOCK_UN)
            guard let reopened = try store.open(Self.logKey, flags: O_RDWR | O_APPEND) else {
                throw AuditError.tampered(
                    AuditFailure(line: position.nextLine, check: .truncated, message: "the log file was removed while Stet wrote it"),
                    path: path)
            }
            Glibc.close(fd)
            fd = reopened
            needsResume = true
        }
        // `fd` as it is when the body ends: a restart in the body hands over the new file's lock.
        var letGo = true
        defer { if letGo { flock(fd, LOCK_UN) } }
        if needsResume {
            let seen = segment
            let reopened = resumedOnce
            try resume(now: now)
            needsResume = false
            resumedOnce = true
            if reopened, let segment, segment != seen, !found.contains(where: { $0.time == segment }),
                let entry = try AuditSegments.restart(fd: fd, trust: trust)
            {
                // Restarted by another writer: reported here as well.
                found.append(AuditDamage(
                    time: segment, damagedPath: store.path(AuditSegments.damagedKey(time: segment)), failure: nil,
                    firstSeq: entry.seq, summary: entry.reason ?? ""))
            }
        }
        let result = try body()
        letGo = !keepingIt
        return result
    }

    /// Whether `fd` is the file named `log.jsonl`.
    private func holdsTheLog() throws -> Bool {
        var mine = stat(), named = stat()
        guard fstat(fd, &mine) == 0 else { throw AuditError.io("stat \(path)", errno) }
        guard lstat(path, &named) == 0 else {
            if errno == ENOENT { return false }
            throw AuditError.io("stat \(path)", errno)
        }
        return mine.st_dev == named.st_dev && mine.st_ino == named.st_ino
    }
}

/// A restart of the log after damage (`AuditRestart`), as a writer reports it.
public struct AuditDamage: Sendable, Equatable {
    /// The restart's time, which also names the damaged file.
    public let time: String
    /// Where the damaged log is kept.
    public let damagedPath: String
    /// The check that failed; nil when another writer restarted the log and this one saw it.
    public let failure: AuditFailure?
    /// The first entry of the new segment (the restart entry's `seq`).
    public let firstSeq: Int
    /// The restart entry's reason.
    public let summary: String
}

/// A turn at the log that any thread may give back: taken by the thread that writes an
/// intent, given back by the queue that fsyncs it.
final class AuditTurn: @unchecked Sendable {
    private let free = DispatchSemaphore(value: 1)

    func take() { free.wait() }
    func give() { free.signal() }

    func hold<T>(_ body: () throws -> T) rethrows -> T {
        take()
        defer { give() }
        return try body()
    }
}

/// Whether entries written ahead of their fsync (`AuditSink.appendBeforeAction`) are durable.
/// `wait` returns once they are, or throws why they are not (they were then cut off the log
/// again); every call gives the same answer.
public final class AuditSync: @unchecked Sendable {
    private let condition = NSCondition()
    private var result: Result<Void, any Error>?

    /// Entries whose fsync is under way: `finish` tells how it ended.
    public init() {}

    private init(_ result: Result<Void, any Error>) { self.result = result }

    /// Entries already durable: those of a sink that syncs before it returns.
    public static var durable: AuditSync { AuditSync(.success(())) }

    /// Says how the fsync ended; the first answer stands.
    public func finish(_ result: Result<Void, any Error>) {
        condition.withLock {
            guard self.result == nil else { return }
            self.result = result
            condition.broadcast()
        }
    }

    /// How long `wait` looks for the end before it sleeps, in nanoseconds.
    static let watchFor: UInt64 = 2_000_000

    /// Returns once the entries are durable; throws why they are not. For `watchFor` it looks
    /// rather than sleeps: an fsync mostly ends within a millisecond of the wait, and a thread
    /// that slept is woken a tenth of a millisecond later on a virtual machine, whose idle
    /// processor must be woken first, on the way to a replica's replacement. It yields the
    /// processor while it looks, to any other thread that can run.
    public func wait() throws {
        let deadline = DispatchTime.now().uptimeNanoseconds + Self.watchFor
        repeat {
            if let result = condition.withLock({ self.result }) { return try result.get() }
            sched_yield()
        } while DispatchTime.now().uptimeNanoseconds < deadline
        let result = condition.withLock { () -> Result<Void, any Error> in
            while self.result == nil { condition.wait() }
            return self.result!
        }
        try result.get()
    }
}
