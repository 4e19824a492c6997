import ArgumentParser
import Foundation
import StetCore
import StetState

/// Options that several commands share.
struct GlobalOptions: ParsableArguments {
    @Option(name: .customLong("state-dir"), help: ArgumentHelp(
        "State directory (default: $STET_STATE_DIR, else /var/lib/stet when systemd started stet, else ./.stet).", valueName: "dir"))
    var stateDir: String?

    @Option(help: ArgumentHelp("Repository trust policy.", valueName: "file"))
    var trust = "keys/trust.yaml"

    @Flag(help: "Print machine-readable JSON instead of text.")
    var json = false

    @Option(help: ArgumentHelp("Seconds to wait for another stet process to release the audit log (exit 11 after).", valueName: "seconds"))
    var lockTimeout: Double = 30

    var store: FileStateStore { FileStateStore.resolve(option: stateDir) }

    func validate() throws {
        if let stateDir, stateDir.isEmpty || stateDir.utf8.contains(0) {
            throw ValidationError("--state-dir: expected a directory, found an empty name")
        }
        try Seconds.check(lockTimeout, "--lock-timeout", 0...StetDuration.maximumTimeout.seconds)
    }
}

/// Checks a number of seconds given on the command line: finite, and within what the command
/// can wait for (an interval of 0 or 1e-300 would make a loop spin; `nan` compares false).
enum Seconds {
    static func check(_ value: Double, _ option: String, _ range: ClosedRange<Double>) throws {
        guard value.isFinite, range.contains(value) else {
            func text(_ number: Double) -> String { String(format: "%g", number) }
            throw ValidationError(
                "\(option) \(text(value)): expected a number of seconds from \(text(range.lowerBound)) to \(text(range.upperBound))")
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
