import ArgumentParser
import Foundation
import StetCore
import StetCrypto
import StetManifest
import StetState

struct ReleaseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "release",
        abstract: "Make signed releases of a manifest directory.",
        subcommands: [ReleaseSignCommand.self]
    )
}

struct ReleaseSignCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sign",
        abstract: "Sign the manifest directory as a release (writes DIR/release.dsse.json).",
        discussion: """
            Builds the release index from every .yaml/.yml file in DIR (after validating them). If the \
            files are unchanged since the existing release, the signature is added to it, as a second \
            reviewer does; otherwise the version goes up by one and earlier signatures are dropped.

            EXIT STATUS
              0   signed
              1   invalid manifests, a key outside the release role (without --force), or I/O
            """
    )

    @Argument(help: "Manifest directory.")
    var directory = "manifests"

    @OptionGroup var key: KeyOption

    @Option(help: ArgumentHelp("Repository trust policy; the key must be in its release role.", valueName: "file"))
    var trust = "keys/trust.yaml"

    @Option(help: ArgumentHelp("How long a new release stays valid.", valueName: "duration"))
    var expires = "30d"

    @Flag(help: "Start a new version even if the files are unchanged (to extend the expiry).")
    var renew = false

    @Flag(help: "Sign even with a key the trust policy does not allow for releases.")
    var force = false

    @Flag(help: "Print machine-readable JSON instead of text.")
    var json = false

    func validate() throws {
        switch StetDuration.parse(expires) {
        case .success(let duration) where duration.milliseconds > 0:
            return
        case .failure(.tooLong):
            throw ValidationError("--expires: at most \(StetDuration.maximum) (a release is signed again within a year), found \"\(expires)\"")
        default:
            throw ValidationError("--expires: expected a duration such as 30d or 12h, found \"\(expires)\"")
        }
    }

    func run() throws {
        let privateKey = try PrivateKey(contentsOfFile: try key.path())
        let policy = FileManager.default.fileExists(atPath: trust) ? try TrustPolicy.load(file: trust) : nil
        var signer = ReleaseSigner(directory: directory, key: privateKey, trust: policy)
        signer.force = force
        signer.renew = renew
        signer.validity = StetDuration(parsing: expires)!
        let result = try signer.sign(now: Date())
        for warning in result.warnings { Terminal.standardOutput.warning(warning) }
        if json {
            Terminal.standardOutput.json(result)
            return
        }
        let out = Terminal.standardOutput
        let name = policy?.name(of: privateKey.publicKey) ?? privateKey.publicKey.keyID
        out.line("\(out.green("signed")) release version \(result.version) of \(directory) as \(name)"
            + (result.newVersion ? " (new version)" : " (added to the existing signatures)"))
        out.line("  digest      \(result.digest)")
        out.line("  files       \(result.files)")
        out.line("  signatures  \(result.signatures)")
        out.line("  expires     \(RFC3339.format(result.expires))")
        if let policy {
            let needed = policy.threshold(of: .release)
            if result.signatures < needed {
                out.line("  \(needed - result.signatures) more signature(s) needed from: "
                    + (policy.roles[.release]?.keys.filter { $0 != name }.joined(separator: ", ") ?? ""))
            }
        }
    }
}
