import CSys
import Foundation
import StetAudit
import StetCore
import StetCrypto
import StetEngine
import StetManifest
import StetPlanner
import StetProviders
import StetState
import StetTesting

/// `stet-bench plan`: planning 10,000 resources with the in-memory world (pure planning).
/// Targets: under 200 ms and 150 MB. Then the same plan with maintenance windows that govern
/// it (an allow window in Europe/Berlin and a deny window by selector; then the schedules that
/// cost most: a deny window open for 7 days every minute, and ten deny windows of every minute of
/// January 1), each beside the plan without windows, measured in the same run.
enum PlanBenchmark {
    static func run(_ arguments: [String]) throws {
        let count = arguments.first.flatMap(Int.init) ?? 10_000
        var desired = DesiredState()
        var observed = ObservedState()
        for index in 0..<count {
            let name = "svc-\(index)"
            let service = Service(
                metadata: Metadata(name: name, labels: ["team": index % 2 == 0 ? "shop" : "data"]), replicas: 2,
                run: Service.Run(command: ["serve", "--id", String(index)], env: ["MODE": "prod"], portsStart: 20_000 + index % 40_000),
                health: Service.Health(check: .tcp(address: nil, port: nil)))
            desired.services[name] = service
            let spec = Data(service.run.specText.utf8).sha256Reference
            var replicas: [Int: ObservedReplica] = [:]
            // A mix: most in sync, some exited, some on an old spec, some missing.
            for replica in 0..<(index % 7 == 0 ? 1 : 2) {
                replicas[replica] = ObservedReplica(
                    index: replica, status: index % 11 == 0 ? .exited : .running, pid: Int32(1000 + index), startTime: UInt64(index),
                    specHash: index % 13 == 0 ? "sha256:old" : spec, port: 20_000 + replica, health: .healthy, restarts: 0,
                    lastExit: nil, startedAt: Date())
            }
            observed.services[name] = ObservedService(name: name, replicas: replicas)
        }
        print("plan for \(count) services (2 replicas each), in-memory world, \(ProcessInfo.processInfo.activeProcessorCount) cores")
        print()
        Measure.row("figure", "Stet", "reference", "ratio / target")
        var times: [Double] = []
        var changes = 0
        Measure.resetPeak()
        for _ in 0..<3 {
            times.append(Measure.seconds {
                changes = Planner().plan(desired: desired, observed: observed, release: .init(version: 1, digest: "sha256:1"), now: Date()).changes.count
            })
        }
        let peak = Measure.peakResidentBytes()
        times.sort()
        Measure.row("plan \(count) resources (median of 3)", String(format: "%.0f ms", times[1] * 1000), "target 200 ms",
                    String(format: "%.2f of target", times[1] / 0.2))
        Measure.row("  changes planned", "\(changes)")
        Measure.row("peak resident memory (world + plans)", "\(peak >> 20) MB", "target 150 MB",
                    String(format: "%.2f of target", Double(peak) / Double(150 << 20)))
        try windows(desired: desired, observed: observed, without: times[1])
    }

    /// The plan above with windows, each figure beside the plan without them (`without`).
    static func windows(desired: DesiredState, observed: ObservedState, without: Double) throws {
        func window(_ name: String, _ schedule: String, _ duration: StetDuration, _ mode: MaintenanceWindow.Mode,
                    zone: ZoneInfo = .utc, selector: [String: String] = [:]) throws -> MaintenanceWindow {
            MaintenanceWindow(
                metadata: Metadata(name: name), schedule: try CronSchedule(parsing: schedule), duration: duration, zone: zone, mode: mode,
                selector: selector)
        }
        guard case .zone(let berlin) = ZoneDirectory.load("Europe/Berlin") else { throw TestFailure("no Europe/Berlin in the zoneinfo") }
        let cases: [(String, [MaintenanceWindow])] = [
            ("allow (Europe/Berlin) + deny by selector", [
                try window("nightly", "0 2 * * *", .seconds(7200), .allow, zone: berlin),
                try window("freeze", "0 9 * * 1-5", .seconds(3600), .deny, selector: ["team": "data"]),
            ]),
            ("deny every minute, open 7 days", [try window("always", "* * * * *", StetDuration(milliseconds: 7 * 86_400_000), .deny)]),
            ("ten deny windows, every minute of Jan 1", try (0..<10).map { try window("jan-\($0)", "* * 1 1 *", .seconds(60), .deny) }),
        ]
        for (label, windows) in cases {
            var gated = desired
            for window in windows { gated.windows[window.name] = window }
            var times: [Double] = []
            var waiting = 0
            for _ in 0..<3 {
                times.append(Measure.seconds {
                    waiting = Planner().plan(desired: gated, observed: observed, release: .init(version: 1, digest: "sha256:1"), now: Date())
                        .notices.count
                })
            }
            times.sort()
            Measure.row("  with \(label)", String(format: "%.0f ms", times[1] * 1000), String(format: "without %.0f ms", without * 1000),
                        String(format: "%.2f×, %d held", times[1] / without, waiting))
        }
    }
}

