import Foundation
import StetEngine
import StetServer
import StetTesting

/// `stet-bench replicas --hostile`: the neighbours the loop must outlive while it replaces killed
/// replicas (docs/architecture.md, principle 8), all at once:
/// - the status server the daemon runs with `--listen`, held by 1,000 clients that connect and
///   never send a request (more than systemd's default soft limit of 1,024 descriptors would
///   allow without a bound);
/// - 50 monitors whose HTTP probes go to a listener that accepts and never answers (timeout 5 s,
///   firing at the first failure);
/// - the notifier of those alerts, a command that never reads its input and runs until its
///   deadline.
final class HostileNeighbours {
    static let idleClientCount = 1000
    static let probeCount = 50

    let idleClients: IdleClients
    let silent: SilentListener
    let server: Task<Void, Never>
    let port: Int

    /// Starts the status server beside `loop` (on a free port), fills it with idle clients and
    /// opens the listener the probes will wait on. The monitors start with `manifests`.
    init(loop: ReconcileLoop) async throws {
        let limits = StatusServer.Limits.share(ofOpenFiles: OpenFileLimit.raise())
        let bound = BoundPort()
        server = Task {
            await StatusServer.run(
                host: "127.0.0.1", port: 0, limits: limits, metrics: StetMetrics(), source: LoopRelease(loop: loop),
                onRunning: { bound.set($0) })
        }
        // Waits without holding a thread of the pool, which the server needs.
        let deadline = Date().addingTimeInterval(10)
        while bound.value == nil, Date() < deadline { try await Task.sleep(for: .milliseconds(10)) }
        guard let port = bound.value else {
            server.cancel()
            throw TestFailure("the status server did not start")
        }
        self.port = port
        idleClients = IdleClients(port: port, count: Self.idleClientCount)
        silent = try SilentListener()
    }

    /// The monitors and their notifier, for the release.
    var manifests: String {
        let monitors = Samples.silentMonitors(Self.probeCount, port: silent.port, notify: "deaf")
        let notifier = """
            apiVersion: stet/v1
            kind: Notifier
            metadata: {name: deaf}
            spec:
              exec: {command: [sleep, "3600"]}

            """
        return monitors + "---\n" + notifier
    }

    /// True once the probes hold what they hold: every probe thread has waited out a probe (so
    /// alerts are firing) and waits on another.
    var engaged: Bool { silent.accepted >= 8 }

    var description: String {
        "\(Self.idleClientCount) idle clients on the status port, \(Self.probeCount) probes never answered, their notifier never reads"
    }

    func stop() {
        idleClients.closeAll()
        silent.stop()
        server.cancel()
    }

    /// A status source with only the release in force: the idle clients never ask anything.
    struct LoopRelease: StatusSource {
        let loop: ReconcileLoop
        var version: Int { loop.lastObservation.passes }
        func snapshot() async -> StatusSnapshot {
            let release = loop.current.release.version
            return StatusSnapshot(statusJSON: Data(#"{"release":\#(release)}"#.utf8), page: "release \(release)\n") { metrics in
                metrics.gauge("release_version", "Version of the release in force.").set(to: Double(release))
            }
        }
    }

    final class BoundPort: @unchecked Sendable {
        private let lock = NSLock()
        private var port: Int?
        var value: Int? { lock.withLock { port } }
        func set(_ port: Int) { lock.withLock { self.port = port } }
    }
}
