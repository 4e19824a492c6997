import Foundation
import StetCore
import StetEngine
import StetProviders
import StetState
import StetTesting

/// `stet-bench monitors`: 500 HTTP and TCP probes at a 1 s interval against local listeners for
/// 60 s, run by the monitor engine of `stet run`. Targets: CPU under 10 % of one core, probe
/// start jitter p99 under 50 ms, no probe skipped.
enum MonitorBenchmark {
    static func run(_ arguments: [String]) async throws {
        let count = arguments.first.flatMap(Int.init) ?? 500
        let seconds = arguments.dropFirst().first.flatMap(Double.init) ?? 60
        let replica = try BenchReplica.path()
        let listeners = (0..<4).map { 19_700 + $0 }
        var servers: [Process] = []
        defer {
            for server in servers {
                kill(server.processIdentifier, SIGKILL)
                server.waitUntilExit()
            }
        }
        for port in listeners {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: replica)
            process.environment = ["PORT": String(port)]
            try process.run()
            servers.append(process)
        }
        usleep(300_000)
        var desired = DesiredState()
        desired.notifiers["journal"] = Notifier(metadata: Metadata(name: "journal"), target: .log)
        var entries: [String: MonitorRegistry.Entry] = [:]
        for index in 0..<count {
            let port = listeners[index % listeners.count]
            let check: Check = index % 2 == 0
                ? .http(url: "http://127.0.0.1:\(port)/", path: nil, port: nil, expectStatus: 200, bodyContains: nil)
                : .tcp(address: "127.0.0.1:\(port)", port: nil)
            let monitor = Monitor(metadata: Metadata(name: "m\(index)"), probe: .check(check), interval: .seconds(1),
                                  timeout: StetDuration(milliseconds: 500), notify: ["journal"])
            desired.monitors[monitor.metadata.name] = monitor
            entries[monitor.metadata.name] = MonitorRegistry.Entry(specHash: MonitorRegistry.specHash(monitor), state: AlertState(), lastSent: nil)
        }
        let state = TemporaryDirectory("stet-bench-monitors")
        let store = FileStateStore(root: state.path)
        try MonitorRegistry(store: store).save(entries)
        let engine = MonitorEngine(
            store: store, replicas: ReplicaProvider(store: store), backups: BackupProvider(store: store), log: { _ in })
        let lateness = Lateness()
        engine.onProbe = { _, due, started in lateness.add(started.timeIntervalSince(due)) }
        engine.sync(desired)
        print("\(count) probes (half HTTP, half TCP) every 1 s for \(Int(seconds)) s against \(listeners.count) local listeners")
        print()
        Measure.row("figure", "Stet", "target", "ratio / target")
        // Warm up for a few seconds, then measure.
        let warmUntil = Date().addingTimeInterval(3)
        while Date() < warmUntil { try await step(engine, desired) }
        lateness.reset()
        let cpu = Measure.cpuSeconds()
        let started = Date()
        while Date().timeIntervalSince(started) < seconds { try await step(engine, desired) }
        let wall = Date().timeIntervalSince(started)
        let busy = (Measure.cpuSeconds() - cpu) / wall
        let values = lateness.sorted()
        let expected = Int(Double(count) * wall)
        Measure.row("CPU while probing", String(format: "%.1f %% of a core", busy * 100), "10 %", String(format: "%.2f", busy * 100 / 10))
        Measure.row("probe start jitter p50", String(format: "%.1f ms", values[values.count / 2] * 1000), "")
        Measure.row("probe start jitter p99", String(format: "%.1f ms", values[min(values.count - 1, values.count * 99 / 100)] * 1000),
                    "50 ms", String(format: "%.2f", values[min(values.count - 1, values.count * 99 / 100)] * 1000 / 50))
        Measure.row("probes run / due in the window", "\(values.count) / ~\(expected)", "none skipped",
                    String(format: "%.3f", Double(values.count) / Double(expected)))
        Measure.row("resident memory", "\(Measure.residentBytes() >> 20) MB")
    }

    /// Sleeps until the next probe is due, then runs what is due, as `stet run` does.
    static func step(_ engine: MonitorEngine, _ desired: DesiredState) async throws {
        if let next = engine.nextDue {
            let wait = next.timeIntervalSinceNow
            if wait > 0 { usleep(useconds_t(min(wait, 1) * 1e6)) }
        }
        await engine.runDue(desired)
    }

    final class Lateness: @unchecked Sendable {
        private var values: [Double] = []
        private let lock = NSLock()
        func add(_ value: Double) { lock.withLock { values.append(value) } }
        func reset() { lock.withLock { values = [] } }
        func sorted() -> [Double] { lock.withLock { values.sorted() } }
    }
}
