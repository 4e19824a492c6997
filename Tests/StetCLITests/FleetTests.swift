import Foundation
import StetFleet
import StetManifest
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
    /// Its health check runs every second and allows a second for an answer: the fleet tests
    /// count restarts, and a loaded CI machine must not make a replica fail its check.
    func release(replicas: Int, port: Int, extra: String = "") throws {
        try repo.root.write("manifests/web.yaml", Samples.liveService(name: "web", replicas: replicas, port: port, healthEvery: "1s") + extra)
        try repo.root.write("manifests/notify.yaml", Samples.notifier(name: "ops-log"))
        try repo.sign(["alice"])
    }

    /// The manifests' release, verified under the repository's policy.
    func verified() throws -> VerifiedRelease {
        let policy = try TrustPolicy.load(file: repo.trustFile)
        guard case .success(let release) = try ReleaseVerifier(directory: repo.manifests, trust: policy, accepted: nil, now: Date()).verify().result
        else { throw TestFailure("the release does not verify") }
        return release
    }

    /// `stet apply --cluster` as CI runs it: its own state directory, no access to the hosts'.
    func applyFromCI(_ more: [String] = []) throws -> ProcessOutput {
        try stet(["apply", "--cluster", endpoints, "--state-dir", "ci-state", "--auto-approve", "--wait-timeout", "90s"] + more, environment: ci)
    }

    func start(_ node: String, key: String? = nil, labels: [String] = [], through cluster: String? = nil, extra: [String] = []) throws {
        let arguments = ["run", "--cluster", cluster ?? endpoints, "--node", node, "--key", "private/\(key ?? node).key", "--state-dir", stateDir(node),
                         "--lease-ttl", String(ttl), "--interval", "1"] + labels.flatMap { ["--label", $0] } + extra
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
        let root = stateDir(node) + "/replicas"
        for service in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [] {
            for replica in running(node, service).values { kill(replica.pid, SIGKILL) }
            // A node stopped between a spawn and its record leaves a pending record (pid 0);
            // the process carries the record's instance.
            let folder = root + "/" + service
            for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where name.hasSuffix(".json") {
                guard let data = FileManager.default.contents(atPath: folder + "/" + name),
                    let pending = try? JSONDecoder().decode(Pending.self, from: data), pending.pid == 0,
                    let instance = pending.instance, let found = ProcessTable.find(instance: instance)
                else { continue }
                kill(found.pid, SIGKILL)
            }
        }
    }

    struct Pending: Decodable {
        let pid: Int32
        let instance: String?
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
        let json = try fleet.stet("status", "--cluster", fleet.endpoints, "--state-dir", "ci-state", "--json")
        let view = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect((view?["nodes"] as? [[String: Any]])?.compactMap { ($0["assigned"] as? [String])?.count } == [2, 2, 2], "\(json.stdout)")
        let planned = try fleet.stet("plan", "--cluster", fleet.endpoints, "--state-dir", "ci-state")
        #expect(planned.status == 0 && planned.stdout.contains("(in force already)") && !planned.stdout.contains("to start"), "\(planned.combined)")
        let logs = try fleet.stet("audit", "list", "--cluster", fleet.endpoints, "--state-dir", "ci-state")
        for name in fleet.names { #expect(logs.stdout.contains("\(fleet.stateDir(name))/audit"), "\(logs.combined)") }

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
        // Back once its lease holds `nodes/host-b` (under load that takes a while): only then
        // can the leader place the scale-up there.
        try fleet.waitLive(fleet.names.count)
        try fleet.release(replicas: 9, port: 24100)
        let scaled = try fleet.applyFromCI()
        #expect(scaled.status == 0, "\(scaled.combined)\n\(fleet.logs())")
        #expect(eventually(timeout: 60) { fleet.placement().count == 9 }, "\(fleet.placement())\n\(fleet.logs())")
        #expect(fleet.running(victim).count == 3, "\(fleet.running(victim).keys.sorted())")
        for name in survivors {
            for (index, pid) in kept[name]! { #expect(fleet.running(name)[index]?.pid == pid, "\(name) restarted replica \(index)") }
        }

        // A node cut off with its replicas still running (its `stet run` killed, not them): once
        // its lease expired the others hold its replicas; back, it stops them, as they are no
        // longer its own, and each index runs once again.
        let cut = "host-c"
        let itsOwn = Set(fleet.running(cut).keys)
        #expect(!itsOwn.isEmpty)
        fleet.nodes[cut]?.stop(SIGKILL, timeout: 5)
        fleet.nodes[cut] = nil
        #expect(try eventually(timeout: 20) { try !fleet.live().contains(cut) })
        try fleet.start(cut)
        #expect(eventually(timeout: 60) {
            let now = fleet.placement()
            return now.count == 9 && now.values.allSatisfy { $0.count == 1 } && itsOwn.allSatisfy { now[$0] != [cut] }
        }, "\(fleet.placement())\n\(fleet.logs())")
        #expect(fleet.nodes[cut]?.output.contains("assigned-elsewhere") == true || fleet.nodes[cut]?.output.contains("stop-replica") == true,
                "\(fleet.logs())")
    }
}

