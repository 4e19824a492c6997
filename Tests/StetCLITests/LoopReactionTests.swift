import Foundation
import StetProviders
import StetTesting
import Testing

/// `stet run` reacts to a replica's exit whatever else it is doing: a monitor's probe or a git
/// fetch that has not finished, or a pass that is correcting another service. The slow work is
/// held open by a file the test removes at the end (each holder gives up by itself after 30 s),
/// so "the replica was replaced while the probe or fetch still ran" is an order of events, not a
/// race against a clock.
@Suite(.serialized) struct LoopReactionTests {
    var repo = RepositoryFixture()
    let ci = ["STET_KEY": "private/ci.key"]

    init() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
    }

    func stet(_ arguments: String..., environment: [String: String] = [:]) throws -> ProcessOutput {
        try Binary.run(arguments, in: repo.root.path, environment: environment)
    }

    struct Replica: Decodable {
        let pid: Int32
        let startTime: UInt64
    }

    static func replica(_ stateDir: String, _ service: String, _ index: Int) -> Replica? {
        guard let data = FileManager.default.contents(atPath: stateDir + "/replicas/\(service)/\(index).json") else { return nil }
        return try? JSONDecoder().decode(Replica.self, from: data)
    }

    static func answers(_ port: Int) -> Bool {
        CheckRunner().run(.http(url: nil, path: "/", port: port, expectStatus: nil, bodyContains: nil), port: port, timeout: 0.5).ok
    }

    /// True once replica `index` of `service` is a process other than `before`, alive and answering on `port`.
    static func replaced(_ stateDir: String, _ service: String, _ index: Int, before: Replica, port: Int) -> Bool {
        guard let after = replica(stateDir, service, index), after.pid != before.pid, after.pid != 0 else { return false }
        return ProcessTable.isAlive(after.pid, startTime: after.startTime) && answers(port)
    }

    /// Kills whatever replicas of `services` a failed test left running.
    static func killLeftovers(_ stateDir: String, _ services: [String]) {
        for service in services {
            for index in 0..<2 {
                guard let replica = replica(stateDir, service, index), ProcessTable.isAlive(replica.pid, startTime: replica.startTime)
                else { continue }
                kill(-replica.pid, SIGKILL)
                kill(replica.pid, SIGKILL)
            }
        }
    }

    /// A monitor whose exec probe runs until the test lets it finish: a replica killed meanwhile
    /// is replaced before the probe ends.
    @Test func aReplicaKilledDuringASlowProbeIsReplacedWhileTheProbeRuns() throws {
        try repo.root.write("manifests/svc.yaml", Samples.liveService(name: "probed", replicas: 2, port: 18600))
        try repo.root.write("manifests/monitor.yaml", """
            apiVersion: stet/v1
            kind: Monitor
            metadata: {name: slow}
            spec:
              probe:
                exec: {command: [sh, -c, "touch probing; n=0; while [ -e hold ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n+1)); done; rm -f probing"]}
              interval: 60s
              timeout: 60s
              notify: [journal]
            ---
            apiVersion: stet/v1
            kind: Notifier
            metadata: {name: journal}
            spec:
              log: {}

            """)
        try repo.sign(["alice"])
        #expect(try stet("trust", "pin", environment: ci).status == 0)
        let hold = repo.root.file("hold")
        let probing = repo.root.file("probing")
        try repo.root.write("hold", "")
        let run = try BackgroundProcess(Binary.stet, ["run", "--interval", "0.5"], in: repo.root.path, environment: ci)
        defer {
            unlink(hold)
            run.stop()
            _ = try? stet("down", environment: ci)
            Self.killLeftovers(repo.stateDir, ["probed"])
        }
        #expect(eventually { Self.answers(18600) && Self.answers(18601) }, "\(run.output)")
        #expect(eventually { FileManager.default.fileExists(atPath: probing) }, "the probe did not start: \(run.output)")
        // The recorded process, killed; on a loaded host the loop may have replaced it a moment
        // before (a health check that timed out), and then the new one is the one to kill.
        var killed: Replica?
        #expect(eventually {
            guard let record = Self.replica(repo.stateDir, "probed", 0), record.pid > 0, kill(record.pid, SIGKILL) == 0 else { return false }
            killed = record
            return true
        })
        let before = try #require(killed)
        #expect(eventually(timeout: 15) { Self.replaced(repo.stateDir, "probed", 0, before: before, port: 18600) }, "\(run.output)")
        #expect(FileManager.default.fileExists(atPath: probing), "the probe ended before the replica was replaced")
        unlink(hold)
        #expect(eventually { !FileManager.default.fileExists(atPath: probing) })
        #expect(run.stop() == 0, "\(run.output)")
    }

    /// `stet run --source git:…` while `git fetch` hangs (a `git` early on PATH that waits before
    /// running the real one): a replica killed meanwhile is replaced before the fetch ends.
    @Test func aReplicaKilledDuringASlowGitFetchIsReplacedWhileTheFetchRuns() throws {
        let host = TemporaryDirectory("stet-host")
        let state = host.file(".stet")
        try repo.root.write(".gitignore", "private/\n.stet/\n")
        try repo.root.write("manifests/svc.yaml", Samples.liveService(name: "fetched", replicas: 2, port: 18610))
        try repo.sign(["alice"])
        for arguments in [["init", "--quiet", "--initial-branch=main"], ["add", "-A"], ["commit", "--quiet", "-m", "signed release"]] {
            let output = try StetTesting.run("git", ["-c", "user.email=review@example.org", "-c", "user.name=Review"] + arguments,
                                             in: repo.root.path)
            #expect(output.status == 0, "git \(arguments): \(output.combined)")
        }
        let fetching = host.file("fetching")
        let hold = host.file("hold")
        try host.write("bin/git", """
            #!/bin/sh
            case " $* " in
            *" fetch "*)
                touch '\(fetching)'
                n=0
                while [ -e '\(hold)' ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n+1)); done
                rm -f '\(fetching)' ;;
            esac
            exec '\(try which("git"))' "$@"

            """, mode: 0o755)
        let environment = [
            "STET_KEY": repo.privateKeyPath("ci"), "STET_STATE_DIR": state,
            "PATH": host.file("bin") + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
        ]
        #expect(try Binary.run(["trust", "pin", repo.trustFile], in: host.path, environment: environment).status == 0)
        let run = try BackgroundProcess(Binary.stet, ["run", "--source", "git:" + repo.root.path, "--poll", "1s"], in: host.path,
                                        environment: environment)
        defer {
            unlink(hold)
            run.stop()
            _ = try? Binary.run(["down"], in: host.path, environment: environment)
            Self.killLeftovers(state, ["fetched"])
        }
        #expect(eventually { Self.answers(18610) && Self.answers(18611) }, "\(run.output)")
        try host.write("hold", "")
        #expect(eventually { FileManager.default.fileExists(atPath: fetching) }, "no fetch started: \(run.output)")
        let before = try #require(Self.replica(state, "fetched", 0))
        #expect(kill(before.pid, SIGKILL) == 0)
        #expect(eventually(timeout: 15) { Self.replaced(state, "fetched", 0, before: before, port: 18610) }, "\(run.output)")
        #expect(FileManager.default.fileExists(atPath: fetching), "the fetch ended before the replica was replaced")
        unlink(hold)
        #expect(eventually { !FileManager.default.fileExists(atPath: fetching) })
        #expect(run.stop() == 0, "\(run.output)")
    }

    /// A replica that dies while the loop waits for the state lock to correct another service:
    /// the pass that finds it dead (and records its exit) corrects it too.
    @Test func aReplicaThatDiesDuringAnotherServicesPassIsCorrected() throws {
        try repo.root.write("manifests/first.yaml", Samples.liveService(name: "first", replicas: 1, port: 18620))
        try repo.root.write("manifests/second.yaml", Samples.liveService(name: "second", replicas: 1, port: 18621))
        try repo.sign(["alice"])
        #expect(try stet("trust", "pin", environment: ci).status == 0)
        let run = try BackgroundProcess(Binary.stet, ["run", "--interval", "60"], in: repo.root.path, environment: ci)
        let lock = open(repo.stateDir + "/lock", O_RDWR | O_CREAT, 0o600)
        defer {
            close(lock)
            run.stop()
            _ = try? stet("down", environment: ci)
            Self.killLeftovers(repo.stateDir, ["first", "second"])
        }
        #expect(eventually { Self.answers(18620) && Self.answers(18621) }, "\(run.output)")
        let first = try #require(Self.replica(repo.stateDir, "first", 0))
        let second = try #require(Self.replica(repo.stateDir, "second", 0))
        #expect(flock(lock, LOCK_EX) == 0)
        // The loop sees the exit of second#0 and starts a pass for `second`, which waits for the lock.
        #expect(kill(second.pid, SIGKILL) == 0)
        #expect(eventually { run.output.contains("replica second#0 (pid \(second.pid)) ended") }, "\(run.output)")
        #expect(kill(first.pid, SIGKILL) == 0)
        #expect(eventually { !ProcessTable.isAlive(first.pid, startTime: first.startTime) })
        #expect(flock(lock, LOCK_UN) == 0)
        #expect(eventually(timeout: 15) { Self.replaced(repo.stateDir, "second", 0, before: second, port: 18621) }, "\(run.output)")
        #expect(eventually(timeout: 15) { Self.replaced(repo.stateDir, "first", 0, before: first, port: 18620) }, "\(run.output)")
        #expect(run.stop() == 0, "\(run.output)")
    }
}
