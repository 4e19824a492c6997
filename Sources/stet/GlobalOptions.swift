import ArgumentParser
import Foundation
import StetCore
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

    func validate() throws {
        try Self.checkSeconds(lockTimeout, "--lock-timeout", allowZero: true)
    }

    /// Seconds from an option reach timers and deadlines: finite, not negative (above 0 unless
    /// `allowZero`) and at most a day (`StetDuration.maximumTimeout`), so no conversion of
    /// them can trap and no wait is endless.
    static func checkSeconds(_ value: Double, _ option: String, allowZero: Bool) throws {
        let most = StetDuration.maximumTimeout.seconds
        guard value.isFinite, allowZero ? value >= 0 : value > 0, value <= most else {
            throw ValidationError("\(option) \(value): expected seconds \(allowZero ? "from 0" : "above 0") to at most \(Int(most))")
        }
    }
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