extension FleetTests {
    /// The leader's host lost: a new leader within one lease TTL (measured), and the replicas of
    /// the surviving nodes untouched. One etcd member of three killed changes nothing; all three
    /// stopped for 10 s: nodes keep their replicas, start and stop nothing (a replica killed
    /// meanwhile stays down), `status --cluster` says etcd is unreachable, and work resumes after.
    @Test func leaderLossAndEtcdOutage() throws {
        let fleet = try FleetFixture(etcdPort: 23860, etcdMembers: 3)
        defer { fleet.stopAll() }
        try fleet.release(replicas: 6, port: 24200)
        try fleet.startAll()
        try fleet.waitLive(3)
        let applied = try fleet.applyFromCI()
        #expect(applied.status == 0, "\(applied.combined)\n\(fleet.logs())")
        #expect(eventually(timeout: 60) { fleet.placement().count == 6 }, "\(fleet.placement())\n\(fleet.logs())")

        // etcd's leader killed: nothing changes. While the other two elect a leader, renewals
        // fail; the node is held, and once etcd answers it acts again on the assignments read
        // afresh (it once took "not read yet" for "nothing assigned" and stopped every replica).
        let pids = { Dictionary(uniqueKeysWithValues: fleet.names.map { ($0, fleet.running($0).mapValues(\.pid)) }) }
        let steady = pids()
        guard let etcdLeader = try fleet.etcd.leader() else { throw TestFailure("etcd has no leader\n\(try fleet.etcd.etcdctl("endpoint", "status").combined)") }
        fleet.etcd.kill(etcdLeader)
        usleep(UInt32(fleet.ttl) * 2_000_000)
        #expect(try fleet.live().count == 3, "\(fleet.logs())")
        #expect(pids() == steady, "\(pids()) vs \(steady)\n\(fleet.logs())")
        try fleet.etcd.restart()

        // The leader's host lost.
        guard let leader = try fleet.leader() else { throw TestFailure("no leader\n\(fleet.logs())") }
        let survivors = fleet.names.filter { $0 != leader }
        let kept = steady.filter { survivors.contains($0.key) }
        let killed = Date()
        fleet.loseHost(leader)
        var newLeader: String?
        #expect(eventually(timeout: 30, interval: 0.02) {
            newLeader = try? fleet.leader()
            return newLeader != nil && newLeader != leader
        }, "\(fleet.logs())")
        print("fleet leader failover: \(newLeader ?? "none") leads after \(String(format: "%.2f", Date().timeIntervalSince(killed))) s (lease TTL \(fleet.ttl) s)")
        #expect(eventually(timeout: 30) { fleet.placement(among: survivors).count == 6 }, "\(fleet.placement())\n\(fleet.logs())")
        for (name, replicas) in kept {
            for (index, pid) in replicas { #expect(fleet.running(name)[index]?.pid == pid, "\(name) restarted replica \(index)") }
        }

        // Every etcd member stopped for 10 s.
        let before = pids().filter { survivors.contains($0.key) }
        fleet.etcd.stop()
        let outageStarted = Date()
        usleep(UInt32(fleet.ttl + 1) * 1_000_000)
        let status = try fleet.stet("status", "--cluster", fleet.endpoints, "--state-dir", "ci-state")
        #expect(status.status == 1 && status.stdout.contains("etcd is unreachable"), "\(status.combined)")
        let victim = survivors[0]
        guard let (index, replica) = fleet.running(victim).first else { throw TestFailure("\(victim) runs nothing") }
        #expect(kill(replica.pid, SIGKILL) == 0)
        #expect(eventually(timeout: 5) { fleet.running(victim)[index]?.pid != replica.pid }, "replica \(index) (pid \(replica.pid)) did not die")
        while Date().timeIntervalSince(outageStarted) < 10 { usleep(200_000) }
        #expect(fleet.running(victim)[index] == nil, "pid \(replica.pid) killed; \(victim) restarted replica \(index) while cut off from etcd\n\(fleet.logs())")
        var others = before
        others[victim]?[index] = nil
        #expect(pids().filter { survivors.contains($0.key) }.mapValues { $0.filter { $0.key != index || $0.value != replica.pid } } == others,
                "\(pids())")
        #expect(fleet.nodes[victim]?.output.contains("starting and stopping nothing") == true, "\(fleet.logs())")
        let local = try fleet.stet("status", "--state-dir", fleet.stateDir(victim))
        #expect(local.combined.contains("not acting since"), "\(local.combined)")
        try fleet.etcd.restart()
        #expect(eventually(timeout: 60) { fleet.running(victim)[index] != nil }, "\(fleet.logs())")
        #expect(eventually(timeout: 30) { fleet.placement(among: survivors).count == 6 }, "\(fleet.placement())\n\(fleet.logs())")
        for (name, replicas) in others {
            for (i, pid) in replicas { #expect(fleet.running(name)[i]?.pid == pid, "\(name) restarted replica \(i) after the outage") }
        }
    }
}

