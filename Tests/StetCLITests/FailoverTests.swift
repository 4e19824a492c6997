import Foundation
import StetProviders
import StetTesting
import Testing

/// Samples every replica's role over HTTP every 10 ms, for the whole test: how many replicas said
/// "primary" at once, at most, and when each replica's answer changed.
final class RolePoller: @unchecked Sendable {
    let ports: [Int]
    private let lock = NSLock()
    private var running = true
    private var samples = 0
    private var most = 0
    private var overlaps: [String] = []
    /// When each index last began and stopped saying "primary".
    private var became: [Int: Date] = [:]
    private var ceased: [Int: Date] = [:]
    private var current: Set<Int> = []
    private var thread: Thread?

    init(ports: [Int]) {
        self.ports = ports
        let thread = Thread { [unowned self] in self.loop() }
        self.thread = thread
        thread.start()
    }

    private func loop() {
        while lock.withLock({ running }) {
            let now = Date()
            var primaries: Set<Int> = []
            for (index, port) in ports.enumerated() where Self.role(port: port, index: index) == "primary" { primaries.insert(index) }
            lock.withLock {
                samples += 1
                most = max(most, primaries.count)
                if primaries.count > 1 { overlaps.append("\(RFC3339Milliseconds.text(now)): \(primaries.sorted())") }
                for index in primaries.subtracting(current) { became[index] = now }
                for index in current.subtracting(primaries) { ceased[index] = now }
                current = primaries
            }
            usleep(10_000)
        }
    }

    func stop() { lock.withLock { running = false } }

    var mostAtOnce: Int { lock.withLock { most } }
    var sampleCount: Int { lock.withLock { samples } }
    var overlapSamples: [String] { lock.withLock { overlaps } }
    var primaries: Set<Int> { lock.withLock { current } }
    func becamePrimary(_ index: Int) -> Date? { lock.withLock { became[index] } }
    func ceasedPrimary(_ index: Int) -> Date? { lock.withLock { ceased[index] } }

    /// `GET /role-INDEX` from 127.0.0.1:`port`, with 100 ms timeouts: the body, or nil.
    static func role(port: Int, index: Int) -> String? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return nil }
        let request = Array("GET /role-\(index) HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        guard send(fd, request, request.count, Int32(MSG_NOSIGNAL)) == request.count else { return nil }
        var response = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while response.count < 65_536 {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            response.append(contentsOf: buffer[0..<n])
        }
        let text = String(decoding: response, as: UTF8.self)
        guard text.hasPrefix("HTTP/1.0 200") || text.hasPrefix("HTTP/1.1 200"), let body = text.range(of: "\r\n\r\n") else { return nil }
        return text[body.upperBound...].trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

enum RFC3339Milliseconds {
    static func text(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }
}

extension FleetFixture {
    /// Service `db`, active/passive: `replicas` replicas from `port`, each serving its working
    /// folder over HTTP, where its role file `role-INDEX` says what it is: written from `STET_ROLE`
    /// at start, and by the promote and demote commands.
    func failoverRelease(replicas: Int = 3, port: Int, demote: String = "echo standby > role-$STET_REPLICA", timeout: String = "5s",
                         fence: String = "demote", prefer: String = "{}", extra: String = "") throws {
        let work = repo.root.file("db-work")
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        chmod(work, 0o777)
        try repo.root.write("manifests/db.yaml", """
            apiVersion: stet/v1
            kind: Service
            metadata: {name: db}
            spec:
              replicas: \(replicas)
              run:
                command: [sh, -c, 'echo "$STET_ROLE" > role-$STET_REPLICA; exec python3 -m http.server --bind 127.0.0.1 "$PORT"']
                workingDir: \(work)
                ports: {start: \(port)}
                stopTimeout: 2s
              health:
                http: {path: /}
                interval: 200ms
                timeout: 200ms
                failureThreshold: 3
                startPeriod: 2s
              restart:
                backoff: {initial: 100ms, max: 1s}
              failover:
                mode: primary
                promote: [sh, -c, 'echo primary > role-$STET_REPLICA']
                demote: [sh, -c, '\(demote)']
                fence: \(fence)
                timeout: \(timeout)
                prefer: \(prefer)
            \(extra)
            """)
        try repo.root.write("manifests/notify.yaml", Samples.notifier(name: "ops-log"))
        try repo.sign(["alice"])
    }

    /// Starts the three nodes, publishes `failoverRelease(port:)` from CI and waits until exactly
    /// one replica says it is the primary: its index and node.
    func startWithPrimary(port: Int, poller: RolePoller) throws -> (index: Int, node: String) {
        try failoverRelease(port: port)
        try startAll()
        try waitLive(3)
        let applied = try applyFromCI()
        guard applied.status == 0 else { throw TestFailure("apply --cluster: \(applied.combined)\n\(logs())") }
        guard eventually(timeout: 60, { poller.primaries.count == 1 }), let index = poller.primaries.first, let node = node(of: index) else {
            throw TestFailure("no primary: \(logs())")
        }
        return (index, node)
    }

    /// The node whose running replica of `db` has `index`.
    func node(of index: Int) -> String? { names.first { running($0, "db")[index] != nil } }

    /// The entries whose action is `action` in the audit log of `node`'s state directory, or of
    /// `directory` (CI's).
    func auditEntries(_ node: String? = nil, in directory: String? = nil, action: String) throws -> [[String: Any]] {
        let listed = try stet("audit", "list", "--state-dir", directory ?? stateDir(node ?? ""), "--json")
        return listed.stdout.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }.filter { $0["action"] as? String == action }
    }
}