/// `stet-bench replicas [KILLS] [--hostile]`: the reconcile loop on real processes, in this process.
/// - Kill a replica 50 times: from the kill to the replacement started, and to healthy, beside
///   systemd's default restart delay (RestartSec=100ms). Targets: p50 under 50 ms, p99 under 150 ms.
/// - 50 replicas idle with their health checks: CPU and memory of the loop. Targets: under 2 % of
///   one core, under 60 MB.
/// - `--hostile`: the kills again while neighbours misbehave (`HostileNeighbours`), each figure
///   beside the quiet one of the same run: docs/architecture.md (principle 8) says they change nothing.
enum ReplicaBenchmark {
    static func run(_ arguments: [String]) async throws {
        let hostile = arguments.contains("--hostile")
        let kills = arguments.lazy.compactMap { Int($0) }.first ?? 50
        let replica = try BenchReplica.path()
        var repo = RepositoryFixture(root: TemporaryDirectory("stet-bench-replicas"))
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ops"]))
        let key = try repo.key("ops")
        let trust = AuditTrust([(name: "ops", publicKey: key.publicKey)])
        let store = FileStateStore(root: repo.stateDir)
        let policy = try TrustPolicy.load(file: repo.trustFile)
        // As `stet trust pin` does: the log records the pin before the policy is pinned.
        let log = try AuditLog(stateDirectory: store.root, trust: trust, key: key, host: "bench", via: "cli", release: .none)
        try log.append(AuditRecord(kind: .result, release: .none, action: "pin-trust", reason: "pinned for the benchmark", outcome: .ok))
        try log.close()
        try PinnedTrust.save(policy, to: store, now: Date())

        func release(replicas: Int, interval: String) throws {
            try repo.root.write("manifests/svc.yaml", """
                apiVersion: stet/v1
                kind: Service
                metadata: {name: bench}
                spec:
                  replicas: \(replicas)
                  run:
                    command: [\(replica)]
                    ports: {start: 19000}
                    stopTimeout: 2s
                  health:
                    http: {path: /}
                    interval: \(interval)
                    timeout: 200ms
                    failureThreshold: 3
                  restart:
                    backoff: {initial: 10ms, max: 20ms}

                """)
            try repo.sign(["alice"])
        }

        print("reconcile loop on real processes, \(ProcessInfo.processInfo.activeProcessorCount) cores")
        print()
        Measure.row("figure", "Stet", "reference", "ratio / target")

        // Respawn latency, two replicas.
        try release(replicas: 2, interval: "200ms")
        let provider = ReplicaProvider(store: store, baseDirectory: repo.root.path)
        let (loop, task) = try start(repo: repo, store: store, trust: trust, key: key, budget: kills * 4)
        defer { task.cancel() }
        let spawns = SpawnTimes()
        loop.onSpawn = { service, index, pid in if service == "bench", index == 0 { spawns.note(pid) } }
        guard waitFor(seconds: 20, { healthy(provider, 0) && healthy(provider, 1) }) else { throw TestFailure("the replicas did not come up") }
        let quiet = try measureKills(kills, provider: provider, recordFile: store.path("replicas/bench/0.json"), spawns: spawns)
        quiet.print(kills: kills)
        if hostile {
            let neighbours = try await HostileNeighbours(loop: loop)
            try repo.root.write("manifests/hostile.yaml", neighbours.manifests)
            try repo.sign(["alice"])
            kill(getpid(), SIGHUP)
            guard waitFor(seconds: 60, { neighbours.engaged }) else { throw TestFailure("the hostile neighbours were not engaged") }
            let measured = try measureKills(kills, provider: provider, recordFile: store.path("replicas/bench/0.json"), spawns: spawns)
            print()
            print("the same, with \(neighbours.description):")
            measured.print(kills: kills, beside: quiet)
            neighbours.stop()
            unlink(repo.root.file("manifests/hostile.yaml"))
            try repo.sign(["alice"])
            print()
        }

        // Idle with 50 replicas and their health checks.
        try release(replicas: 50, interval: "5s")
        kill(getpid(), SIGHUP)
        guard waitFor(seconds: 60, { (0..<50).allSatisfy { healthy(provider, $0) } }) else {
            throw TestFailure("50 replicas did not come up")
        }
        sleep(6)
        let cpu = Measure.cpuSeconds()
        let window = 30.0
        let wall = Measure.seconds { sleep(UInt32(window)) }
        let busy = (Measure.cpuSeconds() - cpu) / wall
        Measure.row("idle loop, 50 replicas, checks every 5 s", String(format: "%.2f %% of a core", busy * 100), "target 1 %",
                    String(format: "%.2f of target", busy * 100))
        Measure.row("  resident memory of the loop's process", "\(Measure.residentBytes() >> 20) MB", "target 60 MB",
                    String(format: "%.2f of target", Double(Measure.residentBytes()) / Double(60 << 20)))
        _ = loop
        kill(getpid(), SIGTERM)
        _ = try await task.value
        // Stop every replica.
        for index in 0..<50 { _ = try provider.stop("bench", index, timeout: 2) }
    }

