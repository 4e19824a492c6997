import Foundation
import StetTesting
import Testing

/// The review path: init, what a release still needs, the plan as a comment, checkpoints kept
/// off the host.
@Suite struct ReviewTests {
    var repo = RepositoryFixture()
    let ci = ["STET_KEY": "private/ci.key"]

    func stet(_ arguments: String..., environment: [String: String] = [:]) throws -> ProcessOutput {
        try Binary.run(arguments, in: repo.root.path, environment: environment)
    }

    @Test func initScaffoldsAWorkingLayoutAndNeverOverwrites() throws {
        let made = try stet("init", "--name", "dana", "--private-dir", "private")
        #expect(made.status == 0, "\(made.combined)")
        #expect(try stet("validate").status == 0)
        #expect(try stet("release", "sign", "manifests", "--key", "private/dana.key").status == 0)
        let verify = try stet("verify")
        #expect(verify.status == 0, "\(verify.combined)")
        let ignore = try String(contentsOfFile: repo.root.file(".gitignore"), encoding: .utf8)
        #expect(ignore.contains("/.stet/") && ignore.contains("*.key") && ignore.contains("plan.json"))
        // Not in a repository before: it is one now.
        #expect(made.stdout.contains("initialised a git repository"), "\(made.stdout)")
        #expect(FileManager.default.fileExists(atPath: repo.root.file(".git/HEAD")))
        let again = try stet("init", "--name", "dana", "--private-dir", "private")
        #expect(again.status == 1)
        #expect(again.stderr.contains("never overwrites"))
    }

    /// Every command's help reads as written: no backslash left from a line continuation, and
    /// the top level lists every exit status.
    @Test func helpHasNoStrayBackslashesAndListsEveryExitStatus() throws {
        let commands = ["init", "keys", "trust", "validate", "release", "verify", "plan", "apply", "status", "down", "run",
                        "restore", "drill", "backups", "version", "audit", "audit list", "audit verify"]
        for command in [""] + commands {
            let help = try Binary.run(command.split(separator: " ").map(String.init) + ["--help"], in: repo.root.path)
            #expect(help.status == 0, "\(command): \(help.combined)")
            #expect(!help.stdout.contains("\\"), "stet \(command) --help: \(help.stdout)")
        }
        let top = try Binary.run(["--help"], in: repo.root.path).stdout
        for status in ["0", "1", "2", "3", "10", "11", "12"] {
            #expect(top.contains("\n  \(status) ") || top.contains("\n  \(status)  "), "exit status \(status) missing: \(top)")
        }
    }

