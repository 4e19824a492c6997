import Foundation
import StetFleet
import StetTesting
import Testing

/// A real etcd cluster of `members` on loopback, each with its own data directory; stopped by
/// `stop()` (the test's `defer`).
/// The etcd client against a real etcd 3.4: keys, transactions, leases, watches, and failover
/// between members.
@Suite(.serialized) struct EtcdClientTests {
    /// A client that has answered a put once the cluster is up.
    static func ready(_ cluster: EtcdCluster) async throws -> EtcdClient {
        let client = try EtcdClient(.init(endpoints: cluster.endpoints))
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if (try? await client.put("/ready", Data("1".utf8))) != nil { return client }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        try? await client.shutdown()
        throw TestFailure("etcd did not come up at \(cluster.endpoints)")
    }

    @Test func keysValuesAndTransactions() async throws {
        let cluster = try EtcdCluster(members: 1, basePort: 23790)
        defer { cluster.stop() }
        let client = try await Self.ready(cluster)
        let value = Data([0, 1, 2, 255] + Array("ünïcode".utf8))
        let revision = try await client.put("/stet/t/a", value)
        #expect(revision > 0)
        let read = try #require(try await client.get("/stet/t/a"))
        #expect(read.value == value && read.modRevision == revision && read.version == 1)
        #expect(try await client.get("/stet/t/missing") == nil)
        try await client.put("/stet/t/b", Data("b".utf8))
        try await client.put("/stet/u", Data("outside".utf8))
        #expect(try await client.list(prefix: "/stet/t/").kvs.map(\.key) == ["/stet/t/a", "/stet/t/b"])

        // Compare-and-swap on the revision: the first writer wins, the second is told.
        #expect(try await client.transaction([.modRevision("/stet/t/a", revision)], success: [.put("/stet/t/a", Data("2".utf8), lease: 0)]).succeeded)
        let lost = try await client.transaction(
            [.modRevision("/stet/t/a", revision)], success: [.put("/stet/t/a", Data("3".utf8), lease: 0)], failure: [.get("/stet/t/a")])
        #expect(!lost.succeeded)
        #expect(lost.read.first?.value == Data("2".utf8))
        #expect(try await client.create("/stet/t/new", Data("x".utf8)))
        #expect(try await !client.create("/stet/t/new", Data("y".utf8)))
        #expect(try await client.get("/stet/t/new")?.value == Data("x".utf8))
        // etcdctl sees what the client wrote.
        #expect(try cluster.etcdctl("get", "/stet/t/new", "--print-value-only").stdout == "x\n")

        #expect(try await client.delete("/stet/t/", prefix: true) == 3)
        #expect(try await client.list(prefix: "/stet/t/").kvs.isEmpty)
        #expect(try await client.get("/stet/u") != nil)
        // Out of bounds: refused before anything is sent.
        await #expect(throws: EtcdClient.Failure.self) { try await client.put(String(repeating: "k", count: 2000), Data()) }
        await #expect(throws: EtcdClient.Failure.self) { try await client.put("/big", Data(count: EtcdClient.maximumValue + 1)) }
        await #expect(throws: EtcdClient.Failure.self) { try await client.put("/line\nbreak", Data()) }
        try await client.shutdown()
    }

    /// A prefix read in pages, at the revision of the first: every key once, in order, and a key
    /// written meanwhile is not half-seen.
    @Test func aLongListComesInPages() async throws {
        let cluster = try EtcdCluster(members: 1, basePort: 23790)
        defer { cluster.stop() }
        let client = try await Self.ready(cluster)
        for batch in 0..<25 {
            let puts = (0..<100).map { EtcdClient.Operation.put(String(format: "/many/%05d", batch * 100 + $0), Data("v".utf8), lease: 0) }
            _ = try await client.transaction([], success: puts)
        }
        let (kvs, revision) = try await client.list(prefix: "/many/", pageSize: 300)
        #expect(kvs.count == 2500)
        #expect(kvs.map(\.key) == (0..<2500).map { String(format: "/many/%05d", $0) })
        #expect(revision > 0)
        #expect(client.requests["/v3/kv/range"] ?? 0 >= 9)
        await #expect(throws: EtcdClient.Failure.self) { try await client.list(prefix: "/many/", pageSize: 100, maximumKeys: 1000) }
        try await client.shutdown()
    }