    /// Kill → replacement started and → healthy, in milliseconds, sorted.
    struct KillFigures {
        var toSpawn: [Double] = []
        /// The replica's own death: kill → its pidfd readable.
        var toDeath: [Double] = []
        /// Stet's part: the replica's death → its replacement spawned.
        var deathToSpawn: [Double] = []
        var toStart: [Double] = []
        var toHealthy: [Double] = []
        /// The share of the machine's processor time the hypervisor gave elsewhere meanwhile:
        /// a virtual machine's tail latency is the host's as much as its own.
        var stolen: Double?

        func percentile(_ values: [Double], _ p: Double) -> Double { values[min(values.count - 1, Int(Double(values.count) * p))] }

        /// The rows; with `quiet`, each figure beside the quiet one of the same run.
        func print(kills: Int, beside quiet: KillFigures? = nil) {
            func row(_ label: String, _ values: [Double], _ quietValues: [Double]?, _ p: Double, target: Double?) {
                let value = percentile(values, p)
                if let quietValues {
                    let reference = percentile(quietValues, p)
                    Measure.row(label, String(format: "%.1f ms", value), String(format: "quiet %.1f ms", reference),
                                String(format: "%+.1f ms (%.2f of quiet)", value - reference, value / reference))
                } else if let target {
                    Measure.row(label, String(format: "%.1f ms", value), "systemd 100 ms",
                                String(format: "%.2f (target < %.0f ms)", value / 100, target))
                } else {
                    Measure.row(label, String(format: "%.1f ms", value))
                }
            }
            row("kill → replacement spawned, p50 (\(kills) kills)", toSpawn, quiet?.toSpawn, 0.5, target: 3)
            row("kill → replacement spawned, p99", toSpawn, quiet?.toSpawn, 0.99, target: 10)
            row("  of which the replica's death (kill → pidfd), p50", toDeath, quiet?.toDeath, 0.5, target: nil)
            row("  of which Stet (death → spawn), p50", deathToSpawn, quiet?.deathToSpawn, 0.5, target: nil)
            row("  of which Stet (death → spawn), p99", deathToSpawn, quiet?.deathToSpawn, 0.99, target: nil)
            row("kill → its record names it, p50", toStart, quiet?.toStart, 0.5, target: 50)
            row("kill → its record names it, p99", toStart, quiet?.toStart, 0.99, target: 150)
            row("kill → replacement healthy, p50", toHealthy, quiet?.toHealthy, 0.5, target: nil)
            row("kill → replacement healthy, p99", toHealthy, quiet?.toHealthy, 0.99, target: nil)
            Measure.row("  processor time stolen by the host meanwhile", stolen.map { String(format: "%.1f %%", $0) } ?? "not told")
        }
    }

