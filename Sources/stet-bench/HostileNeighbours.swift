import Foundation
import StetEngine
import StetServer
import StetTesting

/// `stet-bench replicas --hostile`: the neighbours the loop must outlive while it replaces killed
/// replicas (DESIGN.md principle 8). Here: the status server the daemon runs with `--listen`,
/// held by 1,000 clients that connect and never send a request (more than systemd's default
/// soft limit of 1,024 descriptors would allow without a bound).
final class HostileNeighbours {
    let idleClients: IdleClients
    let server: Task<Void, Never>
    let port: Int

    static let idleClientCount = 1000

    /// Starts the status server beside `loop` (on a free port) and fills it with idle clients.
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
        print("hostile: \(Self.idleClientCount) idle clients on the status port (the server serves \(limits.connections) at once)")
    }

    func stop() {
        idleClients.closeAll()
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
