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
    func onHost(_ arguments: String...) throws -> ProcessOutput { try onHost(arguments) }

    func onHost(_ arguments: [String]) throws -> ProcessOutput {
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
        // The refusal names the file by commit and path in the repository, and says what to do;
        // never the tree Stet unpacked it to.
        let refusal = try #require(try entries().last { ($0["reason"] as? String)?.contains(unsigned) == true })
        let error = refusal["error"] as? String ?? ""
        #expect(error.contains("commit \(unsigned.prefix(12)):manifests/svc.yaml has digest"), "\(error)")
        #expect(error.contains("`stet release sign`") && !error.contains(".stet/git/work"), "\(error)")
        // It says what it watches: the URL and branch.
        #expect(run.output.contains("watching \(source) branch main, path manifests"), "\(run.output)")

        // A force-push back to the first signed release: a rollback, refused.
        try git("reset", "--quiet", "--hard", first)
        #expect(try eventually(timeout: 30) { try entries().contains {
            $0["kind"] as? String == "refusal" && ($0["error"] as? String)?.contains("rollback") == true
        } }, "\(run.output)")
        #expect(replicas() == 2)
        #expect(run.stop() == 0)
        #expect(try onHost("audit", "verify").status == 0)
    }

    /// A release signed by alice and bob in a commit, and the policy pinned on the host.
    func signedCommit() throws {
        try repo.sign(["alice", "bob"])
        _ = try commit("web, signed by alice and bob")
        #expect(try onHost("trust", "pin", repo.trustFile).status == 0)
    }

    /// `--source git:X` where git would read X as an option or a remote helper: refused before
    /// git runs, by every command that takes --source, before and after the mirror exists.
    @Test(arguments: ["--upload-pack=touch MARK", "-u touch MARK", "--config=core.sshCommand=touch MARK", "ext::sh -c touch% MARK"])
    func optionsAndHelpersAsURLsAreRefused(_ template: String) throws {
        let mark = host.file("pwned")
        let url = template.replacingOccurrences(of: "MARK", with: mark)
        func attempt(_ when: String) throws {
            // (`status` takes no --source: it shows the release in force.)
            for command in [["plan"], ["apply", "--auto-approve"], ["run", "--once"]] {
                let result = try onHost(command + ["--source", "git:" + url])
                #expect(result.status == 1, "\(command) \(when): \(result.combined)")
                #expect(result.stderr.contains("--source git:\(url): expected a local path, file://, https://, ssh:// or user@host:path"),
                        "\(command) \(when): \(result.stderr)")
                #expect(!FileManager.default.fileExists(atPath: mark), "\(command) \(when)")
            }
        }
        try attempt("before the mirror exists")
        try signedCommit()
        let plan = try onHost("plan", "--source", source)
        #expect(plan.status == 0, "\(plan.combined)")
        #expect(FileManager.default.fileExists(atPath: host.file(".stet/git/mirror.git/HEAD")))
        try attempt("after the mirror exists")
    }

    /// git itself may use file, https and ssh only, whatever its configuration says: here a
    /// user's configuration rewrites an https URL into a command (`ext::`) and allows that.
    @Test func gitUsesNoOtherTransport() throws {
        let mark = host.file("pwned")
        let home = TemporaryDirectory("stet-home")
        try home.write(".gitconfig", """
            [url "ext::sh -c touch% \(mark)"]
            \tinsteadOf = https://stet.invalid/ops.git
            [protocol "ext"]
            \tallow = always

            """)
        let result = try Binary.run(
            ["plan", "--source", "git:https://stet.invalid/ops.git"], in: host.path,
            environment: ["HOME": home.path, "STET_STATE_DIR": host.file(".stet")])
        #expect(result.status == 1, "\(result.combined)")
        #expect(result.stderr.contains("transport 'ext' not allowed"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: mark))
    }

    /// A ref or branch reaches git's command line too: only names are taken.
    @Test func refsThatAreNotNamesAreRefused() throws {
        let mark = host.file("pwned")
        try signedCommit()
        #expect(try onHost("plan", "--source", source).status == 0)
        for option in ["--ref=--upload-pack=touch \(mark)", "--branch=-x", "--ref=main^{tree}", "--ref=@{-1}"] {
            let result = try onHost("plan", "--source", source, option)
            #expect(result.status == 1, "\(option): \(result.combined)")
            #expect(result.stderr.contains("expected a branch, tag or commit name"), "\(option): \(result.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: mark))
    }

    /// `git archive` leaves out what `.gitattributes` marks export-ignore: an unsigned manifest
    /// must not hide from verification that way.
    @Test func aManifestMarkedExportIgnoreIsStillVerified() throws {
        defer { _ = try? onHost("down") }
        try signedCommit()
        try repo.root.write("manifests/extra.yaml", Samples.liveService(name: "extra", replicas: 1, port: 18510))
        try repo.root.write(".gitattributes", "manifests/extra.yaml export-ignore\n")
        _ = try commit("an unsigned service, marked export-ignore")
        for command in [["plan"], ["apply", "--auto-approve"]] {
            let result = try onHost(command + ["--source", source])
            #expect(result.status == 10, "\(command): \(result.combined)")
            #expect(result.stderr.contains("manifests/extra.yaml is not part of release version"), "\(command): \(result.stderr)")
        }
        #expect(replicas() == 0)
    }

    /// The manifest directory and the trust policy are read inside the commit only: not through
    /// `--path ..`, and not through a symbolic link in the commit that leads to a signed
    /// release (or a trust policy) elsewhere on the host.
    @Test func thePathStaysInsideTheCommit() throws {
        try signedCommit()
        for path in ["../../outside", "manifests/../../outside", "/etc"] {
            let result = try onHost("plan", "--source", source, "--path", path)
            #expect(result.status == 1, "\(path): \(result.combined)")
            #expect(result.stderr.contains("--path \(path): expected a directory inside the repository"), "\(path): \(result.stderr)")
        }

        let outside = TemporaryDirectory("stet-outside")
        for name in ["manifests/svc.yaml", "manifests/release.dsse.json", "keys/trust.yaml", "keys/alice.pub", "keys/bob.pub", "keys/ci.pub"] {
            try outside.write(name, try #require(repo.root.read(name)))
        }
        let before = outside.snapshot("")
        try FileManager.default.createSymbolicLink(atPath: repo.root.file("deploy"), withDestinationPath: outside.file("manifests"))
        _ = try commit("deploy leads outside the repository")
        let viaLink = try onHost("plan", "--source", source, "--path", "deploy")
        #expect(viaLink.status == 10, "\(viaLink.combined)")
        #expect(viaLink.stderr.contains("leads outside"), "\(viaLink.stderr)")

        try FileManager.default.removeItem(atPath: repo.root.file("keys"))
        try FileManager.default.createSymbolicLink(atPath: repo.root.file("keys"), withDestinationPath: outside.file("keys"))
        _ = try commit("keys lead outside the repository")
        let trustViaLink = try onHost("plan", "--source", source)
        #expect(trustViaLink.status == 10, "\(trustViaLink.combined)")
        #expect(trustViaLink.stderr.contains("trust.yaml leads outside"), "\(trustViaLink.stderr)")
        #expect(outside.snapshot("") == before)
    }
}
