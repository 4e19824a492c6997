import ArgumentParser
import Foundation
import StetAudit
import StetCrypto
import StetState

struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Make and inspect Ed25519 signing keys.",
        subcommands: [KeysGenerateCommand.self, KeysIDCommand.self, KeysVerifierCommand.self]
    )
}

struct KeysGenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate an Ed25519 key pair.",
        discussion: """
            Writes the private key (PKCS#8 PEM, mode 0600) outside the repository and the public key \
            (SubjectPublicKeyInfo PEM) where the trust policy can name it. Never overwrites a file. \
            The keys interoperate with `openssl pkeyutl -rawin`.

            EXIT STATUS
              0   both files written
              1   a file exists already, or cannot be written
            """
    )

    @Argument(help: "Key name, a DNS label such as alice or ci.")
    var name: String

    @Option(help: ArgumentHelp("Folder for NAME.key (default: $XDG_CONFIG_HOME/stet/keys or ~/.config/stet/keys).", valueName: "dir"))
    var privateDir: String?

    @Option(help: ArgumentHelp("Folder for NAME.pub.", valueName: "dir"))
    var publicDir = "keys"

    @Flag(help: "Print machine-readable JSON instead of text.")
    var json = false

    func validate() throws {
        let valid = !name.isEmpty && name.count <= 63
            && name.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-") }
            && name.first != "-" && name.last != "-"
        guard valid else { throw ValidationError("key name \"\(name)\" must be a DNS label: lowercase letters, digits and '-'") }
    }

    func run() throws {
        let privateFolder = privateDir ?? Self.defaultPrivateDir()
        let privatePath = (privateFolder as NSString).appendingPathComponent("\(name).key")
        let publicPath = (publicDir as NSString).appendingPathComponent("\(name).pub")
        for path in [privatePath, publicPath] where FileManager.default.fileExists(atPath: path) {
            throw CommandFailure(status: ExitStatus.error, message: "\(path) exists already; Stet never overwrites a key")
        }
        let key = try PrivateKey.generate()
        try AtomicFile.makeDirectory(privateFolder, mode: 0o700)
        try AtomicFile.makeDirectory(publicDir, mode: 0o755)
        try NewFile.create(privatePath, contents: try key.pem(), mode: 0o600)
        try NewFile.create(publicPath, contents: try key.publicKey.pem(), mode: 0o644)
        let out = Terminal.standardOutput
        if json {
            out.json(["name": name, "keyid": key.publicKey.keyID, "privateKey": privatePath, "publicKey": publicPath])
            return
        }
        out.line("generated Ed25519 key \(out.bold(name))")
        out.line("  key id       \(key.publicKey.keyID)")
        out.line("  private key  \(privatePath)  (mode 0600: keep it off the repository)")
        out.line("  public key   \(publicPath)")
        out.line("Add it to the trust policy: keys: {\(name): {publicKey: \(name).pub}} and to the roles it may act in.")
    }

    static func defaultPrivateDir() -> String {
        let environment = ProcessInfo.processInfo.environment
        if let xdg = environment["XDG_CONFIG_HOME"], !xdg.isEmpty { return xdg + "/stet/keys" }
        return (environment["HOME"] ?? NSHomeDirectory()) + "/.config/stet/keys"
    }
}

struct KeysIDCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "id",
        abstract: "Print a key's id: the hex SHA-256 of its raw public key.",
        discussion: """
            FILE may hold a public key (SubjectPublicKeyInfo PEM) or a private key (PKCS#8 PEM; \
            refused when group or others can read it).

            EXIT STATUS
              0   printed
              1   not an Ed25519 key, or unreadable
            """
    )

    @Argument(help: "A public or private key file.")
    var file: String

    @Flag(help: "Print machine-readable JSON instead of text.")
    var json = false

    func run() throws {
        let key = try Self.publicKey(file)
        if json {
            Terminal.standardOutput.json(["file": file, "keyid": key.keyID])
        } else {
            Terminal.standardOutput.line(key.keyID)
        }
    }
}

extension KeysIDCommand {
    /// The public key in FILE, which may hold a public key or a private one.
    static func publicKey(_ file: String) throws -> PublicKey {
        let data = try readInput(file, limit: InputFile.Limit.key, what: "key")
        if String(decoding: data, as: UTF8.self).contains("PRIVATE KEY") {
            return try PrivateKey(contentsOfFile: file).publicKey
        }
        return try PublicKey(pem: data, source: file)
    }
}

struct KeysVerifierCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verifier",
        abstract: "Print a key's signed-note verifier string, for tools that check Stet's checkpoints.",
        discussion: """
            Prints NAME+KEYID+base64(0x01 ‖ public key) (c2sp.org/signed-note), where KEYID is the \
            first 4 bytes of SHA-256(NAME ‖ 0x0A ‖ 0x01 ‖ public key). Checkpoints are signed under \
            their origin, so NAME must be the origin that `stet audit checkpoint` uses on the host.

            EXIT STATUS
              0   printed
              1   not an Ed25519 key, unreadable, or an invalid name
            """
    )

    @Argument(help: "A public or private key file.")
    var file: String

    @Option(help: ArgumentHelp("Signer name: the checkpoint origin (default: stet/<hostname>).", valueName: "name"))
    var name: String?

    @Flag(help: "Print machine-readable JSON instead of text.")
    var json = false

    func run() throws {
        let verifier = try NoteVerifier(name: name ?? Checkpoint.defaultOrigin, publicKey: try KeysIDCommand.publicKey(file))
        if json {
            Terminal.standardOutput.json(["name": verifier.name, "keyid": verifier.keyID.hexString, "verifier": verifier.verifierKey])
        } else {
            Terminal.standardOutput.line(verifier.verifierKey)
        }
    }
}

/// Creates a file that must not exist yet, atomically: written and fsynced under a temporary
/// name, then linked into place (which fails if the name was taken meanwhile).
enum NewFile {
    static func create(_ path: String, contents: Data, mode: mode_t) throws {
        guard try AtomicFile.create(contents, at: path, mode: mode) else {
            throw CommandFailure(status: ExitStatus.error, message: "cannot create \(path): \(String(cString: strerror(EEXIST)))")
        }
    }
}