    /// Kills replica 0 `kills` times, each time once it is healthy again.
    static func measureKills(_ kills: Int, provider: ReplicaProvider, recordFile: String, spawns: SpawnTimes) throws -> KillFigures {
        var figures = KillFigures()
        // Replacing a record renames a file into its folder: the benchmark hears of it from the
        // kernel, not by looking, which would take the CPU the loop needs (two cores).
        let notify = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard notify >= 0, inotify_add_watch(notify, (recordFile as NSString).deletingLastPathComponent, UInt32(IN_MOVED_TO)) >= 0 else {
            throw TestFailure("cannot watch the folder of \(recordFile): \(String(cString: strerror(errno)))")
        }
        defer { close(notify) }
        var events = [UInt8](repeating: 0, count: 4096)
        let ticks = Measure.processorTicks()
        for _ in 0..<kills {
            guard let before = try provider.record("bench", 0) else { throw TestFailure("no record") }
            // A pidfd of our own tells when the replica has died, apart from what Stet takes.
            let watch = stet_pidfd_open(before.pid)
            guard watch >= 0 else { throw TestFailure("no pidfd for pid \(before.pid)") }
            let killed = DispatchTime.now().uptimeNanoseconds
            kill(before.pid, SIGKILL)
            var ended = pollfd(fd: watch, events: Int16(POLLIN), revents: 0)
            _ = poll(&ended, 1, 30_000)
            let died = DispatchTime.now().uptimeNanoseconds
            close(watch)
            var started: UInt64 = 0
            // The record is decoded only when its file was replaced.
            var seen = recordStamp(recordFile)
            while DispatchTime.now().uptimeNanoseconds - killed < 30_000_000_000 {
                var renamed = pollfd(fd: notify, events: Int16(POLLIN), revents: 0)
                _ = poll(&renamed, 1, 100)
                while read(notify, &events, events.count) > 0 {}
                let stamp = recordStamp(recordFile)
                if stamp != seen {
                    seen = stamp
                    // Decoded here, not through the provider, which looks for the process of a
                    // pending record (pid 0) in all of /proc.
                    if let data = FileManager.default.contents(atPath: recordFile),
                        let after = try? JSONCoding.decoder.decode(ReplicaProvider.Record.self, from: data), after.pid != before.pid,
                        after.pid != 0
                    {
                        started = DispatchTime.now().uptimeNanoseconds
                        break
                    }
                }
            }
            guard started > 0, let pid = try? provider.record("bench", 0)?.pid, let spawned = spawns.time(of: pid) else {
                throw TestFailure("replica 0 was not replaced within 30 s")
            }
            figures.toSpawn.append(Double(spawned - killed) / 1e6)
            figures.toDeath.append(Double(died - killed) / 1e6)
            // Negative when the benchmark's own pidfd was heard after the replacement was spawned.
            figures.deathToSpawn.append((Double(spawned) - Double(died)) / 1e6)
            figures.toStart.append(Double(started - killed) / 1e6)
            guard waitFor(seconds: 30, { healthy(provider, 0) }) else { throw TestFailure("replica 0 did not become healthy") }
            figures.toHealthy.append(Double(DispatchTime.now().uptimeNanoseconds - killed) / 1e6)
            usleep(30_000)
        }
        figures.stolen = Measure.stolenPercent(from: ticks, to: Measure.processorTicks())
        figures.toSpawn.sort()
        figures.toDeath.sort()
        figures.deathToSpawn.sort()
        figures.toStart.sort()
        figures.toHealthy.sort()
        return figures
    }

    /// The inode of replica 0's record: records are replaced by a rename, so it changes with each save.
    static func recordStamp(_ path: String) -> ino_t {
        var info = stat()
        guard stat(path, &info) == 0 else { return 0 }
        return info.st_ino
    }

    static func healthy(_ provider: ReplicaProvider, _ index: Int) -> Bool {
        guard let record = try? provider.record("bench", index), record.pid != 0,
            ProcessTable.isAlive(record.pid, startTime: record.startTime), let port = record.port
        else { return false }
        return CheckRunner().run(.http(url: nil, path: "/", port: port, expectStatus: nil, bodyContains: nil), port: port, timeout: 0.5).ok
    }

    static func waitFor(seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(1_000)
        }
        return condition()
    }

    static func start(repo: RepositoryFixture, store: FileStateStore, trust: AuditTrust, key: PrivateKey, budget: Int) throws
        -> (ReconcileLoop, Task<Bool, any Error>)
    {
        let audit = try AuditLog(stateDirectory: store.root, trust: trust, key: key, host: "bench", via: "daemon", release: .none)
        var options = ReconcileLoop.Options(manifests: repo.manifests, trustFile: repo.trustFile)
        options.interval = 1
        options.budget = budget
        let loop = ReconcileLoop(options: options, store: store, audit: audit, baseDirectory: repo.root.path)
        let task = Task { try await loop.run() }
        return (loop, task)
    }
}

/// The benchmarks' replica: `stet-bench-replica`, built beside `stet-bench` (its `main.c` says
/// why it is in C), an HTTP server on $PORT that answers 200 to anything.
enum BenchReplica {
    static func path() throws -> String {
        let me = ProcessInfo.processInfo.arguments[0]
        let binary = me.hasPrefix("/") ? me : FileManager.default.currentDirectoryPath + "/" + me
        let path = (binary as NSString).deletingLastPathComponent + "/stet-bench-replica"
        guard access(path, X_OK) == 0 else {
            throw TestFailure("no \(path): build the package's products (swift run -c release stet-bench builds it)")
        }
        return path
    }
}

/// When the loop spawned each replica 0 (`ReconcileLoop.onSpawn`), by pid.
final class SpawnTimes: @unchecked Sendable {
    private let lock = NSLock()
    private var times: [Int32: UInt64] = [:]

    func note(_ pid: Int32) {
        let now = DispatchTime.now().uptimeNanoseconds
        lock.withLock { times[pid] = now }
    }

    func time(of pid: Int32) -> UInt64? { lock.withLock { times[pid] } }
}
