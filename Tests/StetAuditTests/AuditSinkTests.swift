import Foundation
import StetAudit
import StetCrypto
import StetTesting
import Testing

/// The audit sink contract (`AuditSink`) on the state directory's log and on the in-memory sink
/// of engine tests: the same records at the same time make the same entries, chain and
/// checkpoint, so what an engine test reads from the memory sink is what the log would hold.
@Suite struct AuditSinkTests {
    let state = TemporaryDirectory("stet-audit-sink")
    let key: PrivateKey
    let now = Date(timeIntervalSince1970: 1_800_000_000.25)

    init() throws { key = try PrivateKey.generate() }

    func sinks() throws -> [any AuditSink] {
        let file = try AuditLog(
            stateDirectory: state.path, trust: AuditTrust([(name: "ci", publicKey: key.publicKey)]), key: key, host: "test-host",
            via: "daemon", release: .none, origin: "stet/test")
        return [file, MemoryAuditSink(key: key, name: "ci", host: "test-host", via: "daemon", origin: "stet/test")]
    }

    static func record(_ n: Int) -> AuditRecord {
        AuditRecord(
            kind: n % 2 == 0 ? .intent : .result, release: .init(version: 2, digest: "sha256:ab"), plan: "plan-0123456789abcdef",
            change: "Service/web#\(n):start-replica", resource: "Service/web", action: "start-replica",
            reason: "replica \(n) was missing", outcome: n % 2 == 0 ? nil : .ok)
    }

    @Test func theMemorySinkChainsAndCheckpointsAsTheLogDoes() throws {
        var written: [[AuditEntry]] = []
        var checkpoints: [SignedNote] = []
        for sink in try sinks() {
            var entries = try sink.append([Self.record(0), Self.record(1)], now: now)
            entries.append(try sink.append(Self.record(2), now: now))
            #expect(sink.size == 3)
            written.append(entries)
            checkpoints.append(try sink.checkpoint(origin: nil, now: now))
            try sink.close()
            #expect(throws: AuditError.self) { try sink.append(Self.record(3), now: now) }
        }
        #expect(written[0] == written[1])
        #expect(written[0].map(\.seq) == [0, 1, 2])
        var prev = ""
        for entry in written[1] {
            #expect(entry.prev == prev)
            prev = Merkle.leafHash(try entry.payload()).hexString
        }
        #expect(checkpoints[0].text == checkpoints[1].text)
        #expect(try Checkpoint(text: checkpoints[1].text).size == 3)
    }
}
