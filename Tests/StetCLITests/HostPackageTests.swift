import Foundation
import StetTesting
import Testing

/// What the host package relies on: `stet version` and the state directory systemd gets by default.
@Suite(.serialized) struct HostPackageTests {
    var repo = RepositoryFixture()

    func stet(_ arguments: String..., environment: [String: String] = [:]) throws -> ProcessOutput {
        try Binary.run(arguments, in: repo.root.path, environment: environment)
    }

    struct Version: Decodable {
        let version: String
        let commit: String
        let buildDate: String
        let openssl: String
        let swift: String
        let stateDirectory: String
    }

    /// `stet version --json` run through `sh`, which first sets `SYSTEMD_EXEC_PID` to its own pid
    /// when `systemdStarted`: `exec` keeps that pid, so Stet sees what systemd's ExecStart gives it.
    func version(systemdStarted: Bool = false, environment: [String: String] = [:]) throws -> Version {
        let set = systemdStarted ? "SYSTEMD_EXEC_PID=$$; export SYSTEMD_EXEC_PID; " : ""
        let output = try StetTesting.run(
            "/bin/sh", ["-c", set + "exec \"$0\" version --json", Binary.stet], in: repo.root.path, environment: environment)
        #expect(output.status == 0, "\(output.combined)")
        return try JSONDecoder().decode(Version.self, from: Data(output.stdout.utf8))
    }

    @Test func versionNamesTheBuildAndWhatItRunsOn() throws {
        let info = try version()
        let plain = try stet("--version")
        #expect(info.version == plain.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(info.version.split(separator: ".").count == 3)
        // A plain `swift build` (the one the tests run) knows no commit and no build date.
        #expect(info.commit == "unknown")
        #expect(info.buildDate == "unknown")
        // The libcrypto loaded, as `openssl version` reports the library it loads.
        #expect(info.openssl.hasPrefix("OpenSSL "))
        let openssl = try StetTesting.run("openssl", ["version"])
        #expect(openssl.stdout.contains(info.openssl), "\(openssl.stdout) vs \(info.openssl)")
        #expect(info.swift.range(of: #"^\d+\.\d+"#, options: .regularExpression) != nil, "\(info.swift)")
        #expect(info.stateDirectory == ".stet")

        let text = try stet("version")
        #expect(text.status == 0)
        for value in [info.version, info.openssl, info.swift, "commit", "built"] { #expect(text.stdout.contains(value), "\(text.stdout)") }
    }

    /// systemd names the process it started in SYSTEMD_EXEC_PID: that process keeps its state in
    /// /var/lib/stet. What every process of a unit inherits (INVOCATION_ID, NOTIFY_SOCKET, and
    /// SYSTEMD_EXEC_PID naming another process) moves nothing, and STET_STATE_DIR still wins.
    @Test func theStateDirectoryOfAProcessSystemdStartedIsVarLibStet() throws {
        #expect(try version(systemdStarted: true).stateDirectory == "/var/lib/stet")
        #expect(try version(systemdStarted: true, environment: ["STET_STATE_DIR": repo.stateDir]).stateDirectory == repo.stateDir)
        let inherited = ["INVOCATION_ID": "0123456789abcdef0123456789abcdef", "NOTIFY_SOCKET": "/run/systemd/notify", "SYSTEMD_EXEC_PID": "1"]
        #expect(try version(environment: inherited).stateDirectory == ".stet")
        // The option's help says so.
        let help = try stet("status", "--help").stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(help.contains("else /var/lib/stet when systemd started stet, else ./.stet"), "\(help)")
    }
}
