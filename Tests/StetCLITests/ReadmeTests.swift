import Foundation
import StetTesting
import Testing

/// README.md's shell blocks, run as written, in order, in a scratch repository: every `sh` block
/// of README.md and docs/ci.md carries a marker saying which test runs it, or why none does.
/// `swift build` in a block stands for the build this test already has (a `swift` on PATH that
/// only answers `--show-bin-path`); HOME is the scratch repository's, so keys made by the blocks
/// stay there.
@Suite(.serialized) struct ReadmeTests {
    let scratch = TemporaryDirectory("stet-readme")

    /// A document's `sh` blocks, each with the `doc-run` (or `ci-steps`) marker on the line above.
    static func blocks(_ document: String) throws -> [(marker: String?, text: String)] {
        let text = try String(contentsOfFile: Binary.packageRoot + "/" + document, encoding: .utf8)
        let lines = text.components(separatedBy: "\n")
        var blocks: [(marker: String?, text: String)] = []
        var index = 0
        while index < lines.count {
            guard lines[index] == "```sh" else {
                index += 1
                continue
            }
            let above = index > 0 ? lines[index - 1] : ""
            let marker = above.hasPrefix("<!-- ") && above.hasSuffix(" -->") ? String(above.dropFirst(5).dropLast(4)) : nil
            var body: [String] = []
            index += 1
            while index < lines.count, lines[index] != "```" {
                body.append(lines[index])
                index += 1
            }
            blocks.append((marker, body.joined(separator: "\n") + "\n"))
            index += 1
        }
        return blocks
    }

    static func block(_ name: String) throws -> String {
        guard let block = try blocks("README.md").first(where: { $0.marker?.hasPrefix("doc-run: \(name)") == true }) else {
            throw TestFailure("README.md has no block marked doc-run: \(name)")
        }
        return block.text
    }

    /// Runs `text` with bash as a reader would paste it (aliases on, going on after a failing
    /// command), in `directory`.
    func run(_ text: String, in directory: String, environment: [String: String] = [:]) throws -> ProcessOutput {
        let bin = scratch.file("bin")
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        let stetFolder = (Binary.stet as NSString).deletingLastPathComponent
        let shim = bin + "/swift"
        if !FileManager.default.fileExists(atPath: shim) {
            try """
                #!/bin/sh
                # Stands in for `swift build`: Stet is built already.
                for argument in "$@"; do [ "$argument" = --show-bin-path ] && { echo '\(stetFolder)'; exit 0; }; done
                exit 0

                """.write(toFile: shim, atomically: true, encoding: .utf8)
            chmod(shim, 0o755)
        }
        var base = [
            "HOME": scratch.file("home"), "XDG_CONFIG_HOME": "",
            "PATH": bin + ":" + stetFolder + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
        ]
        for (key, value) in environment { base[key] = value }
        return try StetTesting.run("/bin/bash", ["-O", "expand_aliases", "-c", text], in: directory, environment: base, timeout: 300)
    }

    @Test func everyShellBlockSaysWhichTestRunsIt() throws {
        for document in ["README.md", "docs/ci.md"] {
            for block in try Self.blocks(document) {
                let marked = block.marker.map { $0.hasPrefix("doc-run: ") || $0.hasPrefix("ci-steps: ") } ?? false
                #expect(marked, "\(document): a shell block without a doc-run marker: \(block.text)")
            }
        }
        #expect(try Self.blocks("README.md").filter { $0.marker?.hasPrefix("doc-run: skip") == false }.count >= 4)
    }

