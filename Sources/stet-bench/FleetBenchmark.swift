import Foundation
import StetFleet

/// `stet-bench fleet [SERVICES] [NODES]`: the leader's placement of SERVICES services (2
/// replicas each, default 10,000) on NODES nodes (default 1,000), in memory, and how many
/// assignments move when one node dies. Target: placement under 1 s; moved = the dead node's own.
/// (Host failover against a real etcd comes with the fleet's nodes.)
enum FleetBenchmark {
    static func run(_ arguments: [String]) throws {
        let serviceCount = arguments.first.flatMap(Int.init) ?? 10_000
        let nodeCount = arguments.dropFirst().first.flatMap(Int.init) ?? 1000
        let nodes = (0..<nodeCount).map { Placement.Node(name: "node-\($0)", labels: ["zone": "z\($0 % 3)"]) }
        let services = (0..<serviceCount).map { Placement.Service(name: "svc-\($0)", replicas: 2) }
        print("fleet placement, \(serviceCount) services × 2 replicas on \(nodeCount) nodes, in memory")
        print()
        Measure.row("figure", "Stet", "reference", "ratio / target")
        var first = Placement.Result(assignments: [:], unplaced: [])
        var times: [Double] = []
        for _ in 0..<3 { times.append(Measure.seconds { first = Placement().place(services, on: nodes, current: [:]) }) }
        let median = times.sorted()[1]
        Measure.row("place from nothing (median of 3)", String(format: "%.0f ms", median * 1000), "target 1 s", String(format: "%.2f of target", median))
        let dead = nodes[nodeCount / 2].name
        var second = first
        let again = Measure.seconds {
            second = Placement().place(services, on: nodes.filter { $0.name != dead }, current: first.assignments)
        }
        let held = first.assignments.values.filter { $0 == dead }.count
        let moved = first.assignments.filter { second.assignments[$0.key] != $0.value }.count
        Measure.row("place again after a node died", String(format: "%.0f ms", again * 1000), "target 1 s", String(format: "%.2f of target", again))
        Measure.row("assignments moved", "\(moved)", "\(held) on the dead node", moved == held ? "only its own" : "MORE THAN ITS OWN")
    }
}

import StetCore
import StetCrypto
import StetManifest
import StetState
import StetTesting

