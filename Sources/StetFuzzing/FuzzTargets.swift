public import Foundation
import StetAudit
import StetCore
import StetCrypto
import StetEngine
import StetFleet
import StetManifest
import StetProviders

/// Every parser of input from outside, as a fuzz target (docs/fuzzing.md): each takes any bytes
/// and must accept or refuse them without trapping, hanging or growing without bound. The
/// libFuzzer executable under `Fuzz/` calls `run`, and `FuzzCorpusTests` replays every seed and
/// every input that once crashed (`Fuzz/regressions/TARGET/`) in the normal test run.
///
/// A target goes as deep as bytes alone can go: a signature cannot be forged, so the parts a
/// signature guards (a plan's payload, an audit entry's payload, a fleet record) are also fed to
/// their decoders directly.
public enum FuzzTargets {
    public struct Target: Sendable {
        public let name: String
        /// What the target reads, for `scripts/fuzz --list`.
        public let reads: String
        /// Files and folders of the repository whose files seed the corpus.
        public let seeds: [String]
        public let run: @Sendable (Data) -> Void
    }

    public static func named(_ name: String) -> Target? { all.first { $0.name == name } }

    public static let all: [Target] = [
        Target(name: "release", reads: "a release envelope (DSSE JSON) and its index", seeds: ["manifests/release.dsse.json"], run: release),
        Target(name: "trust", reads: "a trust policy (YAML), a trust rotation envelope and PEM public keys",
               seeds: ["keys", "Fuzz/seeds/trust"], run: trust),
        Target(name: "manifest", reads: "a manifest file (YAML)", seeds: ["manifests"], run: manifest),
        Target(name: "plan", reads: "a saved plan (DSSE JSON), a plan payload and an observed-state payload",
               seeds: ["Fuzz/seeds/plan"], run: plan),
        Target(name: "audit", reads: "audit log lines, entries and a whole log.jsonl", seeds: ["Fuzz/seeds/audit"], run: audit),
        Target(name: "checkpoint", reads: "checkpoints, signed notes, cosignatures and published checkpoints",
               seeds: ["Fuzz/seeds/checkpoint"], run: checkpoint),
        Target(name: "proof", reads: "an audit proof (JSON) and Merkle proof vectors", seeds: ["Fuzz/seeds/proof", "Tests/Vectors/merkle"], run: proof),
        Target(name: "restic", reads: "restic's JSON output: backup messages, snapshot lists, forget groups, check and restore text",
               seeds: ["Fuzz/seeds/restic"], run: restic),
        Target(name: "http", reads: "HTTP answers of health checks and Alertmanager, and Alertmanager's alert list",
               seeds: ["Fuzz/seeds/http"], run: http),
        Target(name: "etcd", reads: "etcd gateway answers (ranges, transactions, leases) and watch streams", seeds: ["Fuzz/seeds/etcd"], run: etcd),
        Target(name: "fleet", reads: "a fleet release and signed fleet records from etcd", seeds: ["Fuzz/seeds/fleet"], run: fleet),
        Target(name: "schedule", reads: "cron schedules, durations, RFC 3339 times, URLs and zoneinfo files",
               seeds: ["Fuzz/seeds/schedule"], run: schedule),
    ]

    // MARK: - Keys the targets verify against

    /// The example release's public key: verification runs, and fails, on fuzzed signatures.
    static let examplePEM = Data("""
        -----BEGIN PUBLIC KEY-----
        MCowBQYDK2VwAyEAkfNtp2sh/nn3dIvVTVFVYhss5BYuQGZtEEwyyrMIfEA=
        -----END PUBLIC KEY-----

        """.utf8)

    static let exampleKey: PublicKey? = try? PublicKey(pem: examplePEM)

    static let policy: TrustPolicy? = try? TrustPolicy.parse(
        Data("""
            apiVersion: stet/v1
            kind: TrustPolicy
            version: 1
            keys:
              a: {publicKey: a.pub}
            roles:
              root: {threshold: 1, keys: [a]}
              release: {threshold: 1, keys: [a]}
              operator: {threshold: 1, keys: [a]}
              node: {threshold: 1, keys: [a]}

            """.utf8), file: "fuzz-trust.yaml", loadKey: { _ in examplePEM })

