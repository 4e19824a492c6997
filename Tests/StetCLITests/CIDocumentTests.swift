import Foundation
import StetTesting
import Testing

/// docs/ci.md's steps, extracted and run as written, in a repository signed by two reviewers,
/// with the CI operator key from the environment.
@Suite struct CIDocumentTests {
    var repo = RepositoryFixture()

    static func steps(_ name: String) throws -> String {
        let text = try String(contentsOfFile: Binary.packageRoot + "/docs/ci.md", encoding: .utf8)
        guard let marker = text.range(of: "<!-- ci-steps: \(name) -->"),
            let open = text.range(of: "```sh\n", range: marker.upperBound..<text.endIndex),
            let close = text.range(of: "```", range: open.upperBound..<text.endIndex)
        else { throw TestFailure("docs/ci.md has no ci-steps block \(name)") }
        return String(text[open.upperBound..<close.lowerBound])
    }

    func runSteps(_ name: String) throws -> ProcessOutput {
        let folder = (Binary.stet as NSString).deletingLastPathComponent
        return try StetTesting.run(
            "/bin/bash", ["-euo", "pipefail", "-c", try Self.steps(name)], in: repo.root.path,
            environment: ["PATH": folder + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
                          "STET_KEY": repo.privateKeyPath("ci")])
    }

    @Test mutating func theDocumentedStepsRunAsWritten() throws {
        let ci = ["STET_KEY": repo.privateKeyPath("ci")]
        try repo.writeTrust(root: (1, ["alice"]), release: (2, ["alice", "bob"]), operator: (1, ["ci"]))
        try repo.root.write("manifests/svc.yaml", Samples.liveService(name: "web", replicas: 1, port: 18520))
        defer { _ = try? Binary.run(["down"], in: repo.root.path, environment: ci) }
        try repo.sign(["alice", "bob"])

        // The host pinned the policy once; from nothing (no checkpoints folder yet), the
        // main-branch steps apply and anchor the log.
        #expect(try Binary.run(["trust", "pin"], in: repo.root.path, environment: ci).status == 0)
        #expect(!FileManager.default.fileExists(atPath: repo.root.file("checkpoints")))
        let apply = try runSteps("main")
        #expect(apply.status == 0, "\(apply.combined)")
        let first = try FileManager.default.contentsOfDirectory(atPath: repo.root.file("checkpoints"))
        #expect(first.count == 1, "\(first)")

        // The host publishes its snapshot; the target branch is checked out into base/.
        #expect(try Binary.run(["status", "--export", "observed.json"], in: repo.root.path, environment: ci).status == 0)
        for part in ["manifests", "keys"] {
            try FileManager.default.copyItem(atPath: repo.root.file(part), toPath: repo.root.file("base/" + part))
        }

        // A pull request for a second replica, one signature short: the proposal is planned
        // against the host's snapshot all the same, and verify says who must still sign.
        try repo.root.write("manifests/svc.yaml", Samples.liveService(name: "web", replicas: 2, port: 18520))
        try repo.sign(["alice"])
        let short = try runSteps("pull-request")
        #expect(short.status == 10, "\(short.combined)")
        #expect(short.stdout.contains("needs one of bob"))
        let comment = try String(contentsOfFile: repo.root.file("plan.md"), encoding: .utf8)
        #expect(comment.contains("unsigned proposal"), "\(comment)")
        #expect(comment.contains("| `Service/web` | changed | `spec.replicas` | 1 | 2 |"), "\(comment)")
        #expect(comment.contains("| `Service/web#1` | start-replica | config |"), "\(comment)")
        #expect(!comment.contains("Service/web#0"), "the running replica is not planned again: \(comment)")

        try repo.sign(["alice", "bob"])
        let review = try runSteps("pull-request")
        #expect(review.status == 0, "\(review.combined)")

        // Merged: the main-branch steps apply it, and the stored checkpoint still holds.
        let again = try runSteps("main")
        #expect(again.status == 0, "\(again.combined)")
        #expect(again.stdout.contains("checkpoints/\(first[0]): consistent"), "\(again.stdout)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: repo.root.file("checkpoints")).count == 2)
        #expect(try Binary.run(["status"], in: repo.root.path).stdout.contains("2/2 ready"))
    }
}
