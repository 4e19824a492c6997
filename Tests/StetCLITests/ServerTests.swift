import Foundation
import StetProviders
import StetTesting
import Testing

/// `stet run --listen`: metrics that promtool accepts and a real Prometheus scrapes, the status
/// JSON, and the status page as headless Chromium renders it.
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
}