/// `stet-bench fleet-failover [KILLS] [TTL]`: host failover against a real etcd (one member on
/// 127.0.0.1:24990), three fleet nodes in this process, each with its own state directory. A kill
/// stops a node's lease renewals and everything else it does, at once, as a dead host would; the
/// time measured runs from the kill until every replica it held is assigned to a live node and in
/// that node's share (what its loop then starts: starting a replica is the `replicas` suite's
/// figure). Then the node comes back, and the next kill picks the next node (leaders included).
/// Also: etcd requests per second of the quiet fleet, by kind.
enum FleetFailoverBenchmark {
    static func run(_ arguments: [String]) async throws {
        let kills = arguments.first.flatMap(Int.init) ?? 20
        let ttl = arguments.dropFirst().first.flatMap(Int.init) ?? 3
        let etcd = try EtcdCluster(members: 1, basePort: 24990)
        defer { etcd.stop() }
        var repo = RepositoryFixture()
        let names = ["node-a", "node-b", "node-c"]
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), node: (1, names))
        let trust = try TrustPolicy.load(file: repo.trustFile)
        var desired = DesiredState()
        let run = Service.Run(command: ["true"])
        desired.services["web"] = Service(metadata: Metadata(name: "web"), replicas: 6, run: run)
        let release = ReleaseRef(version: 1, digest: "sha256:" + String(repeating: "0", count: 64))

        var members: [String: (node: FleetNode, task: Task<Void, Never>)] = [:]
        func start(_ name: String) throws {
            var options = FleetNode.Options(
                keyspace: try FleetKeyspace(cluster: "bench"), node: name, labels: [:], releaseDirectory: repo.root.file("\(name)/fleet/release"))
            options.leaseTTL = ttl
            var configuration = EtcdClient.Configuration(endpoints: etcd.endpoints)
            configuration.requestTimeout = 1
            let node = FleetNode(
                options: options, client: try EtcdClient(configuration), key: repo.keys[name]!, trust: trust,
                store: FileStateStore(root: repo.root.file("\(name)/state")))
            node.releaseTaken(release, desired)
            members[name] = (node, Task { await node.run() })
        }
        func held(_ name: String) -> Set<Int> { members[name]?.node.share(of: desired)?.assignedReplicas?["web"] ?? [] }
        func wait(_ seconds: Double, _ condition: () -> Bool) async -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if condition() { return true }
                try? await Task.sleep(nanoseconds: 2_000_000)
            }
            return condition()
        }
        for name in names { try start(name) }
        guard await wait(30, { names.map(held).reduce(0) { $0 + $1.count } == 6 }) else { throw TestFailure("the fleet did not place 6 replicas") }

        // A quiet fleet: what etcd is asked for, per second, over 10 s.
        try await Task.sleep(nanoseconds: 2_000_000_000)
        let before = names.map { members[$0]!.node.client.requests }
        try await Task.sleep(nanoseconds: 10_000_000_000)
        var quiet: [String: Int] = [:]
        for (index, name) in names.enumerated() {
            for (path, count) in members[name]!.node.client.requests { quiet[path, default: 0] += count - (before[index][path] ?? 0) }
        }
        print("fleet on a real etcd: 3 nodes, 6 replicas, lease TTL \(ttl) s")
        print()
        Measure.row("figure", "Stet", "reference", "ratio / target")
        let total = quiet.values.reduce(0, +)
        let keepalives = quiet["/v3/lease/keepalive"] ?? 0
        Measure.row("quiet fleet: etcd requests/s", String(format: "%.1f", Double(total) / 10),
                    String(format: "%.1f keepalives/s", Double(keepalives) / 10), total == keepalives ? "keepalives only" : "ALSO \(quiet.filter { $0.key != "/v3/lease/keepalive" && $0.value > 0 })")

        var times: [Double] = []
        for round in 0..<kills {
            let victim = names[round % names.count]
            let lost = held(victim)
            guard let (node, task) = members[victim] else { continue }
            let killed = Date()
            task.cancel()
            members[victim] = nil
            let moved = await wait(Double(ttl) * 4) {
                let now = names.filter { $0 != victim }.map(held).reduce(Set<Int>()) { $0.union($1) }
                return lost.isSubset(of: now)
            }
            let seconds = Date().timeIntervalSince(killed)
            guard moved else { throw TestFailure("round \(round): the replicas of \(victim) did not move within \(4 * ttl) s") }
            times.append(seconds)
            await task.value
            try? await node.client.shutdown()
            try start(victim)
            _ = await wait(10) { (try? members[victim]?.node.mayAct) == true }
        }
        for (_, member) in members {
            member.task.cancel()
            await member.task.value
            try? await member.node.client.shutdown()
        }
        times.sort()
        func percentile(_ p: Double) -> Double { times[min(times.count - 1, Int((Double(times.count - 1) * p).rounded()))] }
        let (p50, p99) = (percentile(0.5), percentile(0.99))
        Measure.row("host failover p50 (\(times.count) kills)", String(format: "%.2f s", p50), "TTL \(ttl) s + 0.5 s", String(format: "%.2f of target", p50 / (Double(ttl) + 0.5)))
        Measure.row("host failover p99", String(format: "%.2f s", p99), "TTL \(ttl) s + 1 s", String(format: "%.2f of target", p99 / (Double(ttl) + 1)))
        Measure.row("Patroni 3.0.2, ttl 10 (this machine)", "", "10.1 s p50", String(format: "%.2f", p50 / 10.1))
    }
}
