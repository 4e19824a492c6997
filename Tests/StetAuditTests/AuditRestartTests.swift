import Foundation
import StetAudit
import StetCrypto
import StetState
import StetTesting
import Testing

/// A damaged log does not stop Stet: the writer keeps it in audit/damaged/ and restarts the log
/// with a `recovery` entry that continues the chain; verification follows every restart and
/// reports the damage. Cuts, missing logs and older logs put back stay refusals.
@Suite struct AuditRestartTests {
    let state = TemporaryDirectory("stet-audit-restart")
    let key: PrivateKey
    let trust: AuditTrust

    init() throws {
        key = try PrivateKey.generate()
        trust = AuditTrust([(name: "ci", publicKey: key.publicKey)])
    }

    var logPath: String { state.path + "/audit/log.jsonl" }

    func openLog() throws -> AuditLog {
        try AuditLog(
            stateDirectory: state.path, trust: trust, key: key, host: "test-host", via: "cli",
            release: .init(version: 3, digest: "sha256:abc"), origin: "stet/test", lockTimeout: 5)
    }

    static func record(_ n: Int) -> AuditRecord {
        AuditRecord(kind: .result, release: .init(version: 3, digest: "sha256:abc"), action: "start-replica", reason: "entry \(n)", outcome: .ok)
    }

    func writeLog(_ count: Int, from first: Int = 0) throws {
        let log = try openLog()
        for n in first..<first + count { try log.append(Self.record(n)) }
        try log.close()
    }

