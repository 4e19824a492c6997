import ArgumentParser
import Foundation
import StetServer

@main
struct Stet: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "stet",
        abstract: "Keep a host's redundancy, backup and monitoring guarantees true.",
        discussion: """
            Operators declare guarantees in YAML manifests, signed as a release by reviewers. Stet \
            verifies the release against a pinned trust policy before it acts on anything.

            EXIT STATUS
              0   done, or in sync
              1   error (bad input, I/O), a failed change, or not approved
              2   plan --detailed-exitcode: config or schedule changes pending
              3   plan --detailed-exitcode, status: drift (or an unhealthy promise) pending
              10  release, trust policy, plan or audit log refused by verification
              11  state locked by another stet process
              12  saved plan stale
            """,
        version: version,
        subcommands: [
            InitCommand.self, KeysCommand.self, TrustCommand.self, ValidateCommand.self, ReleaseCommand.self, VerifyCommand.self,
            PlanCommand.self, ApplyCommand.self, StatusCommand.self, DownCommand.self, RunCommand.self, BackupsCommand.self,
            RestoreCommand.self, DrillCommand.self, FailoverCommand.self, AuditCommand.self, VersionCommand.self,
        ]
    )

    /// Runs the command and turns every error into its exit status, here and only here.
    static func main() async {
        // systemd's default soft limit (1,024) is far below its hard limit; the daemon's clients,
        // replicas and state files share what is allowed.
        OpenFileLimit.raise()
        // A reader that goes away (a notifier that exits without reading, `stet … | head`) is an
        // error on that write, never the end of Stet. Children get SIGPIPE back (Subprocess).
        signal(SIGPIPE, SIG_IGN)
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            if let status = ExitStatus.forStetError(error) {
                Glibc.exit(status)
            }
            // Usage errors are errors like any other (exit 1, the contract in docs/architecture.md), not EX_USAGE.
            if exitCode(for: error) == .validationFailure {
                Terminal.standardError.write(fullMessage(for: error) + "\n")
                Glibc.exit(ExitStatus.error)
            }
            exit(withError: error)
        }
    }
}
