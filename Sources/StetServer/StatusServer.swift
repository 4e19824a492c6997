public import Foundation
import Hummingbird
import Logging
public import Prometheus

/// What `stet run --listen` serves. The engine fills the metrics and renders the status; the
/// server only answers.
public protocol StatusSource: Sendable {
    /// Brings the gauges up to date just before a scrape.
    func refresh(_ metrics: StetMetrics) async
    /// The JSON of `stet status`.
    func statusJSON() async -> Data
    /// The status page (HTML, no external assets).
    func statusPage() async -> String
}

/// Stet's own metrics, in Prometheus's text format (names `stet_…`, counters ending in `_total`).
public final class StetMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    public let reconcileSeconds: DurationHistogram

    public init() {
        reconcileSeconds = registry.makeDurationHistogram(
            descriptor: MetricNameDescriptor(
                namespace: "stet", metricName: "reconcile_duration", unitName: "seconds", helpText: "Time of one reconcile pass."),
            buckets: [.milliseconds(5), .milliseconds(20), .milliseconds(100), .milliseconds(500), .seconds(2), .seconds(10), .seconds(60)])
    }

    public func gauge(_ name: String, _ help: String, _ labels: [(String, String)] = []) -> Gauge {
        registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "stet", metricName: name, unitName: "", helpText: help), labels: labels)
    }

    public func counter(_ name: String, _ help: String, _ labels: [(String, String)] = []) -> Counter {
        registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "stet", metricName: name, unitName: "total", helpText: help), labels: labels)
    }

    public var text: String { registry.emitToString() }
}

/// The HTTP endpoints of `stet run --listen`: `/metrics`, `/healthz`, `/status`, and `/`.
public enum StatusServer {
    /// Serves until the task is cancelled. `onRunning` is told the bound port.
    public static func run(host: String, port: Int, metrics: StetMetrics, source: some StatusSource,
                           onRunning: @escaping @Sendable (Int) -> Void = { _ in }) async throws
    {
        let router = Router()
        router.get("/metrics") { _, _ -> Response in
            await source.refresh(metrics)
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: metrics.text)))
        }
        router.get("/healthz") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        router.get("/status") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: await source.statusJSON())))
        }
        router.get("/") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "text/html; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: await source.statusPage())))
        }
        // Quiet: Stet reports through its own log; a cancelled server is a normal stop.
        var logger = Logger(label: "stet.server")
        logger.logLevel = .critical
        let app = Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "stet"),
            onServerRunning: { channel in onRunning(channel.localAddress?.port ?? port) }, logger: logger)
        try await app.run()
    }
}