    func appendGarbage() throws {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("garbage\n".utf8))
        try handle.close()
    }

    /// Every entry of the whole history, oldest first, and the scan.
    func history() throws -> (entries: [AuditEntry], scan: AuditScan, restarts: [AuditRestart]) {
        let fd = open(logPath, O_RDONLY)
        defer { close(fd) }
        var entries: [AuditEntry] = []
        let (scan, restarts) = try AuditScanner(trust: trust).scanHistory(fd: fd, stateDirectory: state.path) {
            entries.append($0.entry)
            return true
        }
        return (entries, scan, restarts)
    }

    func firstEntry() throws -> AuditEntry {
        let data = try Data(contentsOf: URL(fileURLWithPath: logPath))
        let line = try #require(data.split(separator: 0x0A).first)
        return try AuditEntry.decode(payload: try Envelope(json: Data(line)).payload)
    }

    /// What a replica running as Stet's user did: one garbage line appended. The writer keeps
    /// the damaged file whole, restarts the log at entry 3 with prev = the leaf of entry 2, and
    /// goes on; verification follows the restart, reports it, and an earlier checkpoint still
    /// holds.
    @Test func aGarbageLineRestartsTheLogAndTheChainRunsOn() throws {
        try writeLog(3)
        let checkpoint = try String(contentsOfFile: state.path + "/audit/checkpoint", encoding: .utf8)
        try appendGarbage()
        let damagedBytes = try Data(contentsOf: URL(fileURLWithPath: logPath))
        let lastLeaf = try history().scan.position.prev

        let log = try openLog()
        let damage = try #require(log.damages.first)
        #expect(damage.failure?.line == 4 && damage.failure?.check == .envelope)
        #expect(damage.firstSeq == 3)
        #expect(FileManager.default.contents(atPath: damage.damagedPath) == damagedBytes)
        #expect(damage.damagedPath.hasPrefix(state.path + "/audit/damaged/log-"))
        let restart = try firstEntry()
        #expect(restart.kind == .recovery && restart.action == "start-after-damage")
        #expect(restart.seq == 3 && restart.prev == lastLeaf)
        let reason = try #require(restart.reason)
        #expect(reason.contains("line 4 of the log failed its envelope check"), "\(reason)")
        #expect(reason.contains("(\(damagedBytes.count) bytes, sha256:\(damagedBytes.sha256Hex))"), "\(reason)")
        #expect(reason.contains("its last good entry is 2 (leaf hash \(lastLeaf))"), "\(reason)")
        try log.append(Self.record(3))
        try log.close()

        let (entries, scan, restarts) = try history()
        #expect(scan.failure == nil)
        #expect(entries.map(\.seq) == [0, 1, 2, 3, 4])
        #expect(restarts.map(\.entry.seq) == [3])
        let report = try AuditVerification(trust: trust).verify(stateDirectory: state.path, checkpoints: [("before", checkpoint)])
        #expect(report.failure == nil && report.size == 5)
        #expect(report.root == scan.position.tree.root)
        #expect(report.head?.consistent == true && report.localCheckpoint?.consistent == true)
        #expect(report.checkpoints.first?.consistent == true, "\(report.checkpoints)")
        #expect(report.restarts.map(\.damagedPath) == [damage.damagedPath])
        #expect(!report.passed)
        // Opened again, nothing more is damaged.
        let again = try openLog()
        #expect(again.damages.isEmpty && again.size == 5)
        // Proofs reach entries on both sides of the restart.
        for seq in [1, 4] {
            let proof = try AuditProof.make(stateDirectory: state.path, seq: seq, trust: trust)
            #expect(try proof.verify(trust: trust, source: "proof").1.seq == seq)
        }
    }

    /// A byte changed below the signed head: the log restarts after the last good entry, and
    /// the restart says which entries the head counted that are only in the damaged file.
    @Test func damageBelowTheHeadRestartsAfterTheLastGoodEntry() throws {
        try writeLog(5)
        var data = try Data(contentsOf: URL(fileURLWithPath: logPath))
        let secondLine = try #require(data.firstIndex(of: 0x0A)) + 1
        data[secondLine + 100] ^= 0x01
        try data.write(to: URL(fileURLWithPath: logPath))
        let log = try openLog()
        #expect(log.damages.map(\.firstSeq) == [1])
        #expect(log.damages.first?.summary.contains("counted 5 entries: entries 1-4 are only in the damaged file") == true)
        try log.close()
        let report = try AuditVerification(trust: trust).verify(stateDirectory: state.path, checkpoints: [])
        #expect(report.failure == nil && report.size == 2 && report.restarts.count == 1)
    }

    /// A log cut below its head and then padded with a bad line is a cut, not damage.
    @Test func aCutLogEndingInGarbageIsStillRefused() throws {
        try writeLog(6)
        let data = try Data(contentsOf: URL(fileURLWithPath: logPath))
        let lines = data.split(separator: 0x0A)
        var cut = Data()
        for line in lines.prefix(2) { cut.append(line + [0x0A]) }
        cut.append(Data("garbage\n".utf8))
        try cut.write(to: URL(fileURLWithPath: logPath))
        #expect(throws: AuditError.self) { try openLog() }
        #expect(!FileManager.default.fileExists(atPath: state.path + "/audit/damaged"))
    }

    /// Two damages: two restarts, each naming the one before; the whole history verifies
    /// across both, and each segment's kept entries count.
    @Test func twoDamagesChainTwoRestarts() throws {
        try writeLog(2)
        try appendGarbage()
        try writeLog(1, from: 2)
        try appendGarbage()
        try writeLog(1, from: 3)
        let (entries, scan, restarts) = try history()
        #expect(scan.failure == nil)
        #expect(restarts.map(\.entry.seq) == [2, 4])
        #expect(entries.map(\.seq) == [0, 1, 2, 3, 4, 5])
        #expect(entries.map(\.kind) == [.result, .result, .recovery, .result, .recovery, .result])
        let report = try AuditVerification(trust: trust).verify(stateDirectory: state.path, checkpoints: [])
        #expect(report.failure == nil && report.size == 6 && report.restarts.count == 2)
        // A damaged file removed breaks the history, and verification says where.
        try FileManager.default.removeItem(atPath: restarts[0].damagedPath)
        let broken = try AuditVerification(trust: trust).verify(stateDirectory: state.path, checkpoints: [])
        #expect(broken.failure?.message.contains("which is missing") == true, "\(String(describing: broken.failure))")
    }

    /// The restart entry itself damaged: the head still says where the file begins, so the
    /// writer restarts again after entry 2 without reading the damaged files, and goes on.
    /// History before it can no longer be followed, and verification says so.
    @Test func aDamagedRestartEntryRestartsAgain() throws {
        try writeLog(3)
        try appendGarbage()
        try writeLog(1, from: 3)
        var data = try Data(contentsOf: URL(fileURLWithPath: logPath))
        data[data.startIndex + 150] ^= 0x01
        try data.write(to: URL(fileURLWithPath: logPath))
        let log = try openLog()
        #expect(log.damages.map(\.firstSeq) == [3])
        #expect(log.damages.first?.failure?.line == 1)
        try log.append(Self.record(4))
        try log.close()
        #expect(try firstEntry().seq == 3)
        #expect(try openLog().size == 5)
        let report = try AuditVerification(trust: trust).verify(stateDirectory: state.path, checkpoints: [])
        #expect(report.failure != nil && !report.passed)
    }

    /// A restart stopped after the new log took its name but before its head was written: the
    /// next writer takes the new log up (the old head describes an earlier segment) and writes
    /// its head.
    @Test func aRestartCutShortBeforeItsHeadIsTakenUp() throws {
        try writeLog(3)
        let oldHead = try Data(contentsOf: URL(fileURLWithPath: state.path + "/audit/head.json"))
        try appendGarbage()
        _ = try openLog()
        try oldHead.write(to: URL(fileURLWithPath: state.path + "/audit/head.json"))
        let log = try openLog()
        #expect(log.damages.isEmpty)
        #expect(log.size == 4)
        try log.append(Self.record(4))
        try log.close()
        let report = try AuditVerification(trust: trust).verify(stateDirectory: state.path, checkpoints: [])
        #expect(report.failure == nil && report.size == 5 && report.head?.consistent == true)
    }

    /// The damaged log put back in place of the restarted one (whose head names its restart)
    /// is refused, not restarted again.
    @Test func anOlderLogPutBackIsRefused() throws {
        try writeLog(3)
        try appendGarbage()
        let log = try openLog()
        try log.append(Self.record(3))
        try log.close()
        let damaged = try #require(log.damages.first).damagedPath
        try FileManager.default.removeItem(atPath: logPath)
        try FileManager.default.copyItem(atPath: damaged, toPath: logPath)
        do {
            _ = try openLog()
            Issue.record("an older log was taken")
        } catch let error as AuditError {
            #expect(error.code == .tampered)
            #expect(error.message.contains("an older log was put back"), "\(error.message)")
        }
    }

    /// A writer that holds the log while another restarts it follows to the new file: it
    /// appends there, after the restart, and reports the restart too.
    @Test func aWriterFollowsARestartMadeByAnother() throws {
        let first = try openLog()
        try first.append([Self.record(0), Self.record(1)])
        try appendGarbage()
        let second = try openLog()
        #expect(second.damages.count == 1)
        try second.append(Self.record(3))
        try first.append(Self.record(4))
        #expect(first.damages.map(\.time) == second.damages.map(\.time))
        #expect(first.damages.first?.failure == nil)
        try first.close()
        try second.close()
        let (entries, scan, _) = try history()
        #expect(scan.failure == nil)
        #expect(entries.map(\.seq) == [0, 1, 2, 3, 4])
        #expect(entries.map(\.reason).suffix(2) == ["entry 3", "entry 4"])
    }
}

extension Data {
    var sha256Hex: String { SHA256.hash(self).hexString }
}