    static let auditTrust = AuditTrust(exampleKey.map { [("a", $0)] } ?? [])

    // MARK: - Targets

    static func release(_ data: Data) {
        if let envelope = try? Envelope(json: data) {
            _ = envelope.validSigners(among: exampleKey.map { [$0] } ?? [])
            _ = try? ReleaseIndex.decode(envelope.payload)
        }
        _ = try? ReleaseIndex.decode(data)
    }

    static func trust(_ data: Data) {
        _ = try? TrustPolicy.parse(data, file: "trust.yaml", loadKey: { _ in examplePEM })
        // The keys it names, read from files an attacker may also write.
        _ = try? PublicKey(pem: data)
        _ = try? TrustPolicy.parse(Data("""
            apiVersion: stet/v1
            kind: TrustPolicy
            version: 1
            keys: {a: {publicKey: a.pub}}
            roles: {root: {threshold: 1, keys: [a]}, release: {threshold: 1, keys: [a]}}

            """.utf8), file: "trust.yaml", loadKey: { _ in data })
        if let policy { _ = try? TrustResolver.verifyRotation(data, repository: policy, pinned: policy) }
        _ = try? JSONDecoder().decode(TrustRotation.self, from: data)
    }

    static func manifest(_ data: Data) {
        _ = try? ManifestLoader.decode(files: [(name: "fuzz.yaml", bytes: data)])
    }

    static func plan(_ data: Data) {
        if let envelope = try? Envelope(json: data) {
            _ = envelope.validSigners(among: exampleKey.map { [$0] } ?? [])
        }
        if (try? StrictJSON.checkUniqueKeys(data)) != nil {
            _ = try? JSONDecoder().decode(Plan.self, from: data)
        }
        _ = try? ObservedSnapshot.payload(data, source: "fuzz")
    }

