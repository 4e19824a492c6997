import Foundation
public import StetManifest
import StetProviders
public import StetState

/// Releases from git (`--source git:URL_OR_PATH`): a bare mirror in `STATE/git/mirror.git`,
/// fetched with the `git` command, and the wanted commit's tree written blob by blob into
/// `STATE/git/work`, a private tree nobody else writes, where the release is then verified like
/// any directory.
///
/// Everything that reaches git's command line is checked first (`GitSource+Input.swift`): the
/// URL can name only a local path, file://, https://, ssh:// or user@host:path, and a ref or a
/// URL can never be read as an option. git itself runs with those transports only, without
/// system configuration, hooks, fsmonitor or prompts, and under a deadline.
public struct GitSource: Sendable {
    public let url: String
    /// The branch, tag or commit to use; nil: the branch.
    public let ref: String?
    public let branch: String
    /// The manifest directory inside the repository, normalised ("" for the repository's root).
    public let path: String
    /// The state directory itself, not any `StateStore`: git works in folders on this host's
    /// disk (the mirror and the work tree are paths git is given, not keys), and only a local
    /// source of releases has them. A fleet takes its releases from its own store.
    public let store: FileStateStore
    /// Seconds any one git command may take before its process group is killed.
    public var timeout: Double = 300

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// `git:URL` → a source; nil for anything else. Throws when the URL, ref or branch is not
    /// one Stet hands to git, or the path leaves the repository; nothing has run then.
    public init?(
        _ source: String, ref: String? = nil, branch: String = "main", path: String = "manifests", store: FileStateStore
    ) throws(Failure) {
        guard source.hasPrefix("git:") else { return nil }
        url = String(source.dropFirst(4))
        try Self.checkURL(url)
        if let ref { try Self.checkRef(ref, option: "--ref") }
        try Self.checkRef(branch, option: "--branch")
        self.ref = ref
        self.branch = branch
        self.path = try Self.checkPath(path)
        self.store = store
    }

    /// What the source follows, for logs: the URL without any credentials in it, the ref or
    /// branch, and the path in the repository.
    public var watched: String {
        var shown = url
        // https://user:token@host/… → https://***@host/…
        if let scheme = shown.range(of: "://"), let at = shown[scheme.upperBound...].firstIndex(of: "@"),
            !shown[scheme.upperBound..<at].contains("/")
        {
            shown.replaceSubrange(scheme.upperBound..<at, with: "***")
        }
        return "git:\(shown) " + (ref.map { "at \($0)" } ?? "branch \(branch)") + ", path " + (path.isEmpty ? "." : path)
    }

    var mirror: String { absolute(store.path("git/mirror.git")) }
    public var worktree: String { absolute(store.path("git/work")) }
    public var manifests: String { path.isEmpty ? worktree : worktree + "/" + path }
    public var trustFile: String { worktree + "/keys/trust.yaml" }