    /// The walk-through, the trust rotation and plan, apply and status, in a repository that holds
    /// only a service.
    @Test func theWalkThroughRunsAsWritten() throws {
        let repo = scratch.file("repo")
        try FileManager.default.createDirectory(atPath: repo + "/manifests", withIntermediateDirectories: true)
        try Samples.liveService(name: "web", replicas: 2, port: 18560).write(toFile: repo + "/manifests/web.yaml", atomically: true, encoding: .utf8)
        defer {
            _ = try? Binary.run(["down"], in: repo, environment: ["STET_KEY": scratch.file("home/.config/stet/keys/alice.key")])
        }

        let walk = try run(try Self.block("walkthrough"), in: repo)
        #expect(walk.status == 0, "\(walk.combined)")
        #expect(walk.stdout.contains("threshold  1 of 2 not met: needs one of bob"), "\(walk.stdout)")
        #expect(walk.stdout.contains("accepted into"), "\(walk.stdout)")
        #expect(walk.stdout.contains("release") && walk.stdout.contains("accept-release"), "\(walk.stdout)")
        #expect(FileManager.default.fileExists(atPath: repo + "/.stet/release.json"))

        // The edit the rotation block's first line asks for.
        let trust = try String(contentsOfFile: repo + "/keys/trust.yaml", encoding: .utf8)
        try trust.replacingOccurrences(of: "\nversion: 1\n", with: "\nversion: 2\n")
            .write(toFile: repo + "/keys/trust.yaml", atomically: true, encoding: .utf8)
        let rotation = try run(try Self.block("rotation"), in: repo)
        #expect(rotation.status == 0, "\(rotation.combined)")
        #expect(FileManager.default.fileExists(atPath: repo + "/keys/trust.dsse.json"))

        let apply = try run(try Self.block("plan-apply"), in: repo)
        #expect(apply.stdout.contains("start-replica"), "\(apply.combined)")
        #expect(!apply.combined.contains("not on a terminal"), "\(apply.combined)")
        #expect(!apply.combined.contains("refused"), "\(apply.combined)")
        // Applied: the two replicas answer, and status says so once they pass their checks.
        #expect(eventually { (try? Binary.run(["status"], in: repo))?.status == 0 })
        let log = try Binary.run(["audit", "list"], in: repo).stdout
        #expect(log.contains("start-replica") && log.contains("under trust policy version 2"), "\(log)")
    }

    /// "The example release": scripts/demo, then re-signing the example, in a copy of the
    /// repository's example (its manifests, keys and scripts).
    @Test func theExampleReleaseRunsAsWritten() throws {
        let repo = scratch.file("example")
        try FileManager.default.createDirectory(atPath: repo, withIntermediateDirectories: true)
        for part in ["scripts", "manifests", "examples", "keys"] {
            try FileManager.default.copyItem(atPath: Binary.packageRoot + "/" + part, toPath: repo + "/" + part)
        }
        defer {
            _ = try? Binary.run(["down"], in: repo, environment: ["STET_KEY": repo + "/examples/keys/example-operator.key"])
        }
        let signed = try Data(contentsOf: URL(fileURLWithPath: repo + "/manifests/release.dsse.json"))
        let example = try run(try Self.block("example"), in: repo)
        #expect(example.status == 0, "\(example.combined)")
        for step in ["== stet verify manifests --accept", "== stet apply --auto-approve", "== stet audit verify"] {
            #expect(example.stdout.contains(step), "\(example.stdout)")
        }
        #expect(example.stdout.contains("200 "), "the example's web replica answered: \(example.stdout)")
        // The release was signed again (a new version) and verifies.
        #expect(try Data(contentsOf: URL(fileURLWithPath: repo + "/manifests/release.dsse.json")) != signed)
        let verify = try Binary.run(["verify", "manifests"], in: repo)
        #expect(verify.status == 0, "\(verify.combined)")
    }

