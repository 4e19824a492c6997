import Foundation
import StetTesting
import Testing

/// A file of the release that the host cannot read is an error, not a refusal (docs/architecture.md,
/// principle 8): nothing was judged. `verify --accept` and `apply` exit 1 naming the file, the
/// audit log gets no refusal entry and the accepted release stays; `stet run` says so, keeps its
/// release and takes the new one once the file can be read. The file is made unreadable with
/// its mode, so Stet runs as `nobody` when the tests run as root (root reads any file).
@Suite(.serialized) struct UnreadableReleaseTests {
    var repo = RepositoryFixture()
    let port = 18330

    init() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        try repo.root.write("manifests/web.yaml", Samples.liveService(name: "web", replicas: 1, port: port))
        try repo.sign(["alice"])
        try handOver()
        let pin = try stet("trust", "pin", "keys/trust.yaml")
        #expect(pin.status == 0, "\(pin.combined)")
    }

    static var asRoot: Bool { getuid() == 0 }

    /// The repository belongs to the user Stet runs as.
    func handOver() throws {
        guard Self.asRoot else { return }
        chmod(repo.root.path, 0o755)
        let chown = try StetTesting.run("chown", ["-R", "65534:65534", repo.root.path])
        #expect(chown.status == 0, "\(chown.combined)")
    }

    var environment: [String: String] { ["STET_KEY": "private/ci.key"] }

    /// The program and arguments that run `stet ARGUMENTS` as a user file modes apply to.
    static func command(_ arguments: [String]) throws -> (String, [String]) {
        guard asRoot else { return (Binary.stet, arguments) }
        return (try which("setpriv"), ["--reuid=65534", "--regid=65534", "--clear-groups", "--", Binary.stet] + arguments)
    }

    func stet(_ arguments: String...) throws -> ProcessOutput { try stet(arguments) }

    func stet(_ arguments: [String]) throws -> ProcessOutput {
        let (program, arguments) = try Self.command(arguments)
        return try StetTesting.run(program, arguments, in: repo.root.path, environment: environment)
    }

    func entries(_ kind: String) throws -> [String] {
        let list = try stet("audit", "list", "--json")
        #expect(list.status == 0, "\(list.combined)")
        return list.stdout.split(separator: "\n").map(String.init).filter { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["kind"] as? String == kind
        }
    }

    func acceptedVersion() -> Int? {
        guard let data = FileManager.default.contents(atPath: repo.stateDir + "/release.json"),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return nil }
        return object["version"] as? Int
    }

    /// Release version 2: the service and a notifier in a folder of its own.
    func signSecondRelease() throws {
        try repo.root.write("manifests/more/notifier.yaml", Samples.notifier(name: "journal"))
        try repo.sign(["alice"])
        try handOver()
    }

    @Test(arguments: ["manifests/web.yaml", "manifests/release.dsse.json", "manifests/more", "keys/trust.yaml", "keys/alice.pub"])
    func aFileTheHostCannotReadIsAnErrorNotARefusal(_ file: String) throws {
        let first = try stet("verify", "--accept")
        #expect(first.status == 0, "\(first.combined)")
        #expect(acceptedVersion() == 1)
        try signSecondRelease()
        #expect(chmod(repo.root.file(file), 0) == 0)
        for command in [["verify", "--accept"], ["apply", "--auto-approve"]] {
            let output = try stet(command)
            #expect(output.status == 1, "\(command): \(output.combined)")
            #expect(output.stderr.contains("Permission denied") && output.stderr.contains(file.split(separator: "/").last!),
                    "\(command): \(output.stderr)")
        }
        let refusals = try entries("refusal")
        #expect(refusals.isEmpty, "\(refusals)")
        #expect(acceptedVersion() == 1)
        #expect(chmod(repo.root.file(file), file == "manifests/more" ? 0o755 : 0o644) == 0)
        let again = try stet("verify", "--accept")
        #expect(again.status == 0, "\(again.combined)")
        #expect(acceptedVersion() == 2)
    }

    @Test(arguments: ["manifests/more/notifier.yaml", "keys/trust.yaml", "keys/alice.pub"])
    func theLoopKeepsItsReleaseWhileAFileCannotBeRead(_ file: String) throws {
        let (program, arguments) = try Self.command(["run", "--interval", "0.3"])
        let run = try BackgroundProcess(program, arguments, in: repo.root.path, environment: environment)
        defer {
            run.stop()
            _ = try? stet("down")
            LoopReactionTests.killLeftovers(repo.stateDir, ["web"])
        }
        #expect(eventually { acceptedVersion() == 1 && LoopReactionTests.answers(port) }, "\(run.output)")
        // Stopped while the release changes, so no check sees it half made.
        #expect(kill(run.pid, SIGSTOP) == 0)
        try signSecondRelease()
        #expect(chmod(repo.root.file(file), 0) == 0)
        #expect(kill(run.pid, SIGCONT) == 0)
        #expect(eventually { run.output.contains("cannot check the release") && run.output.contains("Permission denied") },
                "\(run.output)")
        #expect(run.isRunning)
        #expect(acceptedVersion() == 1)
        #expect(chmod(repo.root.file(file), 0o644) == 0)
        #expect(eventually { acceptedVersion() == 2 }, "\(run.output)")
        let refusals = try entries("refusal")
        #expect(refusals.isEmpty, "\(refusals)")
        #expect(run.stop() == 0, "\(run.output)")
    }
}
