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
        try repo.writeTrust(root: (1, ["alice"]), release: (2, ["alice", "bob"]), operator: (1, ["ci"]))
        try repo.root.write("manifests/svc.yaml", Samples.liveService(name: "web", replicas: 1, port: 18520))
        defer { _ = try? Binary.run(["down"], in: repo.root.path, environment: ["STET_KEY": repo.privateKeyPath("ci")]) }
        try repo.sign(["alice"])
        // One signature short: the review fails at verify and says who must sign.
        let short = try runSteps("pull-request")
        #expect(short.status == 10)
        #expect(short.stdout.contains("needs one of bob"))

        try repo.sign(["alice", "bob"])
        let review = try runSteps("pull-request")
        #expect(review.status == 0, "\(review.combined)")
        let comment = try String(contentsOfFile: repo.root.file("plan.md"), encoding: .utf8)
        #expect(comment.contains("| `Service/web#0` | start-replica | config |"))

        // The host pinned the policy once; the main-branch steps apply and anchor the log.
        #expect(try Binary.run(["trust", "pin"], in: repo.root.path, environment: ["STET_KEY": repo.privateKeyPath("ci")]).status == 0)
        // From nothing: no checkpoints folder yet.
        #expect(!FileManager.default.fileExists(atPath: repo.root.file("checkpoints")))
        let apply = try runSteps("main")
        #expect(apply.status == 0, "\(apply.combined)")
        let first = try FileManager.default.contentsOfDirectory(atPath: repo.root.file("checkpoints"))
        #expect(first.count == 1, "\(first)")
        // Again: nothing to do (exit 0 from plan), an empty plan applied, the stored checkpoint holds.
        let again = try runSteps("main")
        #expect(again.status == 0, "\(again.combined)")
        #expect(again.stdout.contains("checkpoints/\(first[0]): consistent"), "\(again.stdout)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: repo.root.file("checkpoints")).count == 2)
    }
}