    /// "Maintenance and drills": the on-demand drills, beside `stet run` on the example release.
    @Test func theDrillsRunAsWritten() throws {
        let repo = scratch.file("drills")
        try FileManager.default.createDirectory(atPath: repo, withIntermediateDirectories: true)
        for part in ["manifests", "examples", "keys"] {
            try FileManager.default.copyItem(atPath: Binary.packageRoot + "/" + part, toPath: repo + "/" + part)
        }
        let key = ["STET_KEY": repo + "/examples/keys/example-operator.key"]
        let prepared = try run(
            "chmod 600 examples/keys/*.key examples/restic-password.txt && stet verify manifests --accept --trust-on-first-use "
                + "&& stet apply --auto-approve", in: repo, environment: key)
        #expect(prepared.status == 0, "\(prepared.combined)")
        let loop = try BackgroundProcess(Binary.stet, ["run", "--interval", "0.5"], in: repo, environment: key)
        defer {
            loop.stop()
            _ = try? Binary.run(["down"], in: repo, environment: key)
        }
        // `stet run` holds the state directory once it says it watches.
        #expect(eventually { loop.output.contains("stet run: watching") }, "\(loop.output)")
        let drills = try run(try Self.block("drills"), in: repo)
        #expect(drills.status == 0, "\(drills.combined)\n\(loop.output)")
        #expect(drills.stdout.contains("passed  replica"), "\(drills.combined)")
        #expect(drills.stdout.contains("delivered  ops-log"), "\(drills.stdout)")
        #expect(drills.stdout.contains("passed  restore test passed"), "\(drills.stdout)")
        #expect(drills.stdout.contains("MaintenanceWindow/nightly  allow"), "\(drills.stdout)")
        #expect(drills.stdout.contains("drill  passed"), "\(drills.stdout)")
        #expect(loop.stop() == 0, "\(loop.output)")
    }

    /// "Fleet": three nodes on one machine, a CI publish, a host lost; then the clean-up block.
    @Test func theFleetWalkThroughRunsAsWritten() throws {
        let repo = scratch.file("fleet")
        try FileManager.default.createDirectory(atPath: repo + "/manifests", withIntermediateDirectories: true)
        // A repository with a signed release and a policy whose node role lists the three hosts.
        for name in ["alice", "ops", "host-a", "host-b", "host-c"] {
            let made = try run("$(swift build --show-bin-path)/stet keys generate \(name)", in: repo)
            guard made.status == 0 else { throw TestFailure(made.combined) }
        }
        try """
            apiVersion: stet/v1
            kind: TrustPolicy
            version: 1
            keys:
              alice: {publicKey: alice.pub}
              ops: {publicKey: ops.pub}
              host-a: {publicKey: host-a.pub}
              host-b: {publicKey: host-b.pub}
              host-c: {publicKey: host-c.pub}
            roles:
              root: {threshold: 1, keys: [alice]}
              release: {threshold: 1, keys: [alice]}
              operator: {threshold: 1, keys: [ops]}
              node: {threshold: 1, keys: [host-a, host-b, host-c]}

            """.write(toFile: repo + "/keys/trust.yaml", atomically: true, encoding: .utf8)
        try Samples.liveService(name: "web", replicas: 4, port: 18620).write(toFile: repo + "/manifests/web.yaml", atomically: true, encoding: .utf8)
        let signed = try run("$(swift build --show-bin-path)/stet release sign manifests --key ~/.config/stet/keys/alice.key", in: repo)
        guard signed.status == 0 else { throw TestFailure(signed.combined) }
        defer {
            let cleanup = try? run(try Self.block("fleet-cleanup"), in: repo)
            #expect(cleanup?.status == 0, "\(cleanup?.combined ?? "")")
        }

        let fleet = try run(try Self.block("fleet"), in: repo)
        #expect(fleet.status == 0, "\(fleet.combined)")
        #expect(fleet.stdout.contains("the fleet runs release version 1"), "\(fleet.combined)")
        #expect(fleet.stdout.contains("nodes      3 live") && fleet.stdout.contains("nodes      2 live"), "\(fleet.stdout)")
        // After the loss, host-a and host-c run all four replicas between them.
        let after = fleet.stdout.components(separatedBy: "nodes      2 live").last ?? ""
        #expect((0..<4).allSatisfy { after.contains("web/\($0) (pid") }, "\(after)")
        #expect(fleet.stdout.contains("host-a  ") && fleet.stdout.contains("/host-a/audit"), "\(fleet.stdout)")
    }
}