    static func audit(_ data: Data) {
        for line in data.split(separator: 0x0A, omittingEmptySubsequences: false).prefix(64) {
            let parts = line.withUnsafeBytes { AuditLine.parse($0) }
            if case .success(let parts) = parts { _ = try? AuditEntry.decode(payload: parts.payload) }
        }
        _ = try? AuditEntry.decode(payload: data)
        // A whole log, as `stet audit verify` reads it (signatures unchecked, so the chain and
        // the entries are reached).
        var template = Array("/tmp/stet-fuzz-audit-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else { return }
        unlink(template)
        defer { close(fd) }
        let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == data.count, lseek(fd, 0, SEEK_SET) == 0 else { return }
        var scanner = AuditScanner(trust: nil)
        scanner.workers = 1
        _ = try? scanner.scan(fd: fd, from: .start)
    }

    static func checkpoint(_ data: Data) {
        let text = String(decoding: data, as: UTF8.self)
        _ = try? Checkpoint(text: text)
        _ = try? SignedNote(parsing: text)
        _ = try? Checkpoint.verify(note: text, trust: auditTrust, source: "fuzz")
        for line in text.split(separator: "\n").prefix(64) {
            _ = Cosignature.parse(line: String(line))
            if let key = exampleKey { _ = Cosignature.verify(line: String(line), text: text, name: "w", publicKey: key) }
        }
        _ = try? PublishedCheckpoint.decode(json: data)
        _ = try? NoteVerifier(verifierKey: text)
    }

    static func proof(_ data: Data) {
        if let proof = try? JSONDecoder().decode(AuditProof.self, from: data) {
            _ = try? proof.verify(trust: auditTrust, source: "fuzz")
        }
        if let vector = try? JSONDecoder().decode(ConsistencyVector.self, from: data) {
            _ = MerkleVerifier.verifyConsistency(
                oldSize: vector.size1, newSize: vector.size2, oldRoot: vector.root1, newRoot: vector.root2, proof: vector.proof)
        }
        if let vector = try? JSONDecoder().decode(InclusionVector.self, from: data) {
            _ = MerkleVerifier.verifyInclusion(
                leafHash: vector.leafHash, index: vector.leafIdx, size: vector.treeSize, proof: vector.proof, root: vector.root)
        }
    }

    /// The forms of the Merkle proof vectors (Tests/Vectors/merkle).
    struct ConsistencyVector: Decodable {
        let size1: UInt64
        let size2: UInt64
        let root1: Data
        let root2: Data
        let proof: [Data]
    }

    struct InclusionVector: Decodable {
        let leafIdx: UInt64
        let treeSize: UInt64
        let root: Data
        let leafHash: Data
        let proof: [Data]
    }

    static func restic(_ data: Data) {
        var stream = BackupOutput()
        // In two chunks cut where the first byte says, as a pipe would deliver them.
        let cut = min(Int(data.first ?? 0) * 4, data.count)
        stream.consume(data.prefix(cut))
        stream.consume(data.dropFirst(cut))
        stream.finish()
        if let summary = stream.summary { _ = BackupProvider.backupSummary(summary) }
        _ = BackupProvider.backupSummary(data)
        _ = try? BackupProvider.snapshotList(data, repository: "fuzz")
        _ = BackupProvider.forgetCounts(data)
        let text = String(decoding: data, as: UTF8.self)
        _ = BackupProvider.checkErrors(text)
        _ = BackupProvider.verifiedFiles(text)
        _ = Restic.date(text)
    }

    static func http(_ data: Data) {
        if case .success(let response) = PlainHTTP.response(data, from: "http://127.0.0.1/fuzz") {
            _ = MonitorDrill.showsDrill(response.body, monitor: "web-up")
        }
        _ = CheckRunner.judge(Array(data), expectStatus: nil, bodyContains: "ok")
        _ = CheckRunner.judge(Array(data), expectStatus: 204, bodyContains: nil)
        _ = MonitorDrill.showsDrill(data, monitor: "web-up")
    }

    static func etcd(_ data: Data) {
        // A watch stream, cut in two where the first byte says, with a small message limit.
        var splitter = JSONObjectSplitter(limit: 4096)
        let cut = min(Int(data.first ?? 0) * 4, data.count)
        for chunk in [data.prefix(cut), data.dropFirst(cut)] {
            guard let messages = try? splitter.feed(Array(chunk)) else { break }
            for message in messages { _ = try? EtcdClient.watchEvents(message) }
        }
        // A range, transaction or lease answer.
        if let body = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] {
            _ = try? EtcdClient.keyValues(body)
            _ = try? EtcdClient.revision(body)
            _ = try? EtcdClient.transactionAnswer(body)
            _ = try? EtcdClient.granted(body, asked: 3)
            _ = try? EtcdClient.renewed(body)
            _ = try? EtcdClient.remaining(body)
        }
    }

    static func fleet(_ data: Data) {
        _ = try? FleetRelease.decode(data)
        guard let policy else { return }
        _ = FleetSigned.open(data, type: FleetSigned.nodeType, as: NodeRecord.self, trust: policy)
        _ = FleetSigned.open(data, type: FleetSigned.assignmentType, as: Assignment.self, trust: policy)
        // The payloads the signatures guard, as the nodes decode them.
        let decoder = JSONDecoder()
        _ = try? decoder.decode(NodeRecord.self, from: data)
        _ = try? decoder.decode(Assignment.self, from: data)
        _ = try? decoder.decode(NodeStatus.self, from: data)
        _ = try? decoder.decode(PrimaryRecord.self, from: data)
        _ = try? decoder.decode(SwitchoverRequest.self, from: data)
        _ = try? decoder.decode(AppliedPlan.self, from: data)
        _ = try? decoder.decode(DrainRecord.self, from: data)
        _ = try? decoder.decode(FleetShare.self, from: data)
    }

    static func schedule(_ data: Data) {
        let text = String(decoding: data.prefix(512), as: UTF8.self)
        if let schedule = try? CronSchedule(parsing: text) {
            _ = schedule.next(after: 1_790_000_000, in: .utc)
        }
        _ = StetDuration.parse(text)
        _ = RFC3339.parse(text)
        _ = HTTPURL.parse(text)
        _ = CheckRunner.parse(url: text)
        if let zone = try? ZoneInfo(name: "Fuzz/Zone", tzif: data) {
            _ = zone.localType(at: 4_000_000_000 as Int64)
            _ = zone.firstInstant(atOrAfterWallTime: 1_790_000_000)
        }
    }
}
