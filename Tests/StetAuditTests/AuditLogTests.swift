import Foundation
import StetAudit
import StetCrypto
import StetState
import StetTesting
import Testing

/// The log's writer and scanner on real files: appends, recovery from torn writes, and every
/// kind of tampering.
@Suite struct AuditLogTests {
    let state = TemporaryDirectory("stet-audit")
    let key: PrivateKey
    let stranger: PrivateKey
    let trust: AuditTrust

    init() throws {
        key = try PrivateKey.generate()
        stranger = try PrivateKey.generate()
        trust = AuditTrust([(name: "ci", publicKey: key.publicKey)])
    }

    var logPath: String { state.path + "/audit/log.jsonl" }

    func openLog(now: Date = Date()) throws -> AuditLog {
        try AuditLog(
            stateDirectory: state.path, trust: trust, key: key, host: "test-host", via: "cli",
            release: .init(version: 3, digest: "sha256:abc"), origin: "stet/test", lockTimeout: 5, now: now)
    }

    static func record(_ n: Int) -> AuditRecord {
        AuditRecord(
            kind: .result, release: .init(version: 3, digest: "sha256:abc"), resource: "service/web",
            action: "start-replica", reason: "replica \(n) was missing", outcome: .ok, durationMs: n)
    }

    /// Writes `count` entries in groups of `group`, and closes the log.
    func writeLog(_ count: Int, group: Int = 1) throws {
        let log = try openLog()
        var written = 0
        while written < count {
            let n = min(group, count - written)
            try log.append((written..<written + n).map(Self.record))
            written += n
        }
        try log.close()
    }

    func scan(_ trust: AuditTrust? = nil) throws -> AuditScan {
        let fd = open(logPath, O_RDONLY)
        defer { close(fd) }
        return try AuditScanner(trust: trust ?? self.trust).scan(fd: fd, from: .start)
    }

    func lines() throws -> [Data] {
        try Data(contentsOf: URL(fileURLWithPath: logPath)).split(separator: 0x0A, omittingEmptySubsequences: false)
            .dropLast().map { Data($0) }
    }

    func writeLines(_ lines: [Data]) throws {
        var data = Data()
        for line in lines { data.append(line + [0x0A]) }
        try data.write(to: URL(fileURLWithPath: logPath))
    }

    @Test func appendedEntriesChainAndVerify() throws {
        try writeLog(5, group: 2)
        var entries: [AuditEntry] = []
        let fd = open(logPath, O_RDONLY)
        defer { close(fd) }
        let scan = try AuditScanner(trust: trust).scan(fd: fd, from: .start) { entries.append($0.entry); return true }
        #expect(scan.failure == nil)
        #expect(scan.position.size == 5)
        #expect(entries.map(\.seq) == [0, 1, 2, 3, 4])
        #expect(entries[0].prev == "")
        #expect(entries.allSatisfy { $0.actor.name == "ci" && $0.actor.keyid == key.publicKey.keyID && $0.actor.via == "cli" })
        // prev is the leaf hash (SHA-256 of 0x00 ‖ payload) of the entry before.
        for (index, line) in try lines().enumerated().dropFirst() {
            _ = line
            let previous = try lines()[index - 1]
            let envelope = try Envelope(json: previous)
            #expect(entries[index].prev == Merkle.leafHash(envelope.payload).hexString)
        }
        // The stored checkpoint is signed under the origin and carries the log's root.
        let note = try String(contentsOfFile: state.path + "/audit/checkpoint", encoding: .utf8)
        let (checkpoint, signer) = try Checkpoint.verify(note: note, trust: trust, source: "checkpoint")
        #expect(signer == "ci")
        #expect(checkpoint.size == 5 && checkpoint.origin == "stet/test")
        #expect(checkpoint.root == scan.position.tree.root)
    }