extension FleetTests {
    /// etcd is transport, never trust: a release put into etcd by hand (not a release, or an
    /// older signed one) is refused by every node, recorded in its audit log and alerted on, and
    /// the release in force stays; `apply --cluster` of an older release is refused; an
    /// assignment forged in etcd is ignored (and the leader writes the real one back); a host
    /// whose key is not in the node role cannot join.
    @Test func etcdIsNeverTrusted() throws {
        let fleet = try FleetFixture(etcdPort: 23870)
        defer { fleet.stopAll() }
        let two = Array(fleet.names.prefix(2))
        try fleet.release(replicas: 2, port: 24300)
        let first = try FleetRelease(fleet.verified())
        try fleet.release(replicas: 2, port: 24300, extra: "# version 2\n")
        for name in two { try fleet.start(name) }
        try fleet.waitLive(2)
        let applied = try fleet.applyFromCI()
        #expect(applied.status == 0, "\(applied.combined)\n\(fleet.logs())")
        let pids = { Dictionary(uniqueKeysWithValues: two.map { ($0, fleet.running($0).mapValues(\.pid)) }) }
        #expect(eventually(timeout: 30) { fleet.placement(among: two).count == 2 })
        let steady = pids()
        let audits = { (node: String) throws -> [[String: Any]] in
            try fleet.stet("audit", "list", "--json", "--state-dir", fleet.stateDir(node)).stdout.split(separator: "\n").compactMap {
                try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
        }
        let refusals = { (node: String) in (try? audits(node))?.filter { $0["kind"] as? String == "refusal" }.count ?? 0 }

        // Not a release at all.
        try fleet.etcd.etcdctl("put", "/stet/stet/release/current", "{\"version\": 99}")
        for name in two {
            #expect(eventually(timeout: 20) { refusals(name) >= 1 }, "\(name)\n\(fleet.logs())")
            #expect(eventually(timeout: 10) { fleet.nodes[name]?.output.contains("StetFleetReleaseRefused") == true }, "\(fleet.logs())")
        }
        // An older signed release, put by hand.
        let counted = Dictionary(uniqueKeysWithValues: two.map { ($0, refusals($0)) })
        try fleet.etcd.etcdctl("put", "/stet/stet/release/current", String(decoding: try first.encoded(), as: UTF8.self))
        for name in two {
            #expect(eventually(timeout: 20) { refusals(name) > counted[name]! }, "\(name)\n\(fleet.logs())")
            #expect(eventually(timeout: 10) { fleet.nodes[name]?.output.contains("StetReleaseRefused") == true }, "\(fleet.logs())")
            let accepted = FileManager.default.contents(atPath: fleet.stateDir(name) + "/release.json")
                .flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
            #expect(accepted?["version"] as? Int == 2, "\(String(describing: accepted))")
        }
        #expect(pids() == steady)

        // CI publishing the older release is refused (the fleet's is put back first).
        try fleet.etcd.etcdctl("del", "/stet/stet/release/current")
        #expect(try fleet.applyFromCI().status == 0)
        try fleet.etcd.etcdctl("put", "/stet/stet/release/current", String(decoding: try FleetRelease(fleet.verified()).encoded(), as: UTF8.self))
        try first.materialise(at: fleet.repo.root.file("old-manifests"))
        let rolledBack = try fleet.applyFromCI(["--manifests", "old-manifests"])
        #expect(rolledBack.status == 10 && rolledBack.stderr.contains("roll it back"), "\(rolledBack.combined)")

        // A forged assignment: web/0 moved to the other node, unsigned.
        let owner = two.first { fleet.running($0)[0] != nil }!
        let other = two.first { $0 != owner }!
        let forged = #"{"workload":"service/web/0","node":"\#(other)","release":"x","epoch":999999,"leader":"\#(other)"}"#
        try fleet.etcd.etcdctl("put", "/stet/stet/assignments/service/web/0", forged)
        #expect(eventually(timeout: 10) { fleet.logs().contains("ignored assignments/service/web/0") }, "\(fleet.logs())")
        usleep(2_000_000)
        #expect(fleet.running(other)[0] == nil, "the forged assignment was obeyed")
        #expect(fleet.running(owner)[0]?.pid == steady[owner]?[0], "\(fleet.logs())")
        #expect(eventually(timeout: 10) {
            (try? fleet.etcd.etcdctl("get", "/stet/stet/assignments/service/web/0", "--print-value-only").stdout.contains("payloadType")) == true
        }, "the leader did not write the real assignment back")