    /// A failure part-way leaves nothing behind, so the retry works once the cause is gone.
    @Test func initIsAllOrNothing() throws {
        // .gitignore as a folder: the last step fails, after the key and the files were made.
        try FileManager.default.createDirectory(atPath: repo.root.file(".gitignore"), withIntermediateDirectories: true)
        let failed = try stet("init", "--name", "dana", "--private-dir", "private")
        #expect(failed.status == 1, "\(failed.combined)")
        for leftover in ["keys", "manifests", "private"] {
            #expect(!FileManager.default.fileExists(atPath: repo.root.file(leftover)), "\(leftover) was left behind")
        }
        try FileManager.default.removeItem(atPath: repo.root.file(".gitignore"))
        let retried = try stet("init", "--name", "dana", "--private-dir", "private")
        #expect(retried.status == 0, "\(retried.combined)")
        #expect(try stet("validate").status == 0)
        // A dangling link where a file would go counts as a file that exists: refused up front.
        let other = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: other.file("keys"), withIntermediateDirectories: true)
        #expect(symlink("/nonexistent/trust.yaml", other.file("keys/trust.yaml")) == 0)
        let linked = try Binary.run(["init", "--name", "dana", "--private-dir", "private"], in: other.path)
        #expect(linked.status == 1)
        #expect(linked.stderr.contains("exists already"))
        #expect(!FileManager.default.fileExists(atPath: other.file("keys/dana.pub")))
    }

    @Test mutating func verifySaysWhoMustStillSign() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (2, ["alice", "bob", "carol"]), operator: (1, ["ci"]))
        try repo.writeManifests()
        try repo.sign(["alice"])
        let verify = try stet("verify")
        #expect(verify.status == 10)
        #expect(verify.stdout.contains("threshold  1 of 2 not met: needs one of bob, carol"), "\(verify.stdout)")
    }

    @Test mutating func planAsAPullRequestComment() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        try repo.root.write("manifests/svc.yaml", Samples.liveService(name: "web", replicas: 2, port: 18400))
        try repo.sign(["alice"])
        let plan = try stet("plan", "--format", "markdown")
        #expect(plan.status == 0, "\(plan.combined)")
        #expect(plan.stdout.contains("### stet plan for release version 1"))
        #expect(plan.stdout.contains("| config | 2 |"))
        #expect(plan.stdout.contains("| `Service/web#0` | start-replica | config | replica 0 of 2 is not running |"))
    }

    @Test mutating func aDirectoryOfCheckpointsIsCheckedTogether() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        #expect(try stet("trust", "pin", environment: ci).status == 0)
        try FileManager.default.createDirectory(atPath: repo.root.file("anchors"), withIntermediateDirectories: true)
        #expect(try stet("audit", "checkpoint", "--out", "anchors/1-host-a", environment: ci).status == 0)
        #expect(try stet("audit", "record", "--action", "one", environment: ci).status == 0)
        #expect(try stet("audit", "checkpoint", "--out", "anchors/2-host-a", environment: ci).status == 0)
        #expect(try stet("audit", "record", "--action", "two", environment: ci).status == 0)
        #expect(try stet("audit", "checkpoint", "--out", "anchors/3-ci", environment: ci).status == 0)
        // Files that are not signed notes (kept beside the checkpoints in git) are passed over.
        try repo.root.write("anchors/README.md", "# Checkpoints\n\nOne file per host and per CI run.\n")
        try repo.root.write("anchors/.gitkeep", "")
        let together = try stet("audit", "verify", "--checkpoints", "anchors")
        #expect(together.status == 0, "\(together.combined)")
        #expect(together.stdout.contains("skipped      anchors/README.md: not a signed note"), "\(together.stdout)")
        let rows = together.stdout.split(separator: "\n").filter { $0.contains(": consistent") }
        #expect(rows.filter { $0.contains("anchors/") }.count == 3, "\(together.stdout)")
        // Beside them, the log's own signed head and local checkpoint.
        #expect(rows.count == 5, "\(together.stdout)")

        // A signed note that does not verify is still refused, not skipped.
        let third = try #require(repo.root.read("anchors/3-ci"))
        try repo.root.write("anchors/3-ci", Data(String(decoding: third, as: UTF8.self).replacingOccurrences(of: "\n3\n", with: "\n2\n").utf8))
        let damaged = try stet("audit", "verify", "--checkpoints", "anchors")
        #expect(damaged.status == 10, "\(damaged.combined)")
        try repo.root.write("anchors/3-ci", third)

        // History rewritten on the host (signed with the same key, with its own head and local
        // checkpoint, made in another state directory): the older checkpoints catch it.
        let other = repo.root.file("other-state")
        #expect(try stet("trust", "pin", "--state-dir", other, environment: ci).status == 0)
        for action in ["x", "y", "z", "w"] {
            #expect(try stet("audit", "record", "--state-dir", other, "--action", action, environment: ci).status == 0)
        }
        try FileManager.default.removeItem(atPath: repo.stateDir + "/audit")
        try FileManager.default.copyItem(atPath: other + "/audit", toPath: repo.stateDir + "/audit")
        let rewritten = try stet("audit", "verify", "--checkpoints", "anchors")
        #expect(rewritten.status == 10)
        #expect(rewritten.stdout.contains("anchors/1-host-a: inconsistent"), "\(rewritten.stdout)")
    }
}

/// Every command parses its own options (ArgumentParser refuses duplicate names only at run time).
@Suite struct EveryCommandTests {
    @Test(arguments: [
        "init", "keys generate", "keys id", "keys verifier", "trust pin", "trust sign", "validate", "release sign", "verify",
        "plan", "apply", "status", "run", "down", "restore", "drill monitor", "audit list", "audit show", "audit verify",
        "audit checkpoint", "audit prove", "audit record",
    ])
    func helpWorks(command: String) throws {
        let help = try Binary.run(command.split(separator: " ").map(String.init) + ["--help"], in: NSTemporaryDirectory())
        #expect(help.status == 0, "\(command): \(help.combined)")
        #expect(help.stdout.contains("EXIT STATUS"), "\(command) documents no exit statuses")
    }
}
