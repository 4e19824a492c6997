import ArgumentParser
import Foundation
import StetState

/// Options that several commands share.
struct GlobalOptions: ParsableArguments {
    @Option(name: .customLong("state-dir"), help: ArgumentHelp("State directory (default: $STET_STATE_DIR, else ./.stet).", valueName: "dir"))
    var stateDir: String?

    @Option(help: ArgumentHelp("Repository trust policy.", valueName: "file"))
    var trust = "keys/trust.yaml"

    @Flag(help: "Print machine-readable JSON instead of text.")
    var json = false

    @Option(help: ArgumentHelp("Seconds to wait for another stet process to release the audit log (exit 11 after).", valueName: "seconds"))
    var lockTimeout: Double = 30

    var store: FileStateStore { FileStateStore.resolve(option: stateDir) }
}

/// The operator's private key: `--key FILE`, else `STET_KEY`.
struct KeyOption: ParsableArguments {
    @Option(help: ArgumentHelp("Private key (PKCS#8 PEM, mode 0600); default: $STET_KEY.", valueName: "file"))
    var key: String?

    func path() throws -> String {
        if let key { return key }
        if let env = ProcessInfo.processInfo.environment["STET_KEY"], !env.isEmpty { return env }
        throw CommandFailure(
            status: ExitStatus.error,
            message: "an operator key is required to act (everything Stet does is signed into the audit log): "
                + "pass --key FILE or set STET_KEY")
    }
}
