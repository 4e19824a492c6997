import Foundation
import StetProviders
import StetTesting
import Testing

/// A fleet on one machine: a real etcd cluster and three `stet run --cluster` nodes, each with its
/// own state directory, running real replicas. A host loss is simulated by `kill -9` of a node's
/// `stet run` and of its replicas. Every test starts its own etcd and nodes, and stops them.
final class FleetFixture: @unchecked Sendable {
    var repo = RepositoryFixture()
    let etcd: EtcdCluster
    let names = ["host-a", "host-b", "host-c"]
    var nodes: [String: BackgroundProcess] = [:]
    let ttl: Int
    let ci = ["STET_KEY": "private/ci.key"]

    init(etcdPort: Int, etcdMembers: Int = 1, ttl: Int = 3) throws {
        self.ttl = ttl
        etcd = try EtcdCluster(members: etcdMembers, basePort: etcdPort)
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]), node: (1, names))
        try repo.key("stranger")
        // Each host pins the policy once; so does CI, in its own state directory.
        for name in names.map(stateDir) + ["ci-state"] {
            let pinned = try stet("trust", "pin", "--state-dir", name, environment: ci)
            guard pinned.status == 0 else { throw TestFailure("trust pin for \(name): \(pinned.combined)") }
        }
    }

    deinit { stopAll() }

    var endpoints: String { etcd.endpoints.joined(separator: ",") }

    func stateDir(_ node: String) -> String { repo.root.file("\(node)/state") }

    func stet(_ arguments: String..., environment: [String: String] = [:]) throws -> ProcessOutput {
        try Binary.run(arguments, in: repo.root.path, environment: environment)
    }

    func stet(_ arguments: [String], environment: [String: String] = [:]) throws -> ProcessOutput {
        try Binary.run(arguments, in: repo.root.path, environment: environment)
    }

    /// Writes service `web` with `replicas` replicas from `port` (and a log notifier) and signs it.
    func release(replicas: Int, port: Int, extra: String = "") throws {
        try repo.root.write("manifests/web.yaml", Samples.liveService(name: "web", replicas: replicas, port: port) + extra)
        try repo.root.write("manifests/notify.yaml", Samples.notifier(name: "ops-log"))
        try repo.sign(["alice"])
    }

    /// `stet apply --cluster` as CI runs it: its own state directory, no access to the hosts'.
    func applyFromCI(_ more: [String] = []) throws -> ProcessOutput {
        try stet(["apply", "--cluster", endpoints, "--state-dir", "ci-state", "--auto-approve", "--wait-timeout", "90s"] + more, environment: ci)
    }

    func start(_ node: String, key: String? = nil, labels: [String] = []) throws {
        let arguments = ["run", "--cluster", endpoints, "--node", node, "--key", "private/\(key ?? node).key", "--state-dir", stateDir(node),
                         "--lease-ttl", String(ttl), "--interval", "1"] + labels.flatMap { ["--label", $0] }
        nodes[node] = try BackgroundProcess(Binary.stet, arguments, in: repo.root.path)
    }

    func startAll() throws { for name in names { try start(name) } }

    func stopAll() {
        for (name, process) in nodes {
            process.stop()
            killReplicas(name)
        }
        nodes = [:]
        etcd.stop()
    }

    struct Replica: Decodable {
        let pid: Int32
        let startTime: UInt64
        let exitedAt: Double?
    }

    /// The replicas of `service` a node's records say run, by index (alive processes only).
    func running(_ node: String, _ service: String = "web") -> [Int: Replica] {
        let folder = stateDir(node) + "/replicas/\(service)"
        var result: [Int: Replica] = [:]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where name.hasSuffix(".json") {
            guard let data = FileManager.default.contents(atPath: folder + "/" + name),
                let replica = try? JSONDecoder().decode(Replica.self, from: data), replica.exitedAt == nil,
                let index = Int(name.dropLast(5)), ProcessTable.isAlive(replica.pid, startTime: replica.startTime)
            else { continue }
            result[index] = replica
        }
        return result
    }

    /// Every running replica index of `web`, and the nodes it runs on.
    func placement(_ service: String = "web", among: [String]? = nil) -> [Int: [String]] {
        var result: [Int: [String]] = [:]
        for name in among ?? names { for index in running(name, service).keys { result[index, default: []].append(name) } }
        return result
    }

    /// Kills a node's replicas (SIGKILL, as a dying host would).
    func killReplicas(_ node: String) {
        for service in (try? FileManager.default.contentsOfDirectory(atPath: stateDir(node) + "/replicas")) ?? [] {
            for replica in running(node, service).values { kill(replica.pid, SIGKILL) }
        }
    }

    /// A host loss: the node's `stet run` and its replicas, killed.
    func loseHost(_ node: String) {
        nodes[node]?.stop(SIGKILL, timeout: 5)
        nodes[node] = nil
        killReplicas(node)
    }

    /// The nodes whose `nodes/NAME` key exists (held by their lease).
    func live() throws -> [String] {
        try etcd.etcdctl("get", "/stet/stet/nodes/", "--prefix", "--keys-only").stdout.split(separator: "\n")
            .map { String($0.split(separator: "/").last ?? "") }.filter { !$0.isEmpty }.sorted()
    }

    func waitLive(_ count: Int) throws {
        guard try eventually(timeout: 30, { try live().count == count }) else { throw TestFailure("\(try live()) live\n\(logs())") }
    }

    func leader() throws -> String? {
        let out = try etcd.etcdctl("get", "/stet/stet/leader", "--print-value-only")
        let name = out.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        return name.isEmpty ? nil : name
    }

    func logs() -> String { nodes.map { "== \($0.key)\n\($0.value.output.suffix(6000))" }.sorted().joined(separator: "\n") }
}

