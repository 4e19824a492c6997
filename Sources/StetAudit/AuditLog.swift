public import Foundation
public import StetCrypto
import StetCore
import StetState

/// The writer of `STATE/audit/log.jsonl`. Opening it checks the log (and cuts off a torn last
/// write, keeping it in `log.jsonl.broken` and recording a `recovery` entry); each `append`
/// writes a group of entries with one fsync, then the signed head (`AuditHead`). Writers in
/// several processes take turns: each append holds an exclusive `flock` on the log, first reads
/// and checks what others appended, then writes. A log that fails a check, or holds fewer
/// entries than its signed head or local checkpoint count (`AuditPromises`), refuses every
/// further append. The log and everything beside it are state files: never opened through a
/// link, refused when another user could change them (`FileStateStore.open`).
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
    private let fd: Int32
    private let trust: AuditTrust
    private let key: PrivateKey
    private let actor: AuditEntry.Actor
    private let release: AuditEntry.Release
    private let lockTimeout: Double
    private let mutex = NSLock()
    private var position: AuditPosition
    /// SHA-256 of the log's bytes up to `position.bytes`, kept going so that each head costs
    /// only the bytes appended since.
    private var prefix = SHA256()
    private var closed = false

    public var path: String { (directory as NSString).appendingPathComponent(Self.logName) }
    /// Entries in the log as this writer last saw it.
    public var size: Int { mutex.withLock { position.size } }

    /// Paths of the audit files inside a state directory.
    public static func directory(in stateDirectory: String) -> String {
        (stateDirectory as NSString).appendingPathComponent(folder)
    }

    /// Opens the log in `stateDirectory` for appending as `key`, which must be one of `trust`'s
    /// keys. `release` is recorded in a recovery entry, if one is needed. Waits up to
    /// `lockTimeout` seconds for another writer.
    public init(
        stateDirectory: String, trust: AuditTrust, key: PrivateKey, host: String, via: String,
        release: AuditEntry.Release, origin: String = Checkpoint.defaultOrigin, lockTimeout: Double = 30,
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
                try AuditHead.store(.start, prefix: SHA256(), time: now, in: store, key: key)
                promises = try AuditPromises.load(from: store, trust: trust)
            }
            opened = try store.open(Self.logKey, flags: O_RDWR | O_APPEND, create: true)
        }
        guard let opened else { throw AuditError.io("open \(logPath)", ENOENT) }
        fd = opened
        position = .start
        // A throwing init still runs deinit, which closes `fd`: closing it here too would close
        // whatever file another thread opened under the same number meanwhile.
        try withFileLock { try resume(promises: promises, now: now) }
    }

    deinit {
        if !closed { Glibc.close(fd) }
    }

    /// Appends `records` as consecutive entries with one fsync; they count as written once this
    /// returns. Returns the entries as written.
    @discardableResult
    public func append(_ records: [AuditRecord], now: Date = Date()) throws -> [AuditEntry] {
        guard !records.isEmpty else { return [] }
        return try mutex.withLock {
            try withFileLock {
                try catchUp(now: now)
                return try write(records, now: now)
            }
        }
    }

    @discardableResult
    public func append(_ record: AuditRecord, now: Date = Date()) throws -> AuditEntry {
        try append([record], now: now)[0]
    }

    /// Signs and stores a checkpoint of the log as it is now (`audit/checkpoint`) and the
    /// resume point that lets the next writer skip re-verifying signatures (`audit/head.json`).
    @discardableResult
    public func checkpoint(origin: String? = nil, now: Date = Date()) throws -> SignedNote {
        try mutex.withLock {
            try withFileLock {
                try catchUp(now: now)
                return try storeCheckpoint(origin: origin ?? self.origin, now: now)
            }
        }
    }

    /// Stores a checkpoint and releases the file. Further appends are an error.
    public func close() throws {
        guard !closed else { return }
        try checkpoint()
        mutex.withLock {
            closed = true
            Glibc.close(fd)
        }
    }

    // MARK: - Under the lock

    private func write(_ records: [AuditRecord], now: Date) throws -> [AuditEntry] {
        guard !closed else { throw AuditError(.io, "the audit log is closed") }
        let time = RFC3339.format(now, milliseconds: true)
        var next = position
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
        do {
            try AtomicFile.writeAll(bytes, to: fd, path: path)
            guard fsync(fd) == 0 else { throw AuditError.io("fsync \(path)", errno) }
        } catch {
            // Leave no partial entry behind: the next writer would take it for a torn write.
            _ = ftruncate(fd, off_t(position.bytes))
            _ = fsync(fd)
            throw error
        }
        position = next
        prefix.update(bytes)
        do {
            try AuditHead.store(position, prefix: prefix, time: now, in: store, key: key)
        } catch {
            throw AuditError(
                .io,
                "entries \(entries[0].seq)-\(position.size - 1) were written to \(path), but its signed head could not be "
                    + "updated: \(error)")
        }
        return entries
    }

    /// Signed lines for `payloads`, in order; on all cores when there are many.
    private func signLines(_ payloads: [Data]) throws -> [Data] {
        let key = self.key
        let keyID = key.publicKey.keyID
        @Sendable func line(_ payload: Data) throws -> Data {
            let signature = try key.signature(
                for: Envelope.preAuthenticationEncoding(payloadType: AuditEntry.payloadType, payload: payload))
            return AuditLine.line(payload: payload, keyID: keyID, signature: signature)
        }
        let workers = ProcessInfo.processInfo.activeProcessorCount
        guard payloads.count >= 64, workers > 1 else { return try payloads.map(line) }
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

    /// The first look at the log: resumes from the signed head when the log starts with the
    /// bytes it hashed, checks the rest, and holds the log to its promises before anything is
    /// written (a torn last line is recovered only after that).
    private func resume(promises: AuditPromises, now: Date) throws {
        var matched = true
        if let head = promises.head {
            if let (resumed, hasher) = try head.resume(fd: fd) {
                position = resumed
                prefix = hasher
            } else {
                matched = false
            }
        }
        let scan = try scan()
        if let failure = promises.shortfall(size: position.size) { throw AuditError.tampered(failure, path: path) }
        // As many entries as the head counts, every line valid, and still not its bytes.
        if !matched, let head = promises.head { throw AuditError.tampered(AuditPromises.rewritten(head), path: path) }
        if scan.tornBytes > 0 { try recover(tornBytes: scan.tornBytes, now: now) }
    }

    /// Reads and checks what other writers appended since this one last looked; cuts off a torn
    /// last write. Throws `tampered` when a line fails.
    private func catchUp(now: Date) throws {
        let scan = try scan()
        if scan.tornBytes > 0 { try recover(tornBytes: scan.tornBytes, now: now) }
    }

    /// Checks the lines past `position` and moves it (and `prefix`) to the last good one.
    /// Throws `tampered` when a line fails or the log became shorter than what was checked.
    private func scan() throws -> AuditScan {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw AuditError.io("stat \(path)", errno) }
        let length = Int(info.st_size)
        if length < position.bytes {
            throw AuditError.tampered(
                AuditFailure(
                    line: position.size, check: .truncated,
                    message: "the log is \(length) bytes, shorter than the \(position.bytes) bytes already checked"),
                path: path)
        }
        guard length > position.bytes else { return AuditScan(position: position, failure: nil, tornBytes: 0) }
        let scan = try AuditScanner(trust: trust).scan(fd: fd, from: position)
        prefix = try AuditHead.hashPrefix(fd: fd, from: position.bytes, to: scan.position.bytes, into: prefix)
        position = scan.position
        if let failure = scan.failure { throw AuditError.tampered(failure, path: path) }
        return scan
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
            now: now)
    }

    private func storeCheckpoint(origin: String, now: Date) throws -> SignedNote {
        let note = try Checkpoint(origin: origin, size: position.size, root: position.tree.root).signed(with: key)
        try AuditHead.store(position, prefix: prefix, time: now, in: store, key: key)
        try store.write(AuditPromises.checkpointKey, Data(note.rendered.utf8))
        return note
    }

    /// Runs `body` holding the exclusive lock on the log file, waiting up to `lockTimeout`.
    private func withFileLock<T>(_ body: () throws -> T) throws -> T {
        let deadline = Date().addingTimeInterval(lockTimeout)
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else { throw AuditError.io("lock \(path)", errno) }
            guard Date() < deadline else {
                throw AuditError(
                    .locked,
                    "another stet process has held \(path) for more than \(lockTimeout) s (--lock-timeout); try again when it is done")
            }
            usleep(2_000)
        }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }
}
