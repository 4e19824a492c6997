import Foundation
import StetProviders
import StetTesting
import Testing

/// The release in force, kept in the state directory, is the one source of the desired state:
/// `stet run` takes a release `apply` accepted at once and never fights it; `status` shows what
/// runs whatever the manifests hold now, from any directory; `apply` accepts only what was
/// approved. Each test has its own ports and stops every process it started.
@Suite(.serialized) struct ReleaseInForceTests {
    var repo = RepositoryFixture()
    let ci = ["STET_KEY": "private/ci.key"]

    init() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        #expect(try stet("trust", "pin", environment: ci).status == 0)
    }

    func stet(_ arguments: String..., environment: [String: String] = [:]) throws -> ProcessOutput {
        try Binary.run(arguments, in: repo.root.path, environment: environment)
    }

    /// Writes service `name` and signs the release.
    func release(_ name: String, replicas: Int, port: Int, version: Int) throws {
        try repo.root.write("manifests/svc.yaml", Samples.liveService(name: name, replicas: replicas, port: port, version: version))
        try repo.sign(["alice"])
    }

    struct Replica: Decodable, Equatable {
        let pid: Int32
        let startTime: UInt64
        let specHash: String
    }

    func replicas(_ service: String) -> [Int: Replica] {
        let folder = repo.stateDir + "/replicas/\(service)"
        var result: [Int: Replica] = [:]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where name.hasSuffix(".json") {
            if let data = FileManager.default.contents(atPath: folder + "/" + name),
                let replica = try? JSONDecoder().decode(Replica.self, from: data), let index = Int(name.dropLast(5))
            {
                result[index] = replica
            }
        }
        return result
    }

    func entries() throws -> [[String: Any]] {
        try stet("audit", "list", "--json").stdout.split(separator: "\n").compactMap {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    func acceptedVersion() throws -> Int? {
        guard let data = FileManager.default.contents(atPath: repo.stateDir + "/release.json") else { return nil }
        return (try JSONSerialization.jsonObject(with: data) as? [String: Any])?["version"] as? Int
    }

    static func answers(_ port: Int) -> Bool {
        CheckRunner().run(.http(url: nil, path: "/", port: port, expectStatus: nil, bodyContains: nil), port: port, timeout: 0.5).ok
    }

    /// Stops every replica, and kills any a failed test left.
    func cleanUp(_ services: [String]) {
        _ = try? stet("down", environment: ci)
        for service in services {
            for replica in replicas(service).values where ProcessTable.isAlive(replica.pid, startTime: replica.startTime) {
                kill(-replica.pid, SIGKILL)
                kill(replica.pid, SIGKILL)
            }
        }
    }

    /// CI applies release 2 (two replicas of a new spec instead of three) while `stet run` holds
    /// release 1 and watches a manifest directory it will not look at again for an hour. The
    /// loop takes release 2 from the state directory and leaves apply's work alone: exactly
    /// release 2's replicas remain, and the loop starts, stops or replaces none of them.
    @Test func runTakesTheReleaseApplyAcceptedAndNeverUndoesIt() throws {
        defer { cleanUp(["fight"]) }
        try release("fight", replicas: 3, port: 18870, version: 1)
        let run = try BackgroundProcess(Binary.stet, ["run", "--interval", "3600"], in: repo.root.path, environment: ci)
        defer { run.stop() }
        #expect(eventually { (18870...18872).allSatisfy(Self.answers) }, "\(run.output)")

        try release("fight", replicas: 2, port: 18870, version: 2)
        let before = try entries().count
        let apply = try stet("apply", "--auto-approve", environment: ci)
        #expect(apply.status == 0, "\(apply.combined)")
        let applied = replicas("fight")
        #expect(applied.keys.sorted() == [0, 1])
        let byApply = try entries().count

        // The loop reacts to the replicas apply stopped, under the state lock once apply is done.
        #expect(eventually { run.output.contains("took release version 2") }, "\(run.output)")
        // What it does after that is over once it has stopped (a pass under way finishes first).
        #expect(run.stop() == 0, "\(run.output)")
        #expect(replicas("fight") == applied)
        #expect(applied.values.allSatisfy { ProcessTable.isAlive($0.pid, startTime: $0.startTime) })
        #expect(Self.answers(18870) && Self.answers(18871) && !Self.answers(18872))
        let log = try entries()
        #expect(log[before..<byApply].contains { $0["kind"] as? String == "release" && ($0["release"] as? [String: Any])?["version"] as? Int == 2 })
        let loopActions = log[byApply...].filter {
            ["intent", "result", "drift"].contains($0["kind"] as? String) && ($0["resource"] as? String) == "Service/fight"
        }
        #expect(loopActions.isEmpty, "the loop acted after apply: \(loopActions)")
    }

    /// `status` shows the release in force and what runs: not a refusal of the manifests (an
    /// edit nobody signed, an older release after `git reset`), and not advice to sign a release
    /// when run elsewhere with --state-dir. `plan` plans against the release in force then, and
    /// says why.
    @Test func statusAndPlanShowTheReleaseInForceWhateverTheManifestsHold() throws {
        defer { cleanUp(["shown"]) }
        try release("shown", replicas: 1, port: 18880, version: 1)
        #expect(try stet("apply", "--auto-approve", environment: ci).status == 0)
        let older = repo.root.snapshot("manifests")
        try release("shown", replicas: 2, port: 18880, version: 2)
        #expect(try stet("apply", "--auto-approve", environment: ci).status == 0)
        #expect(try eventually { try stet("status").status == 0 })

        func expectReleaseTwoShown(_ when: String) throws {
            let status = try stet("status")
            #expect(status.status == 0, "\(when): \(status.combined)")
            #expect(status.stdout.contains("release    version 2"), "\(when): \(status.stdout)")
            #expect(status.stdout.contains("Service/shown  2/2 ready: met"), "\(when): \(status.stdout)")
            let plan = try stet("plan", "--detailed-exitcode")
            #expect(plan.status == 0, "\(when): \(plan.combined)")
            #expect(plan.stdout.contains("Planned against release version 2, in force."), "\(when): \(plan.stdout)")
        }

        // An edit nobody signed.
        try repo.root.write("manifests/svc.yaml", Samples.liveService(name: "shown", replicas: 5, port: 18880, version: 3))
        try expectReleaseTwoShown("after an unsigned edit")
        #expect(try stet("plan").stdout.contains("holds changes that are not signed"))

        // The manifests of release 1, as `git reset` to its commit leaves them.
        try FileManager.default.removeItem(atPath: repo.manifests)
        for (path, data) in older { try repo.root.write("manifests/" + path, data) }
        try expectReleaseTwoShown("after a reset to release 1")
        #expect(try stet("plan").stdout.contains("holds an older release than the one in force"))

        // Elsewhere: no manifests, no keys.
        let elsewhere = TemporaryDirectory()
        let status = try Binary.run(["status", "--state-dir", repo.stateDir], in: elsewhere.path)
        #expect(status.status == 0, "\(status.combined)")
        #expect(status.stdout.contains("release    version 2"), "\(status.stdout)")
        #expect(!status.combined.contains("sign a release"), "\(status.combined)")
    }

    /// The release comes into force only once the plan is approved: declined at the prompt, or
    /// with no terminal and no --auto-approve, the release in force stays and nothing is applied.
    @Test func aReleaseNotApprovedIsNotAccepted() throws {
        defer { cleanUp(["asked"]) }
        try release("asked", replicas: 1, port: 18890, version: 1)
        #expect(try stet("apply", "--auto-approve", environment: ci).status == 0)
        let running = replicas("asked")
        try release("asked", replicas: 2, port: 18890, version: 2)

        let unattended = try stet("apply", environment: ci)
        #expect(unattended.status == 1, "\(unattended.combined)")
        #expect(unattended.stderr.contains("not on a terminal"), "\(unattended.stderr)")
        #expect(try acceptedVersion() == 1)

        // On a terminal (script(1) gives stet one), answering "no".
        let declined = try StetTesting.run(
            "script", ["-qec", "\(Binary.stet) apply", "/dev/null"], in: repo.root.path, environment: ci, input: Data("no\n".utf8))
        #expect(declined.status == 1, "\(declined.combined)")
        #expect(declined.stdout.contains("Only 'yes' applies"), "\(declined.combined)")
        #expect(try acceptedVersion() == 1)
        #expect(replicas("asked") == running)

        let log = try entries()
        #expect(!log.contains { $0["kind"] as? String == "release" && ($0["release"] as? [String: Any])?["version"] as? Int == 2 })
        let refusals = log.filter { $0["kind"] as? String == "refusal" }.compactMap { $0["reason"] as? String }
        #expect(refusals.contains { $0.hasSuffix("for release version 2 was not approved") }, "\(refusals)")
        #expect(refusals.contains { $0.hasSuffix("for release version 2 was declined") }, "\(refusals)")
        let status = try stet("status")
        #expect(status.stdout.contains("release    version 1"), "\(status.stdout)")
        let plan = try stet("plan")
        #expect(plan.stdout.contains("Planned against release version 2, not accepted yet (version 1 is in force)"), "\(plan.stdout)")
    }
}