    func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(path)
    }

    /// The release gate of the unpacked `commit`: its manifest directory and trust policy must
    /// resolve inside the commit, and messages name the commit and the path in the repository.
    public func gate(commit: String) -> ReleaseGate {
        var gate = ReleaseGate(manifests: manifests, trustFile: trustFile, store: store)
        gate.root = worktree
        gate.shownAs = "commit \(commit.prefix(12)):" + (path.isEmpty ? "." : path)
        return gate
    }

    /// Fetches every branch; returns the commit id of the ref (default: the branch).
    @discardableResult
    public func fetch() throws -> String {
        if !FileManager.default.fileExists(atPath: mirror + "/HEAD") {
            try AtomicFile.makeDirectory((mirror as NSString).deletingLastPathComponent)
            // --no-local: objects come through git's protocol, never hard-linked from a
            // repository that someone else may write.
            try git(["clone", "--bare", "--quiet", "--no-local", "--", url, mirror])
        }
        try git(["--git-dir", mirror, "fetch", "--quiet", "--force", "--prune", "--", url, "+refs/heads/*:refs/heads/*"])
        return try commit(of: ref ?? branch)
    }

    public func commit(of ref: String) throws -> String {
        try Self.checkRef(ref, option: "--ref")
        let output = try run(["--git-dir", mirror, "rev-parse", "--verify", "--quiet", "--end-of-options", "\(ref)^{commit}"])
        let id = String(decoding: output.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard output.status == 0, Self.isObjectID(id) else {
            throw Failure(description: "\(ref) names no commit in \(url)")
        }
        return id
    }

    /// Writes the tree of `commit` into the private work tree, replacing what was there.
    public func checkout(_ commit: String) throws {
        guard Self.isObjectID(commit) else { throw Failure(description: "\(commit) is not a commit id") }
        let staging = worktree + ".new"
        try? FileManager.default.removeItem(atPath: staging)
        try AtomicFile.makeDirectory(staging)
        do {
            try export(commit, into: staging)
        } catch {
            try? FileManager.default.removeItem(atPath: staging)
            throw error
        }
        try? FileManager.default.removeItem(atPath: worktree)
        try FileManager.default.moveItem(atPath: staging, toPath: worktree)
    }

    // MARK: - Running git

    /// What every git command runs with: the allowed transports, no hooks, no fsmonitor. A
    /// user's `protocol.<name>.allow` outranks `protocol.allow=never`, so the transports are also
    /// fixed by GIT_ALLOW_PROTOCOL (below), which outranks every configuration.
    static let configuration = [
        "-c", "protocol.allow=never", "-c", "protocol.file.allow=always", "-c", "protocol.https.allow=always",
        "-c", "protocol.ssh.allow=always", "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false",
    ]

    /// Inherited git variables that say how to reach a remote (ssh, TLS certificates, the
    /// user's own configuration file); every other `GIT_*` variable (GIT_DIR,
    /// GIT_CONFIG_PARAMETERS, GIT_EXEC_PATH …) is dropped.
    static let keptVariables: Set = [
        "GIT_SSH", "GIT_SSH_COMMAND", "GIT_SSH_VARIANT", "GIT_SSL_CAINFO", "GIT_SSL_CAPATH", "GIT_CONFIG_GLOBAL",
    ]

    static var environment: [String: String] {
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("GIT_") || keptVariables.contains($0.key) }
        environment["GIT_CONFIG_NOSYSTEM"] = "1"
        environment["GIT_TERMINAL_PROMPT"] = "0"
        environment["GIT_ALLOW_PROTOCOL"] = "file:https:ssh"
        return environment
    }

    /// Runs git and returns its standard output (at most `maximumOutput` bytes), failing unless
    /// it exits 0.
    @discardableResult
    func git(_ arguments: [String], maximumOutput: Int = 1 << 20) throws -> Data {
        let output = try run(arguments, maximumOutput: maximumOutput)
        try check(output.status, output.stderr, arguments)
        return output.stdout
    }

    func run(_ arguments: [String], maximumOutput: Int = 1 << 20) throws -> Subprocess.Output {
        do {
            return try Subprocess.run(
                "/usr/bin/env", ["git"] + Self.configuration + arguments, environment: Self.environment, timeout: timeout,
                maximumOutput: maximumOutput)
        } catch let stopped as Subprocess.Stopped {
            throw Failure(description: "\(Self.name(arguments)) \(stopped)")
        }
    }

    /// Runs git, handing its standard output to `consume` as it arrives.
    func git(_ arguments: [String], input: String, consume: (Data) throws -> Void) throws {
        let result: (status: Int32, stderr: String)
        do {
            result = try Subprocess.stream(
                "/usr/bin/env", ["git"] + Self.configuration + arguments, environment: Self.environment, input: input,
                timeout: timeout, consume: consume)
        } catch let stopped as Subprocess.Stopped {
            throw Failure(description: "\(Self.name(arguments)) \(stopped)")
        }
        try check(result.status, result.stderr, arguments)
    }

    private func check(_ status: Int32, _ stderr: String, _ arguments: [String]) throws {
        guard status == 0 else {
            throw Failure(description: "\(Self.name(arguments)) failed: " + stderr.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    /// "git fetch", "git clone" …: the subcommand, after any --git-dir.
    static func name(_ arguments: [String]) -> String {
        let rest = arguments.first == "--git-dir" ? arguments.dropFirst(2) : arguments[...]
        return "git " + (rest.first ?? "")
    }
}
