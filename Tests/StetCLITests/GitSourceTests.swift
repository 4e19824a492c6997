import Foundation
import StetProviders
import StetTesting
import Testing

/// Releases from a git repository: two reviewers sign, the host applies from the repository,
/// follows new commits under `stet run`, and refuses unsigned and rolled-back commits.
@Suite(.serialized) struct GitSourceTests {
    var repo = RepositoryFixture()
    let host = TemporaryDirectory("stet-host")
    let ci = ["STET_KEY": "private/ci.key"]

    init() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (2, ["alice", "bob"]), operator: (1, ["ci"]))
        try repo.root.write(".gitignore", "private/\n.stet/\n")
        try repo.root.write("manifests/svc.yaml", Samples.liveService(name: "web", replicas: 1, port: 18500))
        try git("init", "--quiet", "--initial-branch=main")
        try git("-c", "user.email=ci@example.org", "-c", "user.name=CI", "commit", "--quiet", "--allow-empty", "-m", "empty")
    }

    @discardableResult
    func git(_ arguments: String...) throws -> String {
        let output = try StetTesting.run("git", ["-c", "user.email=review@example.org", "-c", "user.name=Review"] + arguments, in: repo.root.path)
        #expect(output.status == 0, "git \(arguments): \(output.combined)")
        return output.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func commit(_ message: String) throws -> String {
        try git("add", "-A")
        try git("commit", "--quiet", "-m", message)
        return try git("rev-parse", "HEAD")
    }

    /// `stet` on the host: its own state, the repository's keys for the operator key only.
    func onHost(_ arguments: String...) throws -> ProcessOutput {
        try Binary.run(arguments, in: host.path, environment: ["STET_KEY": repo.privateKeyPath("ci"), "STET_STATE_DIR": host.file(".stet")])
    }

    var source: String { "git:" + repo.root.path }

    func replicas() -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: host.file(".stet/replicas/web"))) ?? []).filter { $0.hasSuffix(".json") }.count
    }

    func entries() throws -> [[String: Any]] {
        try onHost("audit", "list", "--json").stdout.split(separator: "\n").compactMap {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    @Test func reviewThenApplyThenFollowCommits() throws {
        defer { _ = try? onHost("down") }
        try repo.sign(["alice"])
        _ = try commit("web, signed by alice")
        let short = try Binary.run(["verify"], in: repo.root.path)
        #expect(short.stdout.contains("needs one of bob"), "\(short.combined)")
        #expect(try onHost("trust", "pin", repo.trustFile).status == 0)
        let refused = try onHost("plan", "--source", source)
        #expect(refused.status == 10, "\(refused.combined)")

        try repo.sign(["alice", "bob"])
        let first = try commit("web, signed by alice and bob")
        let apply = try onHost("apply", "--source", source, "--auto-approve")
        #expect(apply.status == 0, "\(apply.combined)")
        #expect(eventually { replicas() == 1 })
        let accepted = try #require(try entries().first { $0["kind"] as? String == "release" })
        #expect((accepted["release"] as? [String: Any])?["commit"] as? String == first)
        let started = try #require(try entries().first { $0["kind"] as? String == "result" && $0["action"] as? String == "start-replica" })
        #expect((started["release"] as? [String: Any])?["commit"] as? String == first)

        // stet run follows the branch: a new signed commit is applied.
        let run = try BackgroundProcess(Binary.stet, ["run", "--source", source, "--interval", "0.5"], in: host.path,
                                        environment: ["STET_KEY": repo.privateKeyPath("ci"), "STET_STATE_DIR": host.file(".stet")])
        defer { run.stop() }
        try repo.root.write("manifests/svc.yaml", Samples.liveService(name: "web", replicas: 2, port: 18500))
        try repo.sign(["alice", "bob"])
        let second = try commit("two replicas")
        #expect(eventually(timeout: 30) { replicas() == 2 }, "\(run.output)")
        #expect(try entries().contains { ($0["release"] as? [String: Any])?["commit"] as? String == second && $0["kind"] as? String == "release" })

        // A manifest changed without signing: refused with its commit id; nothing changes.
        try repo.root.write("manifests/svc.yaml", Samples.liveService(name: "web", replicas: 0, port: 18500))
        let unsigned = try commit("unsigned change")
        #expect(try eventually(timeout: 30) { try entries().contains {
            $0["kind"] as? String == "refusal" && ($0["reason"] as? String)?.contains(unsigned) == true
        } }, "\(run.output)")
        #expect(replicas() == 2)

        // A force-push back to the first signed release: a rollback, refused.
        try git("reset", "--quiet", "--hard", first)
        #expect(try eventually(timeout: 30) { try entries().contains {
            $0["kind"] as? String == "refusal" && ($0["error"] as? String)?.contains("rollback") == true
        } }, "\(run.output)")
        #expect(replicas() == 2)
        #expect(run.stop() == 0)
        #expect(try onHost("audit", "verify").status == 0)
    }
}