    /// Intents written ahead of their fsync (`appendBeforeAction`) hold the log until it ends:
    /// appends from other threads and from a second writer (locking the file as another process
    /// does) wait their turn, so every entry chains and verifies, and a sync asked again gives
    /// the same answer.
    @Test func intentsWrittenAheadOfTheirFsyncHoldTheLogUntilItEnds() throws {
        let writers = [try openLog(), try openLog()]
        let failures = Failures()
        DispatchQueue.concurrentPerform(iterations: 6) { worker in
            let log = writers[worker % 2]
            for n in 0..<10 {
                do {
                    let sync = try log.appendBeforeAction([Self.record(worker * 100 + n), Self.record(worker * 100 + n)])
                    try sync.wait()
                    try sync.wait()
                    try log.append(Self.record(worker * 100 + 50 + n))
                } catch {
                    failures.add(error)
                }
            }
        }
        #expect(failures.all.isEmpty, "\(failures.all)")
        for log in writers { try log.close() }
        var durations: [Int] = []
        let fd = open(logPath, O_RDONLY)
        defer { close(fd) }
        let scan = try AuditScanner(trust: trust).scan(fd: fd, from: .start) {
            durations.append($0.entry.durationMs ?? -1)
            return true
        }
        #expect(scan.failure == nil && scan.position.size == 180)
        // Every intent is in the log once per entry written, before the append that followed it.
        for worker in 0..<6 {
            for n in 0..<10 {
                let intent = durations.indices.filter { durations[$0] == worker * 100 + n }
                let after = durations.firstIndex(of: worker * 100 + 50 + n)
                #expect(intent.count == 2 && after != nil && intent[1] < after!)
            }
        }
        #expect(try openLog().size == 180)
    }

    final class Failures: @unchecked Sendable {
        private let lock = NSLock()
        private var errors: [any Error] = []
        func add(_ error: any Error) { lock.withLock { errors.append(error) } }
        var all: [any Error] { lock.withLock { errors } }
    }

    /// A writer that reopens resumes from the signed head and keeps the chain going.
    @Test func reopeningContinuesTheChain() throws {
        try writeLog(3)
        try writeLog(2)
        let scan = try scan()
        #expect(scan.failure == nil && scan.position.size == 5)
    }

