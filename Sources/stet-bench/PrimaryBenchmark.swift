import Foundation
import StetCore
import StetCrypto
import StetFleet
import StetManifest
import StetProviders
import StetState
import StetTesting

/// `stet-bench primary-failover [KILLS] [TTL]`: failover of an active/passive service's primary
/// against a real etcd (one member on 127.0.0.1:24980), three fleet nodes in this process, each
/// with its own state directory and real replica processes (`sh` writing its role file, as a
/// primary/standby service would). What a node's reconcile loop does is reduced to starting the
/// replicas of its share and stopping the others, every 50 ms.
///
/// - Failover: the node holding the primary is killed as a dead host would be (its lease renewals
///   and everything else stop at once, its replicas get SIGKILL), and the time runs until a
///   replica on another node has been promoted (its promote command wrote `primary`).
/// - Switchover: an operator's signed request (`stet failover`), timed until the new primary is
///   promoted; the old one was demoted before.
/// - Overlap: every 10 ms, the replicas that are alive and whose role file says `primary`.
///
/// `STET_BENCH_VERBOSE=1` prints what each node logs.
enum PrimaryFailoverBenchmark {
    static func run(_ arguments: [String]) async throws {
        let kills = arguments.first.flatMap(Int.init) ?? 20
        let ttl = arguments.dropFirst().first.flatMap(Int.init) ?? 3
        let etcd = try EtcdCluster(members: 1, basePort: 24980)
        defer { etcd.stop() }
        var repo = RepositoryFixture()
        let names = ["node-a", "node-b", "node-c"]
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ops"]), node: (1, names))
        let trust = try TrustPolicy.load(file: repo.trustFile)
        let work = repo.root.file("work")
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        chmod(work, 0o777)
        var service = Service(
            metadata: Metadata(name: "db"), replicas: 3,
            run: Service.Run(command: ["sh", "-c", "echo \"$STET_ROLE\" > role-$STET_REPLICA; exec sleep 3600"], workingDir: work, stopTimeout: .seconds(1)))
        service.failover = Service.Failover(
            promote: ["sh", "-c", "echo primary > role-$STET_REPLICA"], demote: ["sh", "-c", "echo standby > role-$STET_REPLICA"],
            timeout: .seconds(5))
        var desired = DesiredState()
        desired.services["db"] = service
        let release = ReleaseRef(version: 1, digest: "sha256:" + String(repeating: "0", count: 64))
        let keyspace = try FleetKeyspace(cluster: "bench")

        final class Member: @unchecked Sendable {
            let node: FleetNode
            let task: Task<Void, Never>
            let replicas: ReplicaProvider
            init(node: FleetNode, task: Task<Void, Never>, replicas: ReplicaProvider) {
                self.node = node
                self.task = task
                self.replicas = replicas
            }
        }
        var members: [String: Member] = [:]
        func start(_ name: String) throws {
            var options = FleetNode.Options(keyspace: keyspace, node: name, labels: [:], releaseDirectory: repo.root.file("\(name)/fleet/release"))
            let settings = LeaseSettings(ttl: ttl)
            options.leaseTTL = ttl
            options.renewalTimeout = settings.renewalTimeout
            options.fenceMargin = settings.fenceMargin
            // A kill stands for a dead host: nothing is handed over.
            options.stepDownOnStop = false
            var configuration = EtcdClient.Configuration(endpoints: etcd.endpoints)
            configuration.requestTimeout = 1
            let store = FileStateStore(root: repo.root.file("\(name)/state"))
            let node = FleetNode(options: options, client: try EtcdClient(configuration), key: repo.keys[name]!, trust: trust, store: store)
            node.releaseTaken(release, desired)
            if ProcessInfo.processInfo.environment["STET_BENCH_VERBOSE"] != nil {
                node.attachEvents { event in if case .log(let line) = event { FileHandle.standardError.write(Data("\(name): \(line)\n".utf8)) } }
            }
            var replicas = ReplicaProvider(store: store)
            replicas.startCheck = 0
            members[name] = Member(node: node, task: Task { await node.run() }, replicas: replicas)
        }
        /// What a loop would do: the share's replicas run, nothing else.
        func reconcile() {
            for (_, member) in members where member.node.mayAct {
                // No share while the node reads the fleet again: nothing is decided then.
                guard let share = member.node.share(of: desired)?.assignedReplicas?["db"], member.node.mayAct else { continue }
                let running = Set(((try? member.replicas.records()["db"]) ?? [:]).filter { ProcessTable.isAlive($0.value.pid, startTime: $0.value.startTime) }.keys)
                for index in share.subtracting(running) { _ = try? member.replicas.start(service, index) }
                for index in running.subtracting(share) { _ = try? member.replicas.stop("db", index, timeout: 1) }
            }
        }
        /// The indices whose replica is alive (on any node) and whose role file says primary.
        func primaries() -> Set<Int> {
            var found: Set<Int> = []
            for (_, member) in members {
                for (index, record) in (try? member.replicas.records()["db"]) ?? [:] where ProcessTable.isAlive(record.pid, startTime: record.startTime) {
                    let role = (try? String(contentsOfFile: "\(work)/role-\(index)", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
                    if role == "primary" { found.insert(index) }
                }
            }
            return found
        }
        func holder() -> String? {
            guard let index = primaries().first else { return nil }
            return members.first { (_, member) in (try? member.replicas.record("db", index)).flatMap { $0 }.map { ProcessTable.isAlive($0.pid, startTime: $0.startTime) } ?? false }?.key
        }
        let overlap = OverlapCounter()
        func wait(_ seconds: Double, _ condition: () -> Bool) async -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            var lastSample = Date.distantPast
            while Date() < deadline {
                if Date().timeIntervalSince(lastSample) >= 0.01 {
                    overlap.sample(primaries().count)
                    lastSample = Date()
                }
                reconcile()
                if condition() { return true }
                try? await Task.sleep(nanoseconds: 2_000_000)
            }
            return condition()
        }
        func kill(_ name: String) async {
            guard let member = members.removeValue(forKey: name) else { return }
            member.task.cancel()
            for record in ((try? member.replicas.records()["db"]) ?? [:]).values where ProcessTable.isAlive(record.pid, startTime: record.startTime) {
                Foundation.kill(record.pid, SIGKILL)
                // The host's disk goes with it: its role file says nothing any more.
                try? "dead\n".write(toFile: "\(work)/role-\(record.index)", atomically: false, encoding: .utf8)
            }
            await member.task.value
            try? await member.node.client.shutdown()
        }

        /// Every node stopped and every replica it ever started killed, also when a round fails.
        func cleanUp() async {
            for name in Array(members.keys) { await kill(name) }
            for name in names {
                let replicas = ReplicaProvider(store: FileStateStore(root: repo.root.file("\(name)/state")))
                for record in ((try? replicas.records()["db"]) ?? [:]).values where ProcessTable.isAlive(record.pid, startTime: record.startTime) {
                    Foundation.kill(record.pid, SIGKILL)
                }
            }
        }
        func measure() async throws {
        for name in names { try start(name) }
        guard await wait(60, { primaries().count == 1 }) else { throw TestFailure("no primary within 60 s") }
        print("primary failover on a real etcd: 3 nodes, service db with 3 replicas (real processes), lease TTL \(ttl) s")
        print()
        Measure.row("figure", "Stet", "reference", "ratio / target")

        var failovers: [Double] = []
        for round in 0..<kills {
            guard let victim = holder() else { throw TestFailure("round \(round): no primary") }
            let killed = DispatchTime.now().uptimeNanoseconds
            await kill(victim)
            // The same index may come back as primary: on another node.
            let promoted = await wait(Double(ttl) * 5) { primaries().count == 1 && holder().map { $0 != victim } == true }
            guard promoted else { throw TestFailure("round \(round): no new primary within \(5 * ttl) s") }
            failovers.append(Double(DispatchTime.now().uptimeNanoseconds - killed) / 1e9)
            try start(victim)
            _ = await wait(10) { members[victim]?.node.mayAct == true }
        }
        let (p50, p99) = Self.percentiles(failovers)
        Measure.row("primary failover p50 (\(failovers.count) kills)", String(format: "%.2f s", p50), "TTL \(ttl) s + 0.5 s",
                    String(format: "%.2f of target", p50 / (Double(ttl) + 0.5)))
        Measure.row("primary failover p99", String(format: "%.2f s", p99), "", "")
        Measure.row("Patroni 3.0.2, defaults (this machine)", "", "25.3 s p50", String(format: "%.2f", p50 / 25.3))
        Measure.row("Patroni 3.0.2, ttl 10 (this machine)", "", "10.1 s p50", String(format: "%.2f", p50 / 10.1))

        // Planned switchovers, signed by an operator key.
        let client = try EtcdClient(EtcdClient.Configuration(endpoints: etcd.endpoints))
        var switchovers: [Double] = []
        for round in 0..<10 {
            let before = holder()
            let lease = try await client.grantLease(ttl: 30)
            guard let current = try await client.get(keyspace.primary("db")),
                let record = PrimaryRecord.verified(current.value, lease: current.lease, service: "db", trust: trust, liveKeyID: { _ in nil })
            else { throw TestFailure("switchover \(round): no primary in etcd") }
            let request = SwitchoverRequest(
                cluster: keyspace.cluster, service: "db", to: nil, fromNode: record.node, fromRevision: current.createRevision, id: "bench-\(round)",
                requestedAt: RFC3339.format(Date()))
            let asked = DispatchTime.now().uptimeNanoseconds
            _ = try await client.put(keyspace.switchover("db"), try FleetSigned.seal(request, type: FleetSigned.switchoverType, key: repo.keys["ops"]!), lease: lease.id)
            let moved = await wait(10) { primaries().count == 1 && holder() != before }
            guard moved else { throw TestFailure("switchover \(round): no new primary within 10 s") }
            switchovers.append(Double(DispatchTime.now().uptimeNanoseconds - asked) / 1e9)
            try await client.revoke(lease.id)
            _ = await wait(Double(FleetNode.cooldown) + 0.5) { false }
        }
        try? await client.shutdown()
        let (s50, s99) = Self.percentiles(switchovers)
        Measure.row("planned switchover p50 (10)", String(format: "%.3f s", s50), "target 0.5 s; Patroni 1.4 s", String(format: "%.2f of Patroni", s50 / 1.4))
        Measure.row("planned switchover p99", String(format: "%.3f s", s99), "", "")
        Measure.row("samples with two primaries (10 ms poller)", "\(overlap.overlapping) of \(overlap.samples)", "target 0", overlap.overlapping == 0 ? "none" : "OVERLAP")
        }
        do {
            try await measure()
        } catch {
            await cleanUp()
            throw error
        }
        await cleanUp()
    }

    static func percentiles(_ values: [Double]) -> (Double, Double) {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return (0, 0) }
        func at(_ p: Double) -> Double { sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))] }
        return (at(0.5), at(0.99))
    }
}

final class OverlapCounter: @unchecked Sendable {
    private(set) var samples = 0
    private(set) var overlapping = 0
    func sample(_ primaries: Int) {
        samples += 1
        if primaries > 1 { overlapping += 1 }
    }
}
