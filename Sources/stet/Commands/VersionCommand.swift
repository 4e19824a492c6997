import ArgumentParser
import Foundation

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version",
        abstract: "Show Stet's version, the commit and date it was built from, and its OpenSSL and Swift.",
        discussion: """
            A build by `scripts/package` names its commit and build date; a plain `swift build` \
            says "unknown" for both. OpenSSL is the libcrypto loaded at run time. The state \
            directory is the one commands use without --state-dir: $STET_STATE_DIR, else \
            /var/lib/stet when systemd started stet itself (a unit's ExecStart), else ./.stet.

            EXIT STATUS
              0   always
            """
    )

    @Flag(help: "Print machine-readable JSON instead of text.")
    var json = false

    func run() throws {
        let info = BuildInfo.current()
        guard !json else { return Terminal.standardOutput.json(info) }
        let out = Terminal.standardOutput
        out.line("stet \(info.version)")
        for (name, value) in [
            ("commit", info.commit), ("built", info.buildDate), ("openssl", info.openssl), ("swift", info.swift),
            ("state dir", info.stateDirectory),
        ] {
            out.line("  " + name.padding(toLength: 11, withPad: " ", startingAt: 0) + value)
        }
    }
}
