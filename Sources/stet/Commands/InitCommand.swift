import ArgumentParser
import Foundation
import StetCrypto
import StetProviders
import StetState

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Scaffold a repository for Stet: manifests/, keys/ with a trust policy and your key, .gitignore entries.",
        discussion: """
            Makes an Ed25519 key for you (private half outside the repository, mode 0600), a trust \
            policy naming it in every role with threshold 1, an example service manifest, and \
            .gitignore entries for the state directory, private keys and saved plans. Runs `git init` \
            when the directory is not in a git repository yet. Never overwrites a file. Then: edit manifests/, `stet validate`, `stet release sign manifests --key …`.

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
            // lstat: a dangling link counts as a file that exists.
            var info = stat()
            if lstat(path, &info) == 0 {
                throw CommandFailure(status: ExitStatus.error, message: "\(path) exists already; stet init never overwrites a file")
            }
        }
        let privateFolder = privateDir ?? KeysGenerateCommand.defaultPrivateDir()
        let privatePath = (privateFolder as NSString).appendingPathComponent("\(user).key")
        // All or nothing: what this run made is removed again if a later step fails, so a retry
        // does not stop at a half-made repository.
        var made = Undo()
        do {
            let key: PrivateKey
            if FileManager.default.fileExists(atPath: privatePath) {
                key = try PrivateKey(contentsOfFile: privatePath)
            } else {
                key = try PrivateKey.generate()
                try made.folder(privateFolder, mode: 0o700)
                try NewFile.create(privatePath, contents: try key.pem(), mode: 0o600)
                made.files.append(privatePath)
            }
            for folder in ["manifests", "keys"] { try made.folder((root as NSString).appendingPathComponent(folder), mode: 0o755) }
            let publicPath = (root as NSString).appendingPathComponent("keys/\(user).pub")
            try NewFile.create(publicPath, contents: try key.publicKey.pem(), mode: 0o644)
            made.files.append(publicPath)
            for (relative, text) in files.sorted(by: { $0.key < $1.key }) {
                let path = (root as NSString).appendingPathComponent(relative)
                try NewFile.create(path, contents: Data(text.utf8), mode: 0o644)
                made.files.append(path)
            }
            let ignore = (root as NSString).appendingPathComponent(".gitignore")
            var existing = (try? String(contentsOfFile: ignore, encoding: .utf8)) ?? ""
            let wanted = ["/.stet/", "*.key", "plan.json"].filter { entry in !existing.split(separator: "\n").contains { $0 == entry } }
            if !wanted.isEmpty {
                if !existing.isEmpty && !existing.hasSuffix("\n") { existing += "\n" }
                existing += "# Stet: the state directory, private keys and saved plans stay out of git\n" + wanted.joined(separator: "\n") + "\n"
                try AtomicFile.write(Data(existing.utf8), to: ignore, mode: 0o644)
            }
        } catch {
            made.undo()
            throw error
        }
        let git = Self.gitRepository(root)
        let out = Terminal.standardOutput
        out.line(out.green("initialised") + " \(root)")
        out.line("  git                    \(git)")
        out.line("  keys/trust.yaml        your key \(user) in every role, threshold 1")
        out.line("  keys/\(user).pub")
        out.line("  manifests/example.yaml an example service")
        out.line("  .gitignore             /.stet/, *.key and plan.json")
        out.line("  private key            \(privatePath) (mode 0600; keep it off the repository)")
        out.line("Next: edit manifests/, then `stet validate` and `stet release sign manifests --key \(privatePath)`.")
    }

    /// Makes `root` a git repository unless it is in one already; says what it found or did.
    static func gitRepository(_ root: String) -> String {
        func git(_ arguments: [String]) -> Subprocess.Output? {
            try? Subprocess.run(
                "/usr/bin/env", ["git"] + arguments, environment: Subprocess.plainEnvironment(), directory: root, timeout: 30,
                maximumOutput: 1 << 16)
        }
        let inside = git(["rev-parse", "--is-inside-work-tree"])
        if inside?.status == 0 { return "in a git repository already" }
        if inside == nil || inside?.status == 127 { return "git is not installed: make this a git repository before you commit" }
        guard let made = git(["init", "--quiet"]), made.status == 0 else {
            return "not a git repository, and `git init` failed: run it yourself"
        }
        return "initialised a git repository (`git init`)"
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

/// What `stet init` made so far, to remove again when a later step fails: files, then the
/// folders it created (only while they are empty), newest first.
private struct Undo {
    var files: [String] = []
    var folders: [String] = []

    /// Makes `path` (and missing parents), remembering each folder this call created.
    mutating func folder(_ path: String, mode: mode_t) throws {
        var missing: [String] = []
        var current = path
        while !current.isEmpty, current != "/", !FileManager.default.fileExists(atPath: current) {
            missing.append(current)
            current = (current as NSString).deletingLastPathComponent
        }
        try AtomicFile.makeDirectory(path, mode: mode)
        folders += missing.reversed()
    }

    func undo() {
        for file in files.reversed() { unlink(file) }
        for folder in folders.reversed() { rmdir(folder) }
    }
}
