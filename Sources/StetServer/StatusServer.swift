public import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
public import Prometheus

/// What `stet run --listen` serves, built from what the reconcile loop last observed and
/// recorded. The server asks for a new snapshot at most once per `version` and second, whatever
/// the number of requests: a request never starts work of its own (no restic, no health check).
public protocol StatusSource: Sendable {
    /// Changes whenever there is something new to show (the loop finished a pass). Read on
    /// every request: it must cost nothing.
    var version: Int { get }
    /// Everything served, from the loop's records and last observation; never observes itself.
    func snapshot() async -> StatusSnapshot
}

public struct StatusSnapshot: Sendable {
    /// The JSON of `stet status`.
    public var statusJSON: Data
    /// The status page (HTML, no external assets).
    public var page: String
    /// Sets the gauges to this snapshot's values.
    public var gauges: @Sendable (StetMetrics) -> Void

    public init(statusJSON: Data, page: String, gauges: @escaping @Sendable (StetMetrics) -> Void) {
        self.statusJSON = statusJSON
        self.page = page
        self.gauges = gauges
    }
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
///
/// Clients share the process with the loop, so they get a bounded part of it: at most
/// `Limits.connections` connections at once (further clients wait in the listen backlog, using
/// none of Stet's descriptors, until one closes), and each has `Limits.clientSeconds` for every
/// request (`ClientDeadline`). A server that fails (its port taken, a descriptor missing) is
/// started again after a pause; it never ends the loop.
public enum StatusServer {
    public struct Limits: Sendable, Equatable {
        /// Connections served at once.
        public var connections: Int
        /// Seconds a client has to send a request and receive its answer, from connecting or
        /// from its previous answer.
        public var clientSeconds: Int64 = 10

        public init(connections: Int, clientSeconds: Int64 = 10) {
            self.connections = connections
            self.clientSeconds = clientSeconds
        }

        /// A quarter of the open-file limit, at most 256 and at least 4: under systemd's default
        /// soft limit of 1,024, 768 descriptors stay the loop's whatever clients do.
        public static func share(ofOpenFiles limit: Int) -> Limits {
            Limits(connections: min(256, max(4, limit / 4)))
        }
    }

    /// Serves until the task is cancelled. `onRunning` is told the bound port; `log` hears why a
    /// server stopped, before it is started again (after 1 s, doubling up to a minute).
    public static func run(
        host: String, port: Int, limits: Limits, metrics: StetMetrics, source: some StatusSource,
        log: @escaping @Sendable (String) -> Void = { _ in }, onRunning: @escaping @Sendable (Int) -> Void = { _ in }
    ) async {
        let cache = SnapshotCache(source: source, metrics: metrics)
        var pause = 1.0
        while !Task.isCancelled {
            do {
                try await serve(host: host, port: port, limits: limits, metrics: metrics, cache: cache, onRunning: onRunning)
            } catch {
                if Task.isCancelled { return }
                log("the status server on \(host):\(port) stopped: \(error); starting it again in \(Int(pause)) s")
            }
            try? await Task.sleep(for: .seconds(pause))
            pause = min(pause * 2, 60)
        }
    }

    private static func serve(
        host: String, port: Int, limits: Limits, metrics: StetMetrics, cache: SnapshotCache,
        onRunning: @escaping @Sendable (Int) -> Void
    ) async throws {
        let router = Router()
        router.get("/metrics") { _, _ -> Response in
            _ = await cache.snapshot()
            return text(metrics.text, type: "text/plain; version=0.0.4; charset=utf-8")
        }
        router.get("/healthz") { _, _ -> Response in
            text("ok\n", type: "text/plain; charset=utf-8")
        }
        router.get("/status") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: await cache.snapshot().statusJSON)))
        }
        router.get("/") { _, _ -> Response in
            text(await cache.snapshot().page, type: "text/html; charset=utf-8")
        }
        // Quiet: Stet reports through its own log; a cancelled server is a normal stop.
        var logger = Logger(label: "stet.server")
        logger.logLevel = .critical
        let seconds = limits.clientSeconds
        let app = Application(
            router: router,
            server: .http1(configuration: .init(additionalChannelHandlers: [ClientDeadline(seconds: seconds)])),
            configuration: .init(
                address: .hostname(host, port: port), serverName: "stet",
                availableConnectionsDelegate: MaximumAvailableConnections(limits.connections)),
            onServerRunning: { channel in onRunning(channel.localAddress?.port ?? port) }, logger: logger)
        try await app.run()
    }

    private static func text(_ body: String, type: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = type
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

/// The snapshot requests are answered from: built again only when the source's version moved or
/// a second passed, once for all the requests waiting on it.
actor SnapshotCache {
    private let source: any StatusSource
    private let metrics: StetMetrics
    private var current: (snapshot: StatusSnapshot, version: Int, at: ContinuousClock.Instant)?
    private var building: Task<StatusSnapshot, Never>?

    init(source: any StatusSource, metrics: StetMetrics) {
        self.source = source
        self.metrics = metrics
    }

    func snapshot() async -> StatusSnapshot {
        let version = source.version
        if let current, current.version == version, ContinuousClock.now - current.at < .seconds(1) { return current.snapshot }
        if let building { return await building.value }
        let source = self.source
        let task = Task { await source.snapshot() }
        building = task
        let snapshot = await task.value
        building = nil
        current = (snapshot, version, ContinuousClock.now)
        snapshot.gauges(metrics)
        return snapshot
    }
}
