import Foundation
import StetAudit
import StetCrypto
import StetState
import StetTesting
import Testing

/// The reader behind `audit list`, `audit show` and the status page: the whole history across a
/// restart after damage, filters, one entry, and a tail that reads only the end of the file.
@Suite struct AuditReaderTests {
    let state = TemporaryDirectory("stet-audit-reader")
    let key: PrivateKey
    let trust: AuditTrust

    init() throws {
        key = try PrivateKey.generate()
        trust = AuditTrust([(name: "ci", publicKey: key.publicKey)])
    }

    var reader: AuditReader { AuditReader(store: FileStateStore(root: state.path), trust: trust) }

    func write(_ records: [AuditRecord]) throws {
        let log = try AuditLog(
            stateDirectory: state.path, trust: trust, key: key, host: "test-host", via: "cli",
            release: .init(version: 1, digest: "sha256:abc"), origin: "stet/test", lockTimeout: 5)
        for record in records { try log.append(record) }
        try log.close()
    }

    static func result(_ resource: String, _ n: Int) -> AuditRecord {
        AuditRecord(kind: .result, release: .init(version: 1, digest: "sha256:abc"), resource: resource, action: "start-replica",
                    reason: "entry \(n)", outcome: .ok)
    }

    @Test func noLogIsAnEmptyHistory() throws {
        var seen = 0
        try reader.entries(.init()) { _ in seen += 1 }
        #expect(seen == 0)
        #expect(try reader.line(seq: 0) == nil)
        #expect(reader.tail(5).isEmpty)
    }

    @Test func filtersByKindAndResource() throws {
        try write((0..<6).map { Self.result($0 % 2 == 0 ? "Service/web" : "Service/db", $0) }
            + [AuditRecord(kind: .drift, release: .init(version: 1, digest: "sha256:abc"), resource: "Service/web", reason: "gone")])
        var web: [Int] = []
        try reader.entries(.init(resource: "Service/web")) { web.append($0.seq) }
        #expect(web == [0, 2, 4, 6])
        var drift: [Int] = []
        try reader.entries(.init(kind: .drift)) { drift.append($0.seq) }
        #expect(drift == [6])
        var future = 0
        try reader.entries(.init(since: Date().addingTimeInterval(3600))) { _ in future += 1 }
        #expect(future == 0)
        #expect(try reader.line(seq: 3)?.entry.reason == "entry 3")
        #expect(try reader.line(seq: 7) == nil)
        // The kind in any case, as `audit list --resource service/web` is written; a whole
        // resource takes in its replicas, a replica only itself.
        try write([Self.result("Service/web#1", 7), Self.result("Service/webber", 8)])
        var lower: [Int] = []
        try reader.entries(.init(resource: "service/web")) { lower.append($0.seq) }
        #expect(lower == [0, 2, 4, 6, 7])
        var replica: [Int] = []
        try reader.entries(.init(resource: "SERVICE/web#1")) { replica.append($0.seq) }
        #expect(replica == [7])
        var name: [Int] = []
        try reader.entries(.init(resource: "Service/WEB")) { name.append($0.seq) }
        #expect(name.isEmpty)
    }

    /// A log restarted after damage still lists every good entry, the earlier segment's too.
    @Test func theHistoryRunsAcrossARestartAfterDamage() throws {
        try write((0..<3).map { Self.result("Service/web", $0) })
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: state.path + "/audit/log.jsonl"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("garbage\n".utf8))
        try handle.close()
        try write([Self.result("Service/web", 3)])
        var reasons: [String] = []
        try reader.entries(.init(kind: .result)) { reasons.append($0.reason ?? "") }
        #expect(reasons == ["entry 0", "entry 1", "entry 2", "entry 3"])
    }

    /// A line that fails a check ends the reading there: what came before was handed out.
    @Test func aDamagedLineIsAnErrorAfterTheLinesBeforeIt() throws {
        try write((0..<3).map { Self.result("Service/web", $0) })
        let path = state.path + "/audit/log.jsonl"
        var text = try String(contentsOfFile: path, encoding: .utf8)
        var lines = text.split(separator: "\n").map(String.init)
        lines[1] = lines[1].replacingOccurrences(of: "\"sig\":\"", with: "\"sig\":\"A")
        text = lines.joined(separator: "\n") + "\n"
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        var seen: [Int] = []
        #expect(throws: AuditReader.Damaged.self) { try reader.entries(.init()) { seen.append($0.seq) } }
        #expect(seen == [0])
    }

    /// The tail reads only the end of a log longer than its window, and drops the fragment the
    /// window starts in.
    @Test func theTailReadsTheEndOnly() throws {
        let long = String(repeating: "x", count: 2_000)
        try write((0..<300).map { n in
            AuditRecord(kind: .result, release: .init(version: 1, digest: "sha256:abc"), action: "start-replica", reason: "\(n) \(long)",
                        outcome: .ok)
        })
        let tail = reader.tail(15)
        #expect(tail.map(\.seq) == Array(285..<300))
        #expect(reader.tail(1_000).count < 300)
        #expect(reader.tail(0).isEmpty)
    }
}