    /// A crash while entry 2 was being written, at every byte inside it, is a torn write: cut
    /// off, kept in log.jsonl.broken, recorded by a recovery entry, and everything before still
    /// verifies. The head and checkpoint are those of before that append: they are written only
    /// after the entry is fsynced, so no crash leaves one that counts a torn entry.
    @Test func crashAtEveryByteOfTheLastEntryIsRecovered() throws {
        try writeLog(2)
        let promises = ["head.json", "checkpoint"].map { (state.path + "/audit/" + $0, FileManager.default.contents(atPath: state.path + "/audit/" + $0)) }
        try writeLog(1)
        let original = try Data(contentsOf: URL(fileURLWithPath: logPath))
        let all = try lines()
        let lastStart = original.count - all[2].count - 1
        for cut in (lastStart + 1)..<(original.count) {
            try original.prefix(cut).write(to: URL(fileURLWithPath: logPath))
            for (path, data) in promises { try #require(data).write(to: URL(fileURLWithPath: path)) }
            try? FileManager.default.removeItem(atPath: state.path + "/audit/log.jsonl.broken")
            let log = try openLog()
            try log.close()
            var entries: [AuditEntry] = []
            let fd = open(logPath, O_RDONLY)
            let scan = try AuditScanner(trust: trust).scan(fd: fd, from: .start) { entries.append($0.entry); return true }
            close(fd)
            #expect(scan.failure == nil, "cut at \(cut)")
            #expect(scan.tornBytes == 0)
            #expect(entries.count == 3, "cut at \(cut)")
            #expect(entries.prefix(2).map(\.reason) == ["replica 0 was missing", "replica 1 was missing"])
            #expect(entries.last?.kind == .recovery)
            #expect(entries.last?.reason?.contains("\(cut - lastStart) bytes") == true, "cut at \(cut)")
            let broken = try Data(contentsOf: URL(fileURLWithPath: state.path + "/audit/log.jsonl.broken"))
            #expect(broken == original[lastStart..<cut] + [0x0A])
        }
    }

    /// Flipping any byte of any complete line, the last one too, fails that line and no other.
    @Test func everyFlippedByteIsCaughtAtItsLine() throws {
        try writeLog(3)
        let original = try lines()
        for (lineIndex, line) in original.enumerated() {
            for offset in 0...line.count {
                var changed = original
                if offset == line.count {
                    // The newline itself: only between lines (at the end it makes a torn write).
                    guard lineIndex < original.count - 1 else { continue }
                    changed[lineIndex] = line + [0x20] + changed[lineIndex + 1]
                    changed.remove(at: lineIndex + 1)
                } else {
                    changed[lineIndex][changed[lineIndex].startIndex + offset] ^= 0x01
                }
                try writeLines(changed)
                let failure = try scan().failure
                #expect(failure?.line == lineIndex + 1, "line \(lineIndex + 1) byte \(offset): \(String(describing: failure))")
            }
        }
    }

    @Test(arguments: ["delete", "swap", "duplicate", "stranger", "reorderedFields", "duplicatedKey"])
    func rewritesAreCaughtAtTheFirstBadLine(_ how: String) throws {
        try writeLog(4)
        var lines = try lines()
        let expected: (line: Int, check: AuditFailure.Check)
        switch how {
        case "delete":
            lines.remove(at: 1)
            expected = (2, .sequence)
        case "swap":
            lines.swapAt(1, 2)
            expected = (2, .sequence)
        case "duplicate":
            lines.insert(lines[2], at: 3)
            expected = (4, .sequence)
        case "stranger":
            // Same payload, signed by a key outside the trust policy.
            var envelope = try Envelope(json: lines[2])
            envelope.signatures = []
            try envelope.sign(with: stranger)
            lines[2] = envelope.json()
            expected = (3, .signature)
        case "duplicatedKey":
            // Signed by the operator key, but a key twice: two readers could see two entries.
            var envelope = try Envelope(json: lines[1])
            let text = String(decoding: envelope.payload, as: UTF8.self)
            envelope.payload = Data(text.replacingOccurrences(of: "{\"seq\":1,", with: "{\"seq\":1,\"seq\":1,").utf8)
            #expect(envelope.payload.count > text.utf8.count)
            envelope.signatures = []
            try envelope.sign(with: key)
            lines[1] = envelope.json()
            expected = (2, .payload)
        default:
            let envelope = try Envelope(json: lines[1])
            lines[1] = envelope.json(pretty: true).split(separator: 0x0A).reduce(Data(), +)
            expected = (2, .envelope)
        }
        try writeLines(lines)
        let failure = try #require(try scan().failure)
        #expect(failure.line == expected.line)
        #expect(failure.check == expected.check)
        if how == "delete" {
            // Shorter than its signed head: a cut, which a writer refuses, naming the line.
            expectRefused(["line \(expected.line)"])
            return
        }
        // Damage: a writer keeps the damaged log and restarts after the last good entry.
        let log = try openLog()
        let damage = try #require(log.damages.first)
        #expect(log.damages.count == 1)
        #expect(damage.failure?.line == expected.line && damage.failure?.check == expected.check)
        #expect(damage.firstSeq == expected.line - 1)
        #expect(log.size == expected.line)
    }

    /// The signed head lets a writer skip signature checks, never the check itself: a change
    /// to an already-checked line is still found (and the log restarts before it).
    @Test func theResumePointDoesNotHideTampering() throws {
        try writeLog(3)
        #expect(FileManager.default.fileExists(atPath: state.path + "/audit/head.json"))
        var lines = try lines()
        lines[0][lines[0].startIndex + 120] ^= 0x04
        try writeLines(lines)
        let log = try openLog()
        #expect(log.damages.map(\.firstSeq) == [0])
        #expect(log.damages.first?.failure?.line == 1)
    }

    /// The audit files as bytes, to show that a refusal changed nothing.
    func auditFiles() -> [String: Data] {
        var files: [String: Data] = [:]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: state.path + "/audit")) ?? [] {
            files[name] = FileManager.default.contents(atPath: state.path + "/audit/" + name)
        }
        return files
    }

    /// Expects opening the log to be refused as tampering with a message holding `expected`,
    /// and nothing in audit/ to change.
    func expectRefused(_ expected: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        let before = auditFiles()
        do {
            _ = try openLog()
            Issue.record("the log was opened for appending", sourceLocation: sourceLocation)
        } catch let error as AuditError {
            #expect(error.code == .tampered, sourceLocation: sourceLocation)
            for text in expected { #expect(error.message.contains(text), "\(error.message)", sourceLocation: sourceLocation) }
        } catch {
            Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
        }
        #expect(auditFiles() == before, "a refused open changed audit/", sourceLocation: sourceLocation)
    }

    /// `head -n 4` of a 6-entry log: every remaining line verifies, but the signed head (written
    /// after every append, so also when the writer never closed) and the local checkpoint
    /// count 6. The writer refuses, and verification names the missing entries.
    @Test(arguments: [true, false])
    func aLogCutAtALineBoundaryIsRefused(closed: Bool) throws {
        if closed {
            try writeLog(6)
        } else {
            let log = try openLog()
            for n in 0..<6 { try log.append(Self.record(n)) }
        }
        try writeLines(Array(try lines().prefix(4)))
        expectRefused(["the log has 4 entries; its signed head of ", " says 6: entries 4-5 are missing"])

        let report = try AuditVerification(trust: trust).verify(stateDirectory: state.path, checkpoints: [])
        #expect(report.failure == nil && report.size == 4)
        #expect(!report.passed)
        #expect(report.head?.consistent == false)
        #expect(report.head?.message.contains("says 6: entries 4-5 are missing") == true, "\(String(describing: report.head))")
        if closed {
            #expect(report.localCheckpoint?.message == "the log has 4 entries; its local checkpoint says 6: entries 4-5 are missing")
            // Without the head, the local checkpoint alone still holds the log to 6 entries.
            try FileManager.default.removeItem(atPath: state.path + "/audit/head.json")
            expectRefused(["the log has 4 entries; its local checkpoint says 6: entries 4-5 are missing"])
        }
    }

    /// Cutting inside the last entry the head counts is not a torn write: no crash leaves that.
    @Test func aLogCutInsideAnEntryItsHeadCountsIsRefused() throws {
        try writeLog(3)
        let data = try Data(contentsOf: URL(fileURLWithPath: logPath))
        try data.dropLast(10).write(to: URL(fileURLWithPath: logPath))
        expectRefused(["the log has 2 entries; its signed head of ", " says 3: entry 2 is missing"])
        #expect(!FileManager.default.fileExists(atPath: state.path + "/audit/log.jsonl.broken"))
    }

    /// A log removed while its head is there is not started again from entry 0.
    @Test func aMissingLogWithAHeadIsRefused() throws {
        try writeLog(3)
        try FileManager.default.removeItem(atPath: logPath)
        expectRefused(["there is no log file; its signed head of ", " says 3: entries 0-2 are missing"])
        #expect(!FileManager.default.fileExists(atPath: logPath))
        let report = try AuditVerification(trust: trust).verify(stateDirectory: state.path, checkpoints: [])
        #expect(!report.passed)
        #expect(report.head?.message.contains("there is no log file") == true)
    }

    /// Without its head and checkpoint, a cut log passed as one that crashed before its first
    /// head was written. The head is written before the first entry: a log without one was cut.
    @Test func aLogWithoutItsHeadIsRefused() throws {
        try writeLog(6)
        for name in ["head.json", "checkpoint"] { try FileManager.default.removeItem(atPath: state.path + "/audit/" + name) }
        try writeLines(Array(try lines().prefix(4)))
        expectRefused(["the log has 4 entries but no signed head"])
        let report = try AuditVerification(trust: trust).verify(stateDirectory: state.path, checkpoints: [])
        #expect(report.failure == nil && report.size == 4)
        #expect(!report.passed)
        #expect(report.head?.consistent == false)
        #expect(report.head?.message.contains("no signed head") == true, "\(String(describing: report.head))")
    }

    /// A new log has its head (of 0 entries) before its first entry; a crash between the two
    /// leaves a head of 0 entries and no log, which starts a log as usual.
    @Test func aNewLogIsHeadedBeforeItsFirstEntry() throws {
        let log = try openLog()
        #expect(FileManager.default.fileExists(atPath: state.path + "/audit/head.json"))
        #expect(log.size == 0)
        try FileManager.default.removeItem(atPath: logPath)
        let reopened = try openLog()
        try reopened.append(Self.record(0))
        #expect(reopened.size == 1)
    }

    /// A state directory that holds an accepted release had a log: Stet records a release in
    /// the log before it writes `release.json`.
    @Test func aRemovedAuditFolderBesideAnAcceptedReleaseIsRefused() throws {
        try writeLog(3)
        try AcceptedRelease(version: 3, digest: "sha256:abc", acceptedAt: Date()).save(to: FileStateStore(root: state.path))
        try FileManager.default.removeItem(atPath: state.path + "/audit")
        expectRefused(["there is no log file and no signed head, but ", "release.json"])
        #expect(!FileManager.default.fileExists(atPath: logPath))
        let report = try AuditVerification(trust: trust).verify(stateDirectory: state.path, checkpoints: [])
        #expect(!report.passed)
    }

    /// A head that is not signed by an operator key is damage, not a reason to start over.
    @Test(arguments: ["stranger", "garbage"])
    func aHeadNotSignedByAnOperatorIsRefused(_ how: String) throws {
        try writeLog(3)
        let headPath = state.path + "/audit/head.json"
        if how == "stranger" {
            var envelope = try Envelope(json: try Data(contentsOf: URL(fileURLWithPath: headPath)))
            envelope.signatures = []
            try envelope.sign(with: stranger)
            try envelope.json().write(to: URL(fileURLWithPath: headPath))
        } else {
            try Data("{}".utf8).write(to: URL(fileURLWithPath: headPath))
        }
        expectRefused(["head.json is damaged"])
        let report = try AuditVerification(trust: trust).verify(stateDirectory: state.path, checkpoints: [])
        #expect(!report.passed)
        #expect(report.head?.consistent == false)
    }

    /// A history rewritten with the operator key, as long as the old one and valid line by
    /// line, is still not the one the head hashed.
    @Test func aHistoryRewrittenUnderItsHeadIsRefused() throws {
        try writeLog(3)
        let head = try Data(contentsOf: URL(fileURLWithPath: state.path + "/audit/head.json"))
        try FileManager.default.removeItem(atPath: state.path + "/audit")
        let log = try openLog()
        try log.append((0..<4).map { Self.record($0 + 100) })
        try log.close()
        try head.write(to: URL(fileURLWithPath: state.path + "/audit/head.json"))
        try FileManager.default.removeItem(atPath: state.path + "/audit/checkpoint")
        expectRefused(["the log's first 3 entries are not the ones its signed head of "])
        let report = try AuditVerification(trust: trust).verify(stateDirectory: state.path, checkpoints: [])
        #expect(report.failure == nil && !report.passed)
        #expect(report.head?.message.contains("rewritten") == true)
    }

    /// Files and folders another user could change, and links in place of state files, are
    /// refused before anything is read or written, with the path and the fix.
    @Test(arguments: ["state-0777", "audit-0777", "log-0666", "log-link", "log-dangling-link", "head-link"])
    func unsafeStateIsRefused(_ how: String) throws {
        try writeLog(2)
        let audit = state.path + "/audit"
        let copy = state.path + "/copy.jsonl"
        var expected: [String]
        switch how {
        case "state-0777":
            chmod(state.path, 0o777)
            expected = ["refusing \(state.path):", "mode 0777", "chmod go-w \(state.path)"]
        case "audit-0777":
            chmod(audit, 0o777)
            expected = ["refusing \(audit):", "chmod go-w \(audit)"]
        case "log-0666":
            chmod(logPath, 0o666)
            expected = ["refusing \(logPath):", "mode 0666", "chmod go-w \(logPath)"]
        case "log-link", "log-dangling-link":
            try FileManager.default.moveItem(atPath: logPath, toPath: copy)
            if how == "log-dangling-link" { try FileManager.default.removeItem(atPath: copy) }
            try FileManager.default.createSymbolicLink(atPath: logPath, withDestinationPath: copy)
            expected = ["refusing \(logPath):", "symbolic link"]
        default:
            let head = audit + "/head.json"
            try FileManager.default.moveItem(atPath: head, toPath: state.path + "/head-copy.json")
            try FileManager.default.createSymbolicLink(atPath: head, withDestinationPath: state.path + "/head-copy.json")
            expected = ["refusing \(head):", "symbolic link"]
        }
        let before = auditFiles()
        let copied = FileManager.default.contents(atPath: copy)
        for attempt in ["open", "verify"] {
            do {
                if attempt == "open" {
                    _ = try openLog()
                } else {
                    _ = try AuditVerification(trust: trust).verify(stateDirectory: state.path, checkpoints: [])
                }
                Issue.record("\(attempt) accepted \(how)")
            } catch let error as StateError {
                for text in expected { #expect(error.message.contains(text), "\(attempt): \(error.message)") }
            }
        }
        #expect(auditFiles() == before)
        #expect(FileManager.default.contents(atPath: copy) == copied, "the link's target was written or created")
    }

    /// What Stet creates, only its user can read or change.
    @Test func newStateIsPrivate() throws {
        let root = state.path + "/new/state"
        let log = try AuditLog(
            stateDirectory: root, trust: trust, key: key, host: "h", via: "cli", release: .none, origin: "stet/test")
        try log.append(Self.record(0))
        try log.close()
        func mode(_ path: String) -> mode_t {
            var info = stat()
            lstat(path, &info)
            return info.st_mode & 0o777
        }
        #expect(mode(root) == 0o700)
        #expect(mode(root + "/audit") == 0o700)
        for name in ["log.jsonl", "head.json", "checkpoint"] { #expect(mode(root + "/audit/" + name) == 0o600, "\(name)") }
    }

    @Test func aKeyOutsideTheOperatorRoleCannotWrite() throws {
        do {
            _ = try AuditLog(
                stateDirectory: state.path, trust: trust, key: stranger, host: "h", via: "cli", release: .none)
            Issue.record("a stranger's key opened the log")
        } catch let error as AuditError {
            #expect(error.code == .untrustedKey)
        }
        #expect(!FileManager.default.fileExists(atPath: logPath))
    }

    /// A checkpoint taken before history is rewritten (validly re-signed with the same key)
    /// fails verification afterwards; one taken after passes.
    @Test func checkpointsCatchRewrittenHistory() throws {
        try writeLog(4)
        let before = try String(contentsOfFile: state.path + "/audit/checkpoint", encoding: .utf8)
        let verifier = AuditVerification(trust: trust)
        var report = try verifier.verify(stateDirectory: state.path, checkpoints: [("before", before)])
        #expect(report.passed)

        try FileManager.default.removeItem(atPath: state.path + "/audit")
        let log = try openLog()
        try log.append((0..<3).map { Self.record($0 + 100) })
        try log.append((0..<2).map(Self.record))
        try log.close()
        report = try verifier.verify(stateDirectory: state.path, checkpoints: [("before", before)])
        #expect(report.failure == nil)
        #expect(!report.passed)
        #expect(report.checkpoints.first?.source == "before")
        #expect(report.checkpoints.first?.message.contains("rewritten") == true)

        let after = try String(contentsOfFile: state.path + "/audit/checkpoint", encoding: .utf8)
        #expect(try verifier.verify(stateDirectory: state.path, checkpoints: [("after", after)]).passed)
    }

    @Test func inclusionProofsRoundTrip() throws {
        try writeLog(11)
        for seq in [0, 5, 10] {
            let proof = try AuditProof.make(stateDirectory: state.path, seq: seq, trust: trust)
            let (checkpoint, entry) = try proof.verify(trust: trust, source: "proof")
            #expect(entry.seq == seq && checkpoint.size == 11)
        }
        // A proof whose entry is swapped for another entry's fails.
        var proof = try AuditProof.make(stateDirectory: state.path, seq: 5, trust: trust)
        let other = try AuditProof.make(stateDirectory: state.path, seq: 6, trust: trust)
        proof.entry = other.entry
        #expect(throws: AuditError.self) { try proof.verify(trust: trust, source: "proof") }
        proof.seq = 6
        proof.leafHash = other.leafHash
        #expect(throws: AuditError.self) { try proof.verify(trust: trust, source: "proof") }
        // Untrusted keys are not enough.
        let strangers = AuditTrust([(name: "x", publicKey: stranger.publicKey)])
        #expect(throws: AuditError.self) { try other.verify(trust: strangers, source: "proof") }
    }
}

/// The fast line writer must stay byte-identical to the DSSE envelope serializer.
@Suite struct AuditLineTests {
    @Test func linesAreWhatTheEnvelopeSerializerWrites() throws {
        let key = try PrivateKey.generate()
        let entry = AuditRecord(
            kind: .intent, release: .init(version: 2, digest: "sha256:00", commit: "abc"), resource: "service/web",
            action: "start-replica", reason: "quotes \" and slashes / and ünïcode,\na newline, a tab\t and \u{1} \\ backslash"
        ).entry(
            seq: 4, time: "2026-11-29T10:00:00.123Z", prev: String(repeating: "ab", count: 32),
            actor: .init(keyid: key.publicKey.keyID, name: "ci", host: "h", via: "daemon"))
        let line = try AuditLine.encode(entry, key: key)
        var envelope = Envelope(payloadType: AuditEntry.payloadType, payload: try entry.payload())
        try envelope.sign(with: key)
        #expect(line == envelope.json() + [0x0A])
        let parsed = line.dropLast().withUnsafeBytes { AuditLine.parse($0) }
        let parts = try parsed.get()
        #expect(try AuditEntry.decode(payload: parts.payload) == entry)
        #expect(String(decoding: try entry.payload(), as: UTF8.self).hasPrefix(#"{"seq":4,"time":"2026-11-29T10:00:00.123Z","prev":""#))
    }
}