/// A TCP proxy (python3) from `port` to `target`: a node reaches etcd through it, and stopping it
/// cuts that node off while it and its replicas keep running.
final class EtcdProxy {
    let port: Int
    let target: Int
    let folder: TemporaryDirectory
    var process: BackgroundProcess?

    init(port: Int, target: Int, folder: TemporaryDirectory) throws {
        self.port = port
        self.target = target
        self.folder = folder
        try folder.write("proxy.py", """
            import asyncio, sys
            async def pipe(reader, writer):
                try:
                    while data := await reader.read(65536):
                        writer.write(data)
                        await writer.drain()
                except Exception:
                    pass
                finally:
                    writer.close()
            async def handle(reader, writer):
                try:
                    upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", int(sys.argv[2]))
                except Exception:
                    writer.close()
                    return
                await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))
            async def main():
                server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), reuse_address=True)
                async with server:
                    await server.serve_forever()
            asyncio.run(main())

            """)
        try start()
    }

    func start() throws {
        process = try BackgroundProcess(try which("python3"), [folder.file("proxy.py"), String(port), String(target)], in: folder.path)
        let up = eventually(timeout: 10) {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            } == 0
        }
        if !up { throw TestFailure("the etcd proxy on \(port) did not come up: \(process?.output ?? "")") }
    }

    /// Kills the proxy and every connection through it.
    func cut() {
        process?.stop(SIGKILL, timeout: 5)
        process = nil
    }

    deinit { cut() }
}