    @Test func aKeyOnALeaseGoesWithIt() async throws {
        let cluster = try EtcdCluster(members: 1, basePort: 23800)
        defer { cluster.stop() }
        let client = try await Self.ready(cluster)
        // etcd's shortest lease is granted as asked.
        #expect(try await client.grantLease(ttl: 2).ttl == 2)
        // A TTL with room for a machine under load (etcd fsyncs every write).
        let lease = try await client.grantLease(ttl: 10)
        try await client.put("/stet/nodes/n1", Data("n1".utf8), lease: lease.id)
        #expect(try await client.get("/stet/nodes/n1")?.lease == lease.id)
        // Kept alive, it stays past its TTL.
        let kept = Date()
        while Date().timeIntervalSince(kept) < 12 {
            #expect(try await client.keepAlive(lease.id) != nil)
            try await Task.sleep(nanoseconds: 1_000_000_000)
        }
        #expect(try await client.get("/stet/nodes/n1") != nil)
        // Not kept alive, it goes; a keepalive then says the lease is gone.
        let deadline = Date().addingTimeInterval(40)
        while Date() < deadline, try await client.get("/stet/nodes/n1") != nil { try await Task.sleep(nanoseconds: 100_000_000) }
        #expect(try await client.get("/stet/nodes/n1") == nil)
        #expect(try await client.keepAlive(lease.id) == nil)
        await #expect(throws: EtcdClient.Failure.self) { _ = try await client.grantLease(ttl: 1) }
        let revoked = try await client.grantLease(ttl: 30)
        try await client.put("/stet/nodes/n2", Data(), lease: revoked.id)
        try await client.revoke(revoked.id)
        #expect(try await client.get("/stet/nodes/n2") == nil)
        try await client.shutdown()
    }

    @Test func aWatchSeesPutsAndDeletesInOrder() async throws {
        let cluster = try EtcdCluster(members: 1, basePort: 23810)
        defer { cluster.stop() }
        let client = try await Self.ready(cluster)
        let start = try await client.put("/stet/w/a", Data("1".utf8))
        // From a revision in the past: the put above is seen too.
        let stream = client.watch(prefix: "/stet/w/", fromRevision: start)
        try await client.put("/stet/w/b", Data(String(repeating: "{\"}", count: 1000).utf8))
        try await client.put("/stet/other", Data("not watched".utf8))
        try await client.delete("/stet/w/a")
        var seen: [(EtcdClient.WatchEvent.Kind, String, Int)] = []
        for try await batch in stream {
            seen += batch.map { ($0.kind, $0.kv.key, $0.kv.value.count) }
            if seen.count >= 3 { break }
        }
        #expect(seen.map(\.0) == [.put, .put, .delete])
        #expect(seen.map(\.1) == ["/stet/w/a", "/stet/w/b", "/stet/w/a"])
        #expect(seen[1].2 == 3000)
        try await client.shutdown()
    }

    /// Three members, one killed: requests go on through the others; all stopped: unreachable,
    /// said as such.
    @Test func requestsFailOverBetweenMembers() async throws {
        let cluster = try EtcdCluster(members: 3, basePort: 23820)
        defer { cluster.stop() }
        let client = try await Self.ready(cluster)
        try await client.put("/stet/f", Data("before".utf8))
        cluster.kill(0)
        try await client.put("/stet/f", Data("after".utf8))
        #expect(try await client.get("/stet/f")?.value == Data("after".utf8))
        cluster.stop()
        do {
            _ = try await client.get("/stet/f")
            Issue.record("a stopped cluster answered")
        } catch let failure as EtcdClient.Failure {
            #expect(failure.kind == .unreachable, "\(failure)")
        }
        try await client.shutdown()
    }

