import Foundation
import StetProviders
import StetTesting
import Testing

/// Nothing a notifier or a probe does can kill, freeze or silence Stet (docs/architecture.md, principle 8):
/// notifiers that do not read their alert, that hang, or that never answer; exec probes that
/// leave children behind or write without end.
@Suite(.serialized) struct NeighbourTests {
    var repo = RepositoryFixture()
    let ci = ["STET_KEY": "private/ci.key"]
    /// A label value of 80,000 characters: an alert larger than a pipe holds (64 KiB).
    static let longLabel = String(repeating: "x", count: 80_000)

    init() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        #expect(try stet("trust", "pin", environment: ci).status == 0)
    }

    func stet(_ arguments: String..., environment: [String: String] = [:]) throws -> ProcessOutput {
        try Binary.run(arguments, in: repo.root.path, environment: environment)
    }

    /// A monitor whose probe fails at once (nothing listens on port 1) and fires at once.
    static func failingMonitor(_ name: String, notify: [String], note: String = "short") -> String {
        """
        apiVersion: stet/v1
        kind: Monitor
        metadata: {name: \(name)}
        spec:
          probe:
            tcp: {address: "127.0.0.1:1"}
          interval: 1s
          timeout: 500ms
          for: 0s
          labels: {note: \(note)}
          notify: [\(notify.joined(separator: ", "))]

        """
    }

    static func execNotifier(_ name: String, _ command: String) -> String {
        "apiVersion: stet/v1\nkind: Notifier\nmetadata: {name: \(name)}\nspec:\n  exec: {command: \(command)}\n"
    }

    static let journal = "apiVersion: stet/v1\nkind: Notifier\nmetadata: {name: journal}\nspec:\n  log: {}\n"

    /// The pid a command wrote to `file` in the repository, once it is there.
    func writtenPID(in file: String) -> Int32? {
        var pid: Int32?
        _ = eventually(timeout: 10) {
            pid = repo.root.read(file).flatMap { Int32(String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) }
            return pid != nil
        }
        return pid
    }

    static func isGone(_ pid: Int32) -> Bool { kill(pid, 0) != 0 && errno == ESRCH }

    // MARK: - Notifiers

    /// `exec: {command: ["true"]}` exits without reading its standard input: writing an alert to
    /// it killed `stet drill` with SIGPIPE (exit 141), every time with a large alert and now and
    /// then with a small one. It is that notifier's failure, named, and the others still deliver.
    @Test func aNotifierThatDoesNotReadItsAlertFailsAloneInADrill() throws {
        try repo.root.write("manifests/monitors.yaml", [
            Self.failingMonitor("large", notify: ["truth", "journal"], note: Self.longLabel),
            Self.failingMonitor("small", notify: ["truth"]),
            Self.execNotifier("truth", "[\"true\"]"), Self.journal,
        ].joined(separator: "---\n"))
        try repo.sign(["alice"])
        // A drill is of the release in force.
        #expect(try stet("verify", "--accept", environment: ci).status == 0)
        let drill = try stet("drill", "monitor", "large", environment: ci)
        #expect(drill.status == 1, "\(drill.combined)")
        #expect(drill.stdout.contains("failed  truth: true exited without reading the alert"), "\(drill.combined)")
        #expect(drill.stdout.contains("delivered  journal"), "\(drill.combined)")
        for _ in 0..<5 {
            let small = try stet("drill", "monitor", "small", environment: ci)
            #expect(small.status == 1, "\(small.combined)")
            #expect(small.stdout.contains("failed  truth: true exited without reading the alert"), "\(small.combined)")
        }
        let log = try stet("audit", "list", "--json").stdout
        #expect(log.contains("true exited without reading the alert"))
    }

    /// The same notifier under `stet run`: the loop keeps running and alerting the others.
    @Test func aNotifierThatDoesNotReadItsAlertDoesNotStopTheLoop() throws {
        try repo.root.write("manifests/monitors.yaml", [
            Self.failingMonitor("large", notify: ["truth", "journal"], note: Self.longLabel),
            Self.execNotifier("truth", "[\"true\"]"), Self.journal,
        ].joined(separator: "---\n"))
        try repo.sign(["alice"])
        let run = try BackgroundProcess(Binary.stet, ["run", "--interval", "0.5"], in: repo.root.path, environment: ci)
        defer { run.stop() }
        #expect(eventually(timeout: 20) { run.output.contains("alert firing: StetMonitorFailing monitor=large") }, "\(run.output.suffix(2000))")
        #expect(eventually(timeout: 20) { run.output.contains("notifier truth failed (true exited without reading the alert") },
                "\(run.output.suffix(2000))")
        #expect(run.isRunning)
        #expect(run.stop() == 0, "\(run.output.suffix(2000))")
    }

    /// A notifier that sleeps: an alert larger than a pipe blocked `drill` for ever, and a small
    /// one left the notifier running (its SIGTERM was blocked). Its deadline stops it, with
    /// everything it started.
    @Test(.timeLimit(.minutes(1))) func aNotifierThatHangsIsStoppedAtItsDeadline() throws {
        try repo.root.write("manifests/monitors.yaml", [
            Self.failingMonitor("large", notify: ["sleeper"], note: Self.longLabel),
            Self.failingMonitor("small", notify: ["napper"]),
            Self.execNotifier("sleeper", "[sh, -c, 'echo $$ > sleeper.pid; exec sleep 30']"),
            Self.execNotifier("napper", "[sh, -c, 'sleep 30 & echo $! > napper.pid; exec sleep 30']"),
        ].joined(separator: "---\n"))
        try repo.sign(["alice"])
        // A drill is of the release in force.
        #expect(try stet("verify", "--accept", environment: ci).status == 0)
        for (monitor, notifier) in [("large", "sleeper"), ("small", "napper")] {
            let drill = try stet("drill", "monitor", monitor, environment: ci)
            #expect(drill.status == 1, "\(drill.combined)")
            #expect(drill.stdout.contains("failed  \(notifier): sh did not finish within 3 s; stopped"), "\(drill.combined)")
            let pid = try #require(writtenPID(in: "\(notifier).pid"))
            #expect(Self.isGone(pid), "the \(notifier) notifier's process outlived the drill")
        }
    }

    /// Exec notifiers got Stet's whole environment, STET_KEY and STET_STATE_DIR included; they
    /// get only PATH, HOME, the language and time zone settings and TMPDIR.
    @Test func anExecNotifierSeesNoneOfStetsEnvironment() throws {
        try repo.root.write("manifests/monitors.yaml", [
            Self.failingMonitor("watched", notify: ["dump"]),
            Self.execNotifier("dump", "[sh, -c, 'env > notifier.env; cat > /dev/null']"),
        ].joined(separator: "---\n"))
        try repo.sign(["alice"])
        // A drill is of the release in force.
        #expect(try stet("verify", "--accept", environment: ci).status == 0)
        let drill = try stet("drill", "monitor", "watched", environment: ci.merging(["STET_STATE_DIR": ".stet", "SECRET_TOKEN": "t0p"]) { $1 })
        #expect(drill.status == 0, "\(drill.combined)")
        let environment = String(decoding: repo.root.read("notifier.env") ?? Data(), as: UTF8.self)
        #expect(environment.contains("PATH="), "\(environment)")
        #expect(!environment.contains("STET_"), "\(environment)")
        #expect(!environment.contains("SECRET_TOKEN"), "\(environment)")
    }

    /// A webhook whose receiver accepts and never answers shared one queue with every other
    /// notifier: each of its alerts held the queue for its 3 s timeout, so twenty of them kept the
    /// log's alerts back for a minute. Each notifier now has its own queue.
    @Test func aStuckNotifierDoesNotHoldBackAnotherNotifiersAlerts() throws {
        let stuck = try SilentListener()
        defer { stuck.stop() }
        let names = (1...20).map { String(format: "m-%02d", $0) }
        try repo.root.write("manifests/monitors.yaml", (names.map { Self.failingMonitor($0, notify: ["stuck", "journal"]) } + [
            "apiVersion: stet/v1\nkind: Notifier\nmetadata: {name: stuck}\nspec:\n  webhook: {url: \"http://127.0.0.1:\(stuck.port)/\"}\n",
            Self.journal,
        ]).joined(separator: "---\n"))
        try repo.sign(["alice"])
        let run = try BackgroundProcess(Binary.stet, ["run", "--interval", "0.5"], in: repo.root.path, environment: ci)
        defer { run.stop() }
        #expect(eventually(timeout: 20) { stuck.accepted > 0 }, "\(run.output.suffix(2000))")
        // Twenty alerts to the stuck webhook take it a minute at least; the log's come meanwhile.
        #expect(eventually(timeout: 20) { names.allSatisfy { run.output.contains("alert firing: StetMonitorFailing monitor=\($0) ") } },
                "\(run.output.suffix(3000))")
        #expect(run.stop() == 0, "\(run.output.suffix(2000))")
    }

    // MARK: - Probes

    /// An exec probe's children (`sleep 41 &`, or `setsid` out of its group) outlived it; every
    /// process a probe starts ends with it.
    @Test(.timeLimit(.minutes(1))) func anExecProbeLeavesNoProcessBehind() throws {
        try repo.root.write("manifests/monitors.yaml", """
            apiVersion: stet/v1
            kind: Monitor
            metadata: {name: background}
            spec:
              probe:
                exec: {command: [sh, -c, 'sleep 41 & echo $! > background.pid; echo x']}
              interval: 60s
              timeout: 20s
            ---
            apiVersion: stet/v1
            kind: Monitor
            metadata: {name: escaped}
            spec:
              probe:
                exec: {command: [sh, -c, 'setsid sh -c "echo \\$$ > escaped.pid; exec sleep 41" & while [ ! -s escaped.pid ]; do sleep 0.01; done; echo x']}
              interval: 60s
              timeout: 20s

            """)
        try repo.sign(["alice"])
        // `plan` probes each monitor once when no loop runs.
        let plan = try stet("plan")
        #expect(plan.status == 0, "\(plan.combined)")
        #expect(plan.stdout.contains("Monitor/background  ok"), "\(plan.combined)")
        #expect(plan.stdout.contains("Monitor/escaped  ok"), "\(plan.combined)")
        for name in ["background", "escaped"] {
            let pid = try #require(writtenPID(in: "\(name).pid"))
            #expect(Self.isGone(pid), "the \(name) probe's child is still running")
            if !Self.isGone(pid) { kill(pid, SIGKILL) }
        }
    }

    /// An exec probe that writes without end (300 MB) wrote it all to a scratch file; its output
    /// is read through a pipe, and more than 1 MiB stops it and fails the probe.
    @Test func anExecProbeThatWritesWithoutEndIsCapped() throws {
        try repo.root.write("manifests/monitors.yaml", """
            apiVersion: stet/v1
            kind: Monitor
            metadata: {name: flood}
            spec:
              probe:
                exec: {command: [sh, -c, 'head -c 300000000 /dev/zero; echo done']}
              interval: 60s
              timeout: 30s

            """)
        try repo.sign(["alice"])
        try FileManager.default.createDirectory(atPath: repo.root.file("scratch"), withIntermediateDirectories: true)
        let plan = try stet("plan", environment: ["TMPDIR": repo.root.file("scratch")])
        #expect(plan.status == 0, "\(plan.combined)")
        #expect(plan.stdout.contains("Monitor/flood  failing  wrote more than 1048576 bytes of output; stopped"), "\(plan.combined)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: repo.root.file("scratch")).isEmpty)
    }

    /// Fifty HTTP monitors against a receiver that accepts and never answers (timeout 5 s) held
    /// Swift's cooperative pool, which the passes use, and a killed replica came back after
    /// 16 s instead of 0.1 s. Probes run on Stet's own threads; a replica killed while every
    /// probe thread is stuck comes back as it does without them.
    @Test func fiftyProbesThatNeverAnswerDoNotDelayARestart() throws {
        let silent = try SilentListener()
        defer { silent.stop() }
        let port = 18650
        try repo.root.write("manifests/svc.yaml", Samples.liveService(name: "steady", replicas: 2, port: port))
        try repo.sign(["alice"])
        let run = try BackgroundProcess(Binary.stet, ["run", "--interval", "0.5"], in: repo.root.path, environment: ci)
        defer {
            run.stop()
            _ = try? stet("down", environment: ci)
        }
        #expect(eventually(timeout: 30) { Self.answers(port) && Self.answers(port + 1) }, "\(run.output.suffix(2000))")
        #expect(try restarts(port: port), "without the probes: \(run.output.suffix(2000))")

        try repo.root.write("manifests/hostile.yaml", Samples.silentMonitors(50, port: silent.port))
        try repo.sign(["alice"])
        // Every probe thread is held by a probe that will not be answered.
        #expect(eventually(timeout: 30) { silent.accepted >= 8 }, "\(run.output.suffix(2000))")
        #expect(try restarts(port: port), "with fifty probes that never answer: \(run.output.suffix(2000))")
        #expect(run.stop() == 0, "\(run.output.suffix(2000))")
    }

    struct Replica: Decodable {
        let pid: Int32
        let startTime: UInt64
    }

    func replica(_ service: String, _ index: Int) -> Replica? {
        repo.root.read(".stet/replicas/\(service)/\(index).json").flatMap { try? JSONDecoder().decode(Replica.self, from: $0) }
    }

    static func answers(_ port: Int) -> Bool {
        CheckRunner().run(.http(url: nil, path: "/", port: port, expectStatus: nil, bodyContains: nil), port: port, timeout: 0.5).ok
    }

    /// Kills replica 0 of `steady` and waits (10 s at most, a hundred times what it takes) for
    /// another process to answer on its port.
    func restarts(port: Int) throws -> Bool {
        let before = try #require(replica("steady", 0))
        kill(before.pid, SIGKILL)
        return eventually(timeout: 10) {
            guard let after = replica("steady", 0), after.pid != before.pid, after.pid != 0 else { return false }
            return ProcessTable.isAlive(after.pid, startTime: after.startTime) && Self.answers(port)
        }
    }
}
