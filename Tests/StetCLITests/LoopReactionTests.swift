import Foundation
import StetProviders
import StetTesting
import Testing

/// `stet run` reacts to a replica's exit whatever else it is doing: a pass that is correcting
/// another service.
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