    /// The production set-up: etcd with `--client-cert-auth`; the client proves itself with its
    /// certificate and checks etcd's against the CA. A certificate from another CA gets nothing.
    @Test func tlsWithClientCertificates() async throws {
        let pki = TemporaryDirectory("stet-etcd-pki")
        func openssl(_ arguments: String...) throws {
            let result = try StetTesting.run("openssl", arguments, in: pki.path)
            #expect(result.status == 0, "\(arguments): \(result.combined)")
        }
        try "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n".write(
            toFile: pki.file("ext.cnf"), atomically: true, encoding: .utf8)
        for ca in ["ca", "other-ca"] {
            try openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                        "-subj", "/CN=\(ca)", "-keyout", "\(ca).key", "-out", "\(ca).pem")
        }
        for (name, ca) in [("server", "ca"), ("node", "ca"), ("stranger", "other-ca")] {
            try openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=\(name)",
                        "-keyout", "\(name).key", "-out", "\(name).csr")
            try openssl("x509", "-req", "-in", "\(name).csr", "-CA", "\(ca).pem", "-CAkey", "\(ca).key", "-CAcreateserial",
                        "-days", "2", "-extfile", "ext.cnf", "-out", "\(name).pem")
        }
        let folder = TemporaryDirectory("stet-etcd-tls")
        let etcd = try BackgroundProcess(
            try which("etcd"),
            ["--name", "tls", "--data-dir", "data", "--listen-peer-urls", "http://127.0.0.1:23841",
             "--initial-advertise-peer-urls", "http://127.0.0.1:23841", "--initial-cluster", "tls=http://127.0.0.1:23841",
             "--listen-client-urls", "https://127.0.0.1:23840", "--advertise-client-urls", "https://127.0.0.1:23840",
             "--cert-file", pki.file("server.pem"), "--key-file", pki.file("server.key"),
             "--client-cert-auth", "--trusted-ca-file", pki.file("ca.pem")],
            in: folder.path)
        defer { etcd.stop() }
        let tls = EtcdClient.TLS(caFile: pki.file("ca.pem"), certificateFile: pki.file("node.pem"), keyFile: pki.file("node.key"))
        let client = try EtcdClient(.init(endpoints: ["https://127.0.0.1:23840"], tls: tls))
        var answered = false
        let deadline = Date().addingTimeInterval(30)
        while !answered, Date() < deadline {
            answered = (try? await client.put("/stet/tls", Data("yes".utf8))) != nil
            if !answered { try await Task.sleep(nanoseconds: 100_000_000) }
        }
        #expect(answered, "\(etcd.output)")
        #expect(try await client.get("/stet/tls")?.value == Data("yes".utf8))
        try await client.shutdown()

        let stranger = try EtcdClient(.init(
            endpoints: ["https://127.0.0.1:23840"],
            tls: EtcdClient.TLS(caFile: pki.file("ca.pem"), certificateFile: pki.file("stranger.pem"), keyFile: pki.file("stranger.key"))))
        await #expect(throws: EtcdClient.Failure.self) { _ = try await stranger.get("/stet/tls") }
        try await stranger.shutdown()
        // A client that trusts another CA does not take etcd's certificate.
        let misled = try EtcdClient(.init(
            endpoints: ["https://127.0.0.1:23840"],
            tls: EtcdClient.TLS(caFile: pki.file("other-ca.pem"), certificateFile: pki.file("node.pem"), keyFile: pki.file("node.key"))))
        await #expect(throws: EtcdClient.Failure.self) { _ = try await misled.get("/stet/tls") }
        try await misled.shutdown()
    }

    @Test func endpointsOutOfFormAreRefused() {
        for endpoints in [[], ["127.0.0.1:2379"], ["ftp://h:1"], ["http://user:pw@h:1"], ["http://h:1/path"], ["https://h:1"]] {
            #expect(throws: EtcdClient.Failure.self, "\(endpoints)") { _ = try EtcdClient(.init(endpoints: endpoints)) }
        }
        for timeout in [0, .nan, .infinity, 1e300] {
            var configuration = EtcdClient.Configuration(endpoints: ["http://127.0.0.1:2379"])
            configuration.requestTimeout = timeout
            #expect(throws: EtcdClient.Failure.self, "\(timeout)") { _ = try EtcdClient(configuration) }
        }
    }
}
