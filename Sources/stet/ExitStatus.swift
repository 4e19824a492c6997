import Foundation
import StetAudit
import StetCrypto
import StetEngine
import StetManifest
import StetState

/// Stet's exit statuses (a contract: scripts and CI read them).
enum ExitStatus {
    static let ok: Int32 = 0
    static let error: Int32 = 1
    static let refused: Int32 = 10
    static let locked: Int32 = 11
    static let stale: Int32 = 12
    /// `--detailed-exitcode`: config or schedule changes pending, drift pending.
    static let changes: Int32 = 2
    static let drift: Int32 = 3

    /// Prints a Stet error to standard error and returns its status; nil for errors that are
    /// ArgumentParser's own (usage, help), which it prints itself.
    static func forStetError(_ error: any Error) -> Int32? {
        switch error {
        case let unrecorded as ReleaseAcceptance.Unrecorded:
            Terminal.standardError.warning("the refusal could not be recorded in the audit log: \(unrecorded.reason)")
            return forStetError(unrecorded.refusal)
        case let refused as PlanFile.Refused:
            Terminal.standardError.line("stet: " + refused.message)
            return Self.refused
        case let refused as ObservedSnapshot.Refused:
            Terminal.standardError.line(Terminal.standardError.red("refused") + ": " + refused.message)
            return Self.refused
        case let withheld as ApplyRelease.NotApproved:
            Terminal.standardError.line("stet: " + withheld.message)
            return Self.error
        case let none as ApplyRelease.NoTrustPolicy:
            Terminal.standardError.line("stet: \(none)")
            return Self.error
        case let stale as PlanFile.Stale:
            Terminal.standardError.line("stet: " + stale.message)
            return Self.stale
        case let refused as ReleaseGate.Refused:
            Terminal.standardError.line(Terminal.standardError.red("refused") + ": " + refused.error.description)
            return Self.refused
        case let refused as VerificationError:
            Terminal.standardError.line(Terminal.standardError.red("refused") + ": " + refused.description)
            return Self.refused
        case let failure as CommandFailure:
            if let message = failure.message { Terminal.standardError.line("stet: \(message)") }
            return failure.status
        case let held as StateLock.Held:
            Terminal.standardError.line("stet: \(held)")
            return Self.locked
        case let audit as AuditError:
            switch audit.code {
            case .locked:
                Terminal.standardError.line("stet: \(audit.message)")
                return Self.locked
            case .io:
                Terminal.standardError.line("stet: \(audit.message)")
                return Self.error
            case .tampered, .untrustedKey, .invalid:
                Terminal.standardError.line(Terminal.standardError.red("refused") + ": " + audit.message)
                return Self.refused
            }
        case let manifest as ManifestError:
            // One line per problem: a problem's own text never starts a line.
            for line in manifest.lines { Terminal.standardError.line(line) }
            return Self.error
        case is CryptoError, is StateError, is SigningError, is ManifestDirectoryError, is InputFile.Failure, is ReleaseStore.NotStored:
            // An InputFile.Failure here is a file the host could not read (no descriptor left,
            // an I/O error) or one a command cannot take: an error, never a refusal.
            Terminal.standardError.line("stet: \(error)")
            return Self.error
        default:
            return nil
        }
    }
}

/// A command that has already said what went wrong (or has a message to say) and ends with
/// `status`.
struct CommandFailure: Error {
    let status: Int32
    let message: String?
}
