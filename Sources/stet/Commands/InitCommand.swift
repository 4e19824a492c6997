import ArgumentParser
import Foundation
import StetCrypto
import StetState

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Scaffold a repository for Stet: manifests/, keys/ with a trust policy and your key, .gitignore entries.",
        discussion: """
            Makes an Ed25519 key for you (private half outside the repository, mode 0600), a trust \\
            policy naming it in every role with threshold 1, an example service manifest, and \\
            .gitignore entries for the state directory and private keys. Never overwrites a file. \\
            Then: edit manifests/, `stet validate`, `stet release sign manifests --key …`.

            EXIT STATUS
              0   scaffolded
              1   a file exists already, or cannot be written
            """
    )

    @Argument(help: "The repository (default: the current directory).")
    var directory = "."

    @Option(help: ArgumentHelp("Your key's name, a DNS label (default: $USER).", valueName: "name"))
    var name: String?

    @Option(help: ArgumentHelp("Folder for the private key (default: ~/.config/stet/keys).", valueName: "dir"))
    var privateDir: String?

    func run() throws {
        let user = name ?? ProcessInfo.processInfo.environment["USER"].map { $0.lowercased() } ?? "operator"
        guard !user.isEmpty, user.count <= 63, user.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-") }),
            user.first != "-", user.last != "-"
        else { throw ValidationError("key name \"\(user)\" must be a DNS label: pass --name") }
        let root = (directory as NSString).standardizingPath
        let files = [
            "manifests/example.yaml": Self.exampleManifest,
            "keys/trust.yaml": Self.trustPolicy(user),
        ]
        for relative in files.keys.sorted() + ["keys/\(user).pub"] {
            let path = (root as NSString).appendingPathComponent(relative)
            if FileManager.default.fileExists(atPath: path) {
                throw CommandFailure(status: ExitStatus.error, message: "\(path) exists already; stet init never overwrites a file")
            }
        }
        let privateFolder = privateDir ?? KeysGenerateCommand.defaultPrivateDir()
        let privatePath = (privateFolder as NSString).appendingPathComponent("\(user).key")
        let key: PrivateKey
        if FileManager.default.fileExists(atPath: privatePath) {
            key = try PrivateKey(contentsOfFile: privatePath)
        } else {
            key = try PrivateKey.generate()
            try AtomicFile.makeDirectory(privateFolder, mode: 0o700)
            try NewFile.create(privatePath, contents: try key.pem(), mode: 0o600)
        }
        for folder in ["manifests", "keys"] { try AtomicFile.makeDirectory((root as NSString).appendingPathComponent(folder), mode: 0o755) }
        try NewFile.create((root as NSString).appendingPathComponent("keys/\(user).pub"), contents: try key.publicKey.pem(), mode: 0o644)
        for (relative, text) in files.sorted(by: { $0.key < $1.key }) {
            try NewFile.create((root as NSString).appendingPathComponent(relative), contents: Data(text.utf8), mode: 0o644)
        }
        let ignore = (root as NSString).appendingPathComponent(".gitignore")
        var existing = (try? String(contentsOfFile: ignore, encoding: .utf8)) ?? ""
        let wanted = ["/.stet/", "*.key"].filter { entry in !existing.split(separator: "\n").contains { $0 == entry } }
        if !wanted.isEmpty {
            if !existing.isEmpty && !existing.hasSuffix("\n") { existing += "\n" }
            existing += "# Stet: the state directory and private keys stay out of git\n" + wanted.joined(separator: "\n") + "\n"
            try AtomicFile.write(Data(existing.utf8), to: ignore, mode: 0o644)
        }
        let out = Terminal.standardOutput
        out.line(out.green("initialised") + " \(root)")
        out.line("  keys/trust.yaml        your key \(user) in every role, threshold 1")
        out.line("  keys/\(user).pub")
        out.line("  manifests/example.yaml an example service")
        out.line("  .gitignore             /.stet/ and *.key")
        out.line("  private key            \(privatePath) (mode 0600; keep it off the repository)")
        out.line("Next: edit manifests/, then `stet validate` and `stet release sign manifests --key \(privatePath)`.")
    }

    static func trustPolicy(_ name: String) -> String {
        """
        # Who may do what. Add reviewers' keys (stet keys generate NAME) and raise thresholds;
        # once a host has pinned this policy, changes need `stet trust sign` by the root keys.
        apiVersion: stet/v1
        kind: TrustPolicy
        version: 1
        keys:
          \(name): {publicKey: \(name).pub}
        roles:
          root:     {threshold: 1, keys: [\(name)]}
          release:  {threshold: 1, keys: [\(name)]}
          operator: {threshold: 1, keys: [\(name)]}

        """
    }

    static let exampleManifest = """
        # An example service: two replicas of a static web server on 127.0.0.1:8080 and :8081.
        apiVersion: stet/v1
        kind: Service
        metadata: {name: web}
        spec:
          replicas: 2
          run:
            command: [sh, -c, 'exec python3 -m http.server --bind 127.0.0.1 "$PORT"']
            ports: {start: 8080}
          health:
            http: {path: /}
            interval: 5s
            timeout: 1s
            failureThreshold: 3
            startPeriod: 5s

        """
}