        // A second host under a name another node key holds cannot take it, and runs nothing.
        let twinState = fleet.repo.root.file("twin/state")
        #expect(try fleet.stet("trust", "pin", "--state-dir", twinState, environment: fleet.ci).status == 0)
        let record = try fleet.etcd.etcdctl("get", "/stet/stet/nodes/\(two[0])", "--print-value-only").stdout
        let twin = try BackgroundProcess(Binary.stet, [
            "run", "--cluster", fleet.endpoints, "--node", two[0], "--key", "private/host-c.key", "--state-dir", twinState, "--interval", "1",
        ], in: fleet.repo.root.path)
        defer { twin.stop() }
        #expect(eventually(timeout: 20) { twin.output.contains("is held by another host's key") }, "\(twin.output)")
        #expect(try fleet.etcd.etcdctl("get", "/stet/stet/nodes/\(two[0])", "--print-value-only").stdout == record)
        #expect(!FileManager.default.fileExists(atPath: twinState + "/replicas/web"))
        twin.stop()

        // A host whose key is not in the node role.
        let strangerState = fleet.repo.root.file("stranger/state")
        #expect(try fleet.stet("trust", "pin", "--state-dir", strangerState, environment: fleet.ci).status == 0)
        let stranger = try fleet.stet("run", "--cluster", fleet.endpoints, "--node", "host-x", "--key", "private/stranger.key",
                                      "--state-dir", strangerState)
        #expect(stranger.status == 10 && stranger.stderr.contains("not a node key"), "\(stranger.combined)")
        #expect(try !fleet.live().contains("host-x"))
    }
}