@Suite(.serialized) struct FailoverTests {
    /// Three nodes, one replica of `db` each. The primary's host is lost: a standby is promoted
    /// within the lease TTL and a second (measured, not asserted). A planned switchover moves the
    /// primary to a named node. A demote that hangs is killed at its timeout and its replica
    /// stopped. A poller sampling every 10 ms never sees two primaries.
    @Test func thePrimaryMovesAndNeverOverlaps() throws {
        let fleet = try FleetFixture(etcdPort: 23900)
        defer { fleet.stopAll() }
        let port = 18900
        let poller = RolePoller(ports: (0..<3).map { port + $0 })
        defer { poller.stop() }
        let (first, primaryHost) = try fleet.startWithPrimary(port: port, poller: poller)
        let status = try fleet.stet("status", "--cluster", fleet.endpoints, "--state-dir", "ci-state")
        #expect(eventually(timeout: 10) {
            (try? fleet.stet("status", "--cluster", fleet.endpoints, "--state-dir", "ci-state"))?.stdout
                .contains("primary    service/db: replica \(first) on \(primaryHost)") ?? false
        }, "\(status.combined)")
        let hostStatus = try fleet.stet("status", "--state-dir", fleet.stateDir(primaryHost))
        #expect(hostStatus.stdout.contains("primary    service/db: replica \(first) on this node"), "\(hostStatus.combined)")
        #expect(try fleet.auditEntries(primaryHost, action: "promote").contains { $0["outcome"] as? String == "ok" })

        // The primary's host is lost.
        let killed = Date()
        fleet.loseHost(primaryHost)
        #expect(eventually(timeout: 30, interval: 0.01) { poller.primaries.count == 1 && !poller.primaries.contains(first) },
                "\(fleet.logs())")
        let second = poller.primaries.first ?? -1
        if let promoted = poller.becamePrimary(second) {
            print("primary failover: a new primary \(String(format: "%.2f", promoted.timeIntervalSince(killed))) s after its host was lost "
                + "(lease TTL \(fleet.ttl) s)")
        }
        #expect(fleet.node(of: second) != primaryHost)

        // The host comes back (placement is stable: its replica stays where it moved). A planned
        // switchover moves the primary to a node of a standby.
        try fleet.start(primaryHost)
        try fleet.waitLive(3)
        guard let primaryNode = fleet.node(of: second),
            let target = fleet.names.first(where: { $0 != primaryNode && !fleet.running($0, "db").isEmpty })
        else {
            Issue.record("no standby to switch over to: \(fleet.logs())")
            return
        }
        let standbys = fleet.running(target, "db").keys.sorted()
        #expect(eventually(timeout: 30) { standbys.allSatisfy { RolePoller.role(port: port + $0, index: $0) == "standby" } }, "\(fleet.logs())")
        let requested = Date()
        let moved = try fleet.stet("failover", "db", "--to", target, "--cluster", fleet.endpoints, "--state-dir", "ci-state", environment: fleet.ci)
        #expect(moved.status == 0, "\(moved.combined)\n\(fleet.logs())")
        #expect(moved.stdout.contains("on node \(target) (was replica \(second) on \(primaryNode))"), "\(moved.stdout)")
        #expect(eventually(timeout: 2) { poller.primaries.count == 1 && standbys.contains(poller.primaries.first!) }, "\(poller.primaries)")
        let third = poller.primaries.first ?? -1
        if let promoted = poller.becamePrimary(third), let demoted = poller.ceasedPrimary(second) {
            print("planned switchover: demoted after \(String(format: "%.3f", demoted.timeIntervalSince(requested))) s, "
                + "new primary after \(String(format: "%.3f", promoted.timeIntervalSince(requested))) s")
            #expect(demoted <= promoted)
        }
        #expect(try fleet.auditEntries(primaryNode, action: "demote").contains { $0["outcome"] as? String == "ok" })
        #expect(try fleet.auditEntries(in: "ci-state", action: "switchover").contains { $0["outcome"] as? String == "ok" })

        // A demote that hangs: killed at its timeout, and the replica stopped (fence by stop).
        try fleet.failoverRelease(port: port, demote: "sleep 60", timeout: "1s", fence: "stop")
        let updated = try fleet.applyFromCI()
        #expect(updated.status == 0, "\(updated.combined)\n\(fleet.logs())")
        let hungPid = fleet.running(target, "db")[third]?.pid
        let away = try fleet.stet("failover", "db", "--cluster", fleet.endpoints, "--state-dir", "ci-state", environment: fleet.ci)
        #expect(away.status == 0, "\(away.combined)\n\(fleet.logs())")
        #expect(eventually(timeout: 10) { poller.primaries.count == 1 && !poller.primaries.contains(third) })
        #expect(fleet.running(target, "db")[third]?.pid != hungPid, "the replica whose demote hung still runs")
        let demotes = try fleet.auditEntries(target, action: "demote")
        #expect(demotes.contains { $0["outcome"] as? String == "failed" && ($0["error"] as? String ?? "").contains("did not finish within") },
                "\(demotes)")
        #expect(try fleet.auditEntries(target, action: "fence-stop").contains { $0["outcome"] as? String == "ok" })

        poller.stop()
        #expect(poller.mostAtOnce <= 1, "two primaries at once: \(poller.overlapSamples.prefix(5))")
        #expect(poller.sampleCount > 500, "the poller sampled \(poller.sampleCount) times")
        print("primary overlap: \(poller.overlapSamples.count) of \(poller.sampleCount) samples (10 ms apart) saw two primaries")
    }

    /// A primary that fails its health check `failureThreshold` times in a row is demoted, its key
    /// freed, and a standby on another node promoted.
    @Test func anUnhealthyPrimaryIsReplaced() throws {
        let fleet = try FleetFixture(etcdPort: 23960)
        defer { fleet.stopAll() }
        let port = 18960
        let poller = RolePoller(ports: (0..<3).map { port + $0 })
        defer { poller.stop() }
        let (first, host) = try fleet.startWithPrimary(port: port, poller: poller)
        guard let pid = fleet.running(host, "db")[first]?.pid else {
            Issue.record("the primary replica has no record: \(fleet.logs())")
            return
        }
        // Frozen: it still runs, but answers no health check.
        kill(pid, SIGSTOP)
        defer { kill(pid, SIGCONT) }
        #expect(eventually(timeout: 30, interval: 0.02) { poller.primaries.count == 1 && !poller.primaries.contains(first) }, "\(fleet.logs())")
        #expect(fleet.node(of: poller.primaries.first ?? -1) != host || fleet.running(host, "db").count > 1)
        let demoted = try fleet.auditEntries(host, action: "demote")
        #expect(demoted.contains { ($0["reason"] as? String ?? "").contains("failed its health check") }, "\(demoted)")
        poller.stop()
        #expect(poller.mostAtOnce <= 1, "two primaries at once: \(poller.overlapSamples.prefix(5))")
    }

    /// A node cut off from etcd while its primary keeps running demotes it before its lease can
    /// expire: before any other node can be promoted. Back, it is a standby.
    @Test func aCutOffNodeFencesItsPrimaryInTime() throws {
        let fleet = try FleetFixture(etcdPort: 23910)
        defer { fleet.stopAll() }
        let port = 18910
        let proxy = try EtcdProxy(port: 23925, target: 23910, folder: fleet.repo.root)
        defer { proxy.cut() }
        let poller = RolePoller(ports: (0..<3).map { port + $0 })
        defer { poller.stop() }
        try fleet.failoverRelease(port: port, prefer: "{zone: a}")
        try fleet.start("host-a", labels: ["zone=a"], through: "http://127.0.0.1:23925")
        try fleet.start("host-b", labels: ["zone=b"])
        try fleet.start("host-c", labels: ["zone=c"])
        try fleet.waitLive(3)
        let applied = try fleet.applyFromCI()
        #expect(applied.status == 0, "\(applied.combined)\n\(fleet.logs())")
        #expect(eventually(timeout: 60) { poller.primaries.count == 1 }, "\(fleet.logs())")
        guard var index = poller.primaries.first else { return }
        if fleet.node(of: index) != "host-a" {
            let moved = try fleet.stet("failover", "db", "--to", "host-a", "--cluster", fleet.endpoints, "--state-dir", "ci-state", environment: fleet.ci)
            #expect(moved.status == 0, "\(moved.combined)\n\(fleet.logs())")
            #expect(eventually(timeout: 10) { poller.primaries.count == 1 && fleet.node(of: poller.primaries.first!) == "host-a" })
            index = poller.primaries.first ?? index
        }
        #expect(fleet.node(of: index) == "host-a", "\(fleet.logs())")
        let pid = fleet.running("host-a", "db")[index]?.pid

        let cut = Date()
        proxy.cut()
        #expect(eventually(timeout: 30, interval: 0.01) { poller.primaries.count == 1 && !poller.primaries.contains(index) }, "\(fleet.logs())")
        let demoted = poller.ceasedPrimary(index)
        let promoted = poller.primaries.first.flatMap { poller.becamePrimary($0) }
        if let demoted, let promoted {
            print("fencing: host-a demoted its primary \(String(format: "%.2f", demoted.timeIntervalSince(cut))) s after the cut, "
                + "the next primary came \(String(format: "%.2f", promoted.timeIntervalSince(cut))) s after it (lease TTL \(fleet.ttl) s)")
            #expect(demoted < promoted)
        } else {
            Issue.record("no demote or promote seen: \(fleet.logs())")
        }
        // Demoted, not stopped: the replica still runs, as a standby.
        #expect(fleet.running("host-a", "db")[index]?.pid == pid)
        #expect(RolePoller.role(port: port + index, index: index) == "standby")
        let cutStatus = try fleet.stet("status", "--state-dir", fleet.stateDir("host-a"))
        #expect(cutStatus.combined.contains("not acting"), "\(cutStatus.combined)")

        // Back: host-a rejoins as a standby, and the primary stays where it is.
        let now = poller.primaries
        try proxy.start()
        try fleet.waitLive(3)
        #expect(eventually(timeout: 20) { fleet.logs().contains("etcd answers again") }, "\(fleet.logs())")
        usleep(2_000_000)
        #expect(poller.primaries == now)
        poller.stop()
        #expect(poller.mostAtOnce <= 1, "two primaries at once: \(poller.overlapSamples.prefix(5))")
    }

    /// A crash-looping service spends one self-heal budget across the fleet, not one per node:
    /// three nodes with a budget of 3 correct it at most 3 times, plus what two nodes may decide
    /// at the same moment before either hears of the other (without sharing it would be 9).
    @Test func theSelfHealBudgetHoldsAcrossTheFleet() throws {
        let fleet = try FleetFixture(etcdPort: 23930)
        defer { fleet.stopAll() }
        try fleet.repo.root.write("manifests/crash.yaml", Samples.liveService(
            name: "crash", replicas: 3, port: 18930, command: "[sh, -c, 'sleep 0.5; exit 3']", backoffInitial: "100ms", backoffMax: "200ms"))
        try fleet.repo.root.write("manifests/notify.yaml", Samples.notifier(name: "ops-log"))
        try fleet.repo.sign(["alice"])
        for name in fleet.names { try fleet.start(name, extra: ["--budget", "3"]) }
        try fleet.waitLive(3)
        let applied = try fleet.stet(["apply", "--cluster", fleet.endpoints, "--state-dir", "ci-state", "--auto-approve", "--no-wait"], environment: fleet.ci)
        #expect(applied.status == 0, "\(applied.combined)\n\(fleet.logs())")
        func corrections() -> Int {
            fleet.names.reduce(0) { total, name in
                let folder = fleet.stateDir(name) + "/replicas/crash"
                return total + ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).reduce(0) { sum, file in
                    guard let data = FileManager.default.contents(atPath: folder + "/" + file),
                        let record = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
                    else { return sum }
                    return sum + (record["restarts"] as? Int ?? 0)
                }
            }
        }
        #expect(eventually(timeout: 60) { fleet.logs().contains("StetSelfHealBudgetExhausted") }, "\(fleet.logs())")
        // Long enough for a node with a budget of its own to spend it.
        usleep(6_000_000)
        let total = corrections()
        print("fleet self-heal budget: \(total) corrections of a crash-looping service across 3 nodes with a budget of 3")
        #expect(total >= 1 && total <= 3 + 2, "\(total) corrections\n\(fleet.logs())")
    }

    /// A saved plan applied with --cluster is claimed in etcd first: a second host cannot apply
    /// it, although its own state directory never saw it, and the refusal is recorded there.
    @Test func aSavedPlanAppliesOnceAcrossTheFleet() throws {
        let fleet = try FleetFixture(etcdPort: 23940)
        defer { fleet.stopAll() }
        try fleet.repo.root.write("manifests/solo.yaml", """
            apiVersion: stet/v1
            kind: Service
            metadata: {name: solo}
            spec:
              replicas: 1
              run: {command: [sleep, "300"], stopTimeout: 2s}

            """)
        try fleet.repo.sign(["alice"])
        for folder in ["p1", "p2"] {
            #expect(try fleet.stet("trust", "pin", "--state-dir", folder, environment: fleet.ci).status == 0)
        }
        // The replica the plan starts is stopped by the test that started it; a cleanup that
        // fails says so.
        defer {
            for folder in ["p1", "p2"] {
                let down = try? fleet.stet(["down", "--state-dir", folder], environment: fleet.ci)
                #expect(down?.status == 0, "stet down in \(folder): \(down?.combined ?? "did not run")")
            }
        }
        let planned = try fleet.stet(["plan", "--state-dir", "p1", "--out", "solo.plan"], environment: fleet.ci)
        #expect(planned.status == 2 || planned.status == 0, "\(planned.combined)")
        let first = try fleet.stet(["apply", "solo.plan", "--state-dir", "p1", "--cluster", fleet.endpoints, "--auto-approve"], environment: fleet.ci)
        #expect(first.status == 0, "\(first.combined)")
        let claimed = try fleet.etcd.etcdctl("get", "/stet/stet/plans/applied/", "--prefix", "--keys-only")
        #expect(claimed.stdout.contains("/stet/stet/plans/applied/plan-"), "\(claimed.combined)")
        // The same plan on another host (its facts hold there too: nothing runs) is refused.
        let second = try fleet.stet(["apply", "solo.plan", "--state-dir", "p2", "--cluster", fleet.endpoints, "--auto-approve"], environment: fleet.ci)
        #expect(second.status == 12, "\(second.combined)")
        #expect(second.stderr.contains("single use across the fleet") && second.stderr.contains("p1"), "\(second.combined)")
        let refusals = try fleet.auditEntries(in: "p2", action: "apply").filter { $0["kind"] as? String == "refusal" }
        #expect(!refusals.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: fleet.repo.root.file("p2/replicas/solo/0.json")))
    }

    /// Each node's audit log is witnessed by the others: they cosign its checkpoints, and
    /// `audit verify --cluster` checks the log against the newest tree a majority cosigned. A
    /// node whose log is put back to an older state (same key) is refused by its witnesses, who
    /// keep both checkpoints and raise StetAuditFork; its `audit verify --cluster` fails, naming them.
    @Test func witnessesCatchARewrittenLog() throws {
        let fleet = try FleetFixture(etcdPort: 23950)
        defer { fleet.stopAll() }
        try fleet.release(replicas: 3, port: 18950)
        let fast = ["--checkpoint-interval", "0.5"]
        for name in fleet.names { try fleet.start(name, extra: fast) }
        try fleet.waitLive(3)
        let applied = try fleet.applyFromCI()
        #expect(applied.status == 0, "\(applied.combined)\n\(fleet.logs())")
        func cosignatures(of node: String) -> [String] {
            ((try? fleet.etcd.etcdctl("get", "/stet/stet/cosignatures/\(node)/", "--prefix", "--keys-only"))?.stdout ?? "")
                .split(separator: "\n").map { String($0.split(separator: "/").last ?? "") }.filter { !$0.isEmpty }.sorted()
        }
        #expect(eventually(timeout: 30) { cosignatures(of: "host-a") == ["host-b", "host-c"] }, "\(cosignatures(of: "host-a"))\n\(fleet.logs())")
        func verify() -> ProcessOutput? { try? fleet.stet("audit", "verify", "--cluster", fleet.endpoints, "--state-dir", fleet.stateDir("host-a")) }
        func witnessedSize() -> Int {
            let out = verify()?.stdout ?? ""
            guard out.contains("witnessed by host-b, host-c"), let range = out.range(of: "the checkpoint of size ") else { return 0 }
            return Int(out[range.upperBound...].prefix { $0.isNumber }) ?? 0
        }
        // Both witnesses cosign the same tree once the log stands still.
        #expect(eventually(timeout: 30) { verify()?.status == 0 && witnessedSize() > 0 }, "\(verify()?.combined ?? "")\n\(fleet.logs())")

        // host-a's log as it was, kept aside; then it grows and is witnessed further.
        fleet.nodes["host-a"]?.stop()
        let audit = fleet.stateDir("host-a") + "/audit"
        let kept = fleet.repo.root.file("audit-kept")
        #expect(try StetTesting.run("cp", ["-a", audit, kept]).status == 0)
        // Entries in the copy: the witnesses must then cosign a tree larger than it.
        let before = (try String(contentsOfFile: kept + "/log.jsonl", encoding: .utf8)).split(separator: "\n").count
        try fleet.start("host-a", extra: fast)
        for step in 0..<3 {
            let recorded = try fleet.stet(["audit", "record", "--action", "note-\(step)", "--reason", "work on host-a", "--state-dir", fleet.stateDir("host-a")],
                                          environment: fleet.ci)
            #expect(recorded.status == 0, "\(recorded.combined)")
        }
        #expect(eventually(timeout: 30) { witnessedSize() >= before + 3 }, "witnessed \(witnessedSize()), kept \(before)\n\(fleet.logs())")

        // The log is put back (an attacker with the host and its key): the witnesses refuse.
        fleet.nodes["host-a"]?.stop()
        #expect(try StetTesting.run("rm", ["-rf", audit]).status == 0)
        #expect(try StetTesting.run("cp", ["-a", kept, audit]).status == 0)
        try fleet.start("host-a", extra: fast)
        #expect(eventually(timeout: 30) { fleet.logs().contains("StetAuditFork") && fleet.logs().contains("refused to cosign node host-a") },
                "\(fleet.logs())")
        for witness in ["host-b", "host-c"] {
            func forks() -> [String] { (try? FileManager.default.contentsOfDirectory(atPath: fleet.stateDir(witness) + "/fleet/forks")) ?? [] }
            #expect(eventually(timeout: 15) { forks().contains { $0.hasPrefix("host-a-") } }, "\(witness): \(forks())\n\(fleet.logs())")
        }
        let refused = try fleet.stet("audit", "verify", "--cluster", fleet.endpoints, "--state-dir", fleet.stateDir("host-a"))
        #expect(refused.status == 10, "\(refused.combined)")
        #expect(refused.stdout.contains("witnessed by host-b, host-c") && refused.stdout.contains("inconsistent"), "\(refused.combined)")
    }

    /// Lease settings that cannot hold a primary are refused at start, with the reason.
    /// `spec.drill.host`: each node drills its own loss for `db` in turn. The node holding the
    /// primary hands it over first (a planned switchover, timed), then drains itself; the leader
    /// places its replica on another node, and the drill passes once every replica runs
    /// elsewhere. The poller never sees two primaries.
    @Test func aHostDrillMovesTheServiceAndThePrimaryInTime() async throws {
        let fleet = try FleetFixture(etcdPort: 23970)
        defer { fleet.stopAll() }
        let port = 18970
        let poller = RolePoller(ports: (0..<3).map { port + $0 })
        defer { poller.stop() }
        try fleet.failoverRelease(port: port, extra: "  drill: {every: 30s, host: true, recoverWithin: 30s}")
        try fleet.startAll()
        try fleet.waitLive(3)
        let applied = try fleet.applyFromCI()
        #expect(applied.status == 0, "\(applied.combined)\n\(fleet.logs())")
        #expect(await pollUntil(timeout: 60) { poller.primaries.count == 1 }, "\(fleet.logs())")
        func verdicts() -> [(node: String, entry: [String: Any])] {
            fleet.names.flatMap { node in
                ((try? fleet.auditEntries(node, action: "drill")) ?? []).filter { $0["outcome"] != nil }.map { (node, $0) }
            }
        }
        #expect(await pollUntil(timeout: 120) {
            let passed = verdicts().filter { $0.entry["outcome"] as? String == "ok" }
            return passed.contains { ($0.entry["reason"] as? String ?? "").contains("switchover: primary on node") }
                && Set(passed.map(\.node)).count >= 2
        }, "\(verdicts().map { "\($0.node): \($0.entry)" })\n\(fleet.logs())")
        for (node, entry) in verdicts() where entry["outcome"] as? String == "ok" {
            let evidence = entry["reason"] as? String ?? ""
            #expect(evidence.contains("loss of node \(node): every replica of db healthy on other nodes"), "\(evidence)")
            print("host drill on \(node): \(evidence)")
        }
        #expect(verdicts().allSatisfy { $0.entry["outcome"] as? String != "failed" }, "\(verdicts().map { "\($0.node): \($0.entry)" })")
        poller.stop()
        #expect(poller.mostAtOnce <= 1, "two primaries at once: \(poller.overlapSamples.prefix(5))")
    }

    @Test func leaseSettingsThatCannotHoldAreRefused() throws {
        var repo = RepositoryFixture()
        _ = try repo.key("host-a")
        let refused = try Binary.run(
            ["run", "--cluster", "http://127.0.0.1:1", "--node", "host-a", "--key", "private/host-a.key", "--lease-ttl", "2", "--etcd-timeout", "1"],
            in: repo.root.path)
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("cannot hold a primary") && refused.stderr.contains("lost renewal"), "\(refused.combined)")
        let margin = try Binary.run(
            ["run", "--cluster", "http://127.0.0.1:1", "--node", "host-a", "--key", "private/host-a.key", "--fence-margin", "0.1"],
            in: repo.root.path)
        #expect(margin.status != 0 && margin.stderr.contains("leaves no time to demote"), "\(margin.combined)")
    }
}