@Suite(.serialized) struct FleetTests {
    /// Three nodes spread six replicas 2/2/2; a host lost moves its replicas to the others within
    /// the lease TTL and a second (measured, not asserted), and never two copies of one index after
    /// the lease expired; a StetNodeDown alert comes from a survivor; the host back takes new
    /// work (a scale-up) and restarts nothing of the others.
    @Test func replicasSpreadAndMoveWhenAHostDies() throws {
        let fleet = try FleetFixture(etcdPort: 23850)
        defer { fleet.stopAll() }
        try fleet.release(replicas: 6, port: 24100)
        try fleet.startAll()
        try fleet.waitLive(3)
        let applied = try fleet.applyFromCI()
        #expect(applied.status == 0, "\(applied.combined)\n\(fleet.logs())")
        #expect(applied.stdout.contains("service/web: 6 replicas"), "\(applied.stdout)")
        #expect(eventually(timeout: 60) { fleet.placement().count == 6 }, "\(fleet.placement())\n\(fleet.logs())")
        for name in fleet.names { #expect(fleet.running(name).count == 2, "\(name): \(fleet.running(name).keys.sorted())") }
        #expect(fleet.placement().values.allSatisfy { $0.count == 1 })

        let status = try fleet.stet("status", "--cluster", fleet.endpoints, "--state-dir", "ci-state")
        #expect(status.status == 0 && status.stdout.contains("nodes      3 live"), "\(status.combined)")

        let victim = "host-b"
        let lost = Set(fleet.running(victim).keys)
        let survivors = fleet.names.filter { $0 != victim }
        let before = Dictionary(uniqueKeysWithValues: survivors.map { ($0, fleet.running($0).mapValues(\.pid)) })
        let killed = Date()
        fleet.loseHost(victim)
        #expect(!lost.isEmpty)
        #expect(eventually(timeout: 30, interval: 0.02) {
            let now = fleet.placement(among: survivors)
            return lost.allSatisfy { now[$0]?.isEmpty == false }
        }, "\(fleet.placement())\n\(fleet.logs())")
        let moved = Date().timeIntervalSince(killed)
        print("fleet failover: replicas of the lost host running elsewhere after \(String(format: "%.2f", moved)) s (lease TTL \(fleet.ttl) s)")
        // Never two copies of one index, for a while after.
        let deadline = Date().addingTimeInterval(3)
        while Date() < deadline {
            #expect(fleet.placement().values.allSatisfy { $0.count == 1 }, "\(fleet.placement())")
            usleep(100_000)
        }
        // The survivors kept what they ran.
        for name in survivors {
            for (index, pid) in before[name]! { #expect(fleet.running(name)[index]?.pid == pid, "\(name) restarted replica \(index)") }
        }
        #expect(eventually(timeout: 10) { fleet.logs().contains("StetNodeDown") && fleet.logs().contains("host-b is down") }, "\(fleet.logs())")

        // The host comes back: it takes the new replicas of a scale-up, nobody else restarts.
        let kept = Dictionary(uniqueKeysWithValues: survivors.map { ($0, fleet.running($0).mapValues(\.pid)) })
        try fleet.start(victim)
        try fleet.release(replicas: 9, port: 24100)
        let scaled = try fleet.applyFromCI()
        #expect(scaled.status == 0, "\(scaled.combined)\n\(fleet.logs())")
        #expect(eventually(timeout: 60) { fleet.placement().count == 9 }, "\(fleet.placement())\n\(fleet.logs())")
        #expect(fleet.running(victim).count == 3, "\(fleet.running(victim).keys.sorted())")
        for name in survivors {
            for (index, pid) in kept[name]! { #expect(fleet.running(name)[index]?.pid == pid, "\(name) restarted replica \(index)") }
        }
    }
}
