import Foundation
import StetProviders
import StetTesting
import Testing

/// `stet run --listen`: metrics that promtool accepts and a real Prometheus scrapes, the status
/// JSON, and the status page as headless Chromium renders it; and clients of the status port
/// that cannot take from the loop what it needs to heal.
@Suite(.serialized) struct ServerTests {
    var repo = RepositoryFixture()
    let ci = ["STET_KEY": "private/ci.key"]
    static let listen = 19465
    static let prometheusPort = 19490

    init() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        #expect(try stet("trust", "pin", environment: ci).status == 0)
        try repo.root.write("manifests/web.yaml", Samples.liveService(name: "web", replicas: 1, port: 18320))
        try repo.root.write("manifests/monitor.yaml", """
            apiVersion: stet/v1
            kind: Monitor
            metadata: {name: web-up}
            spec:
              probe: {service: web}
              interval: 500ms
              timeout: 400ms
              notify: [journal]
            ---
            apiVersion: stet/v1
            kind: Notifier
            metadata: {name: journal}
            spec:
              log: {}

            """)
        try repo.sign(["alice"])
    }

    func stet(_ arguments: String..., environment: [String: String] = [:]) throws -> ProcessOutput {
        try Binary.run(arguments, in: repo.root.path, environment: environment)
    }

    static func get(_ path: String, port: Int = listen) -> PlainHTTP.Response? {
        if case .success(let response) = PlainHTTP.request("GET", "http://127.0.0.1:\(port)\(path)", timeout: 2) { return response }
        return nil
    }

    @Test func metricsStatusAndPage() throws {
        let run = try BackgroundProcess(Binary.stet, ["run", "--interval", "0.5", "--listen", "127.0.0.1:\(Self.listen)"],
                                        in: repo.root.path, environment: ci)
        defer {
            run.stop()
            _ = try? stet("down", environment: ci)
        }
        #expect(eventually { Self.get("/healthz")?.status == 200 }, "\(run.output)")
        #expect(eventually(timeout: 30) {
            String(decoding: Self.get("/metrics")?.body ?? Data(), as: UTF8.self).contains(#"stet_replicas_ready{service="web"} 1"#)
        }, "\(run.output)")

        // promtool accepts the exposition.
        let metrics = try #require(Self.get("/metrics"))
        #expect(metrics.status == 200)
        let check = try StetTesting.run("promtool", ["check", "metrics"], input: metrics.body)
        #expect(check.status == 0, "\(check.combined)")

        // A real Prometheus scrapes it.
        try repo.root.write("prometheus/prometheus.yml", """
            global: {scrape_interval: 1s}
            scrape_configs:
              - job_name: stet
                static_configs: [{targets: ["127.0.0.1:\(Self.listen)"]}]

            """)
        let prometheus = try BackgroundProcess(
            "/usr/bin/prometheus",
            ["--config.file=prometheus/prometheus.yml", "--storage.tsdb.path=prometheus/data",
             "--web.listen-address=127.0.0.1:\(Self.prometheusPort)"],
            in: repo.root.path)
        defer { prometheus.stop() }
        func query(_ expression: String) -> String? {
            let encoded = expression.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? expression
            guard let response = Self.get("/api/v1/query?query=\(encoded)", port: Self.prometheusPort),
                let object = try? JSONSerialization.jsonObject(with: response.body) as? [String: Any],
                let result = ((object["data"] as? [String: Any])?["result"] as? [[String: Any]])?.first,
                let value = result["value"] as? [Any]
            else { return nil }
            return value.last as? String
        }
        #expect(eventually(timeout: 60) { query(#"stet_replicas_ready{service="web"}"#) == "1" }, "\(prometheus.output)")
        #expect(query("stet_release_version") == "1")
        #expect(query(#"stet_replicas_desired{service="web"}"#) == "1")

        // /status is the JSON of `stet status`.
        let status = try #require(Self.get("/status"))
        let object = try JSONSerialization.jsonObject(with: status.body) as? [String: Any]
        #expect((object?["services"] as? [[String: Any]])?.first?["resource"] as? String == "Service/web")

        // The page, rendered by headless Chromium; the screenshot is kept beside the build.
        let page = String(decoding: try #require(Self.get("/")).body, as: UTF8.self)
        for text in ["Service/web", "Monitor/web-up", "audit log"] { #expect(page.contains(text)) }
        let artifacts = Binary.packageRoot + "/.build/test-artifacts"
        try FileManager.default.createDirectory(atPath: artifacts, withIntermediateDirectories: true)
        let shot = artifacts + "/status-page.png"
        try? FileManager.default.removeItem(atPath: shot)
        let chromium = try StetTesting.run(
            "chromium", ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1000,700",
                         "--screenshot=\(shot)", "http://127.0.0.1:\(Self.listen)/"], timeout: 90)
        #expect(chromium.status == 0, "\(chromium.combined)")
        let png = try #require(FileManager.default.contents(atPath: shot))
        #expect(png.count > 5000 && png.prefix(4) == Data([0x89, 0x50, 0x4E, 0x47]))
        #expect(run.stop() == 0)
    }

    static func answers(_ port: Int) -> Bool {
        CheckRunner().run(.http(url: nil, path: "/", port: port, expectStatus: nil, bodyContains: nil), port: port, timeout: 0.5).ok
    }

    func replica() -> LoopReactionTests.Replica? { LoopReactionTests.replica(repo.stateDir, "web", 0) }

    func refusals() throws -> [String] {
        let list = try stet("audit", "list", "--json")
        return list.stdout.split(separator: "\n").compactMap {
            let entry = try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            return entry?["kind"] as? String == "refusal" ? String($0) : nil
        }
    }

    /// Descriptors `pid` has open.
    static func descriptors(_ pid: Int32) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? 0
    }

    /// Under `ulimit -n 256`, 300 clients that connect and send nothing: Stet keeps descriptors for
    /// the loop, so a killed replica is replaced, no release check turns into a refusal, the loop
    /// runs on, and once the clients go the server answers again.
    @Test func idleClientsBeyondTheFileLimitCannotStopTheLoop() throws {
        let run = try BackgroundProcess(
            "/bin/sh", ["-c", #"ulimit -n 256 && exec "$0" "$@""#, Binary.stet, "run", "--interval", "0.5",
                        "--listen", "127.0.0.1:\(Self.listen)"],
            in: repo.root.path, environment: ci)
        defer {
            run.stop()
            _ = try? stet("down", environment: ci)
            LoopReactionTests.killLeftovers(repo.stateDir, ["web"])
        }
        // This run's replica, recorded and answering (not one a test before left dying on the port).
        #expect(eventually { Self.get("/healthz")?.status == 200 && replica() != nil && Self.answers(18320) }, "\(run.output)")
        let before = try #require(replica())
        let base = Self.descriptors(run.pid)
        let clients = IdleClients(port: Self.listen, count: 300)
        defer { clients.closeAll() }
        // The server has taken its share (Stet without a bound takes every descriptor it has).
        #expect(eventually { Self.descriptors(run.pid) >= base + 60 }, "\(run.output)")
        kill(run.pid, SIGHUP)
        #expect(kill(before.pid, SIGKILL) == 0)
        #expect(eventually { LoopReactionTests.replaced(repo.stateDir, "web", 0, before: before, port: 18320) }, "\(run.output)")
        #expect(run.isRunning, "\(run.output)")
        #expect(Self.descriptors(run.pid) < 256)
        let refused = try refusals()
        #expect(refused.isEmpty, "\(refused)")
        clients.closeAll()
        #expect(eventually { Self.get("/status")?.status == 200 }, "\(run.output)")
        #expect(try refusals().isEmpty)
        #expect(run.stop() == 0, "\(run.output)")
    }

    /// Started under a soft limit of 128 descriptors (systemd's default is 1,024 beside a far
    /// higher hard limit), Stet raises it to the hard limit, and gives clients a quarter of it.
    @Test func theSoftFileLimitIsRaisedToTheHardOne() throws {
        var limit = rlimit()
        #expect(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0)
        try #require(limit.rlim_max > 128, "the hard limit leaves nothing to raise")
        let run = try BackgroundProcess(
            "/bin/sh", ["-c", #"ulimit -Sn 128 && exec "$0" "$@""#, Binary.stet, "run", "--interval", "0.5",
                        "--listen", "127.0.0.1:\(Self.listen)"],
            in: repo.root.path, environment: ci)
        defer {
            run.stop()
            _ = try? stet("down", environment: ci)
            LoopReactionTests.killLeftovers(repo.stateDir, ["web"])
        }
        #expect(eventually { Self.get("/healthz")?.status == 200 }, "\(run.output)")
        let limits = try String(contentsOfFile: "/proc/\(run.pid)/limits", encoding: .utf8)
        let line = limits.split(separator: "\n").first { $0.hasPrefix("Max open files") } ?? ""
        let numbers = line.split(separator: " ").compactMap { rlim_t($0) }
        #expect(numbers == [limit.rlim_max, limit.rlim_max], "\(line)")
        let share = min(256, max(4, Int(clamping: limit.rlim_max) / 4))
        #expect(run.output.contains("to at most \(share) clients at once"), "\(run.output)")
        #expect(run.stop() == 0, "\(run.output)")
    }

    /// A client that sends nothing, one that sends half a request, and one that sends a request
    /// a byte at a time: each is closed once its time for a request has run out (10 s), and the
    /// server answers others meanwhile.
    @Test func clientsThatDoNotFinishARequestAreClosed() throws {
        let run = try BackgroundProcess(Binary.stet, ["run", "--interval", "0.5", "--listen", "127.0.0.1:\(Self.listen)"],
                                        in: repo.root.path, environment: ci)
        defer {
            run.stop()
            _ = try? stet("down", environment: ci)
            LoopReactionTests.killLeftovers(repo.stateDir, ["web"])
        }
        #expect(eventually { Self.get("/healthz")?.status == 200 }, "\(run.output)")
        let clients = IdleClients(port: Self.listen, count: 3)
        defer { clients.closeAll() }
        let (silent, half, trickle) = (clients.descriptors[0], clients.descriptors[1], clients.descriptors[2])
        #expect(IdleClients.send(half, "GET /status HTTP/1.1\r\nHost: stet\r\n"))
        let request = Array("GET /status HTTP/1.1\r\nHost: stet\r\nUser-Agent: one byte at a time, for ever and ever\r\n".utf8)
        var sent = 0
        var closed: Set<Int32> = []
        #expect(eventually(timeout: 60, interval: 0.5) {
            if !closed.contains(trickle), sent < request.count, IdleClients.send(trickle, String(UnicodeScalar(request[sent]))) { sent += 1 }
            for fd in [silent, half, trickle] where IdleClients.isClosedByPeer(fd) { closed.insert(fd) }
            return closed.count == 3
        }, "still open: \(Set([silent, half, trickle]).subtracting(closed)), \(sent) bytes trickled")
        #expect(Self.get("/healthz")?.status == 200)
        #expect(run.stop() == 0, "\(run.output)")
    }

    /// 40 clients asking for /status, /metrics and / while the backup repository is unreadable
    /// (a restic that logs its calls, says "wrong password", and while `hold` exists waits first):
    /// the answers come from the loop's last look, so no request runs restic, and a replica killed
    /// meanwhile is replaced while restic would still be held.
    @Test func statusRequestsNeverRunResticAndDoNotHoldUpHealing() throws {
        let calls = repo.root.file("restic-calls")
        let hold = repo.root.file("hold")
        try repo.root.write("bin/restic", """
            #!/bin/sh
            echo "$*" >> '\(calls)'
            n=0
            while [ -e '\(hold)' ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n+1)); done
            echo 'Fatal: wrong password or no key found' >&2
            exit 1

            """, mode: 0o755)
        try repo.root.write("repo/config", "not a repository")
        try repo.root.write("restic-password", "secret\n", mode: 0o600)
        try repo.root.write("data/file", "data\n")
        try repo.root.write("manifests/backup.yaml", Samples.backupPolicy(
            name: "data", repository: repo.root.file("repo"), passwordFile: "restic-password", paths: ["data"]))
        try repo.sign(["alice"])
        var environment = ci
        environment["PATH"] = repo.root.file("bin") + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        let run = try BackgroundProcess(Binary.stet, ["run", "--interval", "3600", "--listen", "127.0.0.1:\(Self.listen)"],
                                        in: repo.root.path, environment: environment)
        let stop = StopFlag()
        let requests = DispatchGroup()
        defer {
            stop.set()
            requests.wait()
            unlink(hold)
            run.stop()
            _ = try? stet("down", environment: ci)
            LoopReactionTests.killLeftovers(repo.stateDir, ["web"])
        }
        func resticCalls() -> Int { (try? String(contentsOfFile: calls, encoding: .utf8))?.split(separator: "\n").count ?? 0 }
        // The loop has looked at the repository, and /status shows what it found.
        #expect(eventually {
            let body = Self.get("/status")?.body ?? Data()
            return String(decoding: body, as: UTF8.self).contains("does not hold its password") && Self.answers(18320)
        }, "\(run.output)")
        let looked = resticCalls()
        #expect(looked >= 1)
        try repo.root.write("hold", "")
        for index in 0..<40 {
            requests.enter()
            DispatchQueue.global().async {
                let path = ["/status", "/metrics", "/"][index % 3]
                while !stop.isSet { _ = Self.get(path) }
                requests.leave()
            }
        }
        let before = try #require(replica())
        #expect(kill(before.pid, SIGKILL) == 0)
        #expect(eventually { LoopReactionTests.replaced(repo.stateDir, "web", 0, before: before, port: 18320) }, "\(run.output)")
        stop.set()
        requests.wait()
        unlink(hold)
        #expect(resticCalls() == looked, "requests ran restic: \((try? String(contentsOfFile: calls, encoding: .utf8)) ?? "")")
        #expect(run.stop() == 0, "\(run.output)")
    }
}

/// A flag set once by the test, read by its helper threads.
final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}
