public import Foundation
import StetProviders
public import StetState

/// Releases from git (`--source git:URL_OR_PATH`): a bare mirror in `STATE/git/mirror.git`,
/// fetched with the `git` command, and the wanted commit unpacked into `STATE/git/work`, a
/// private tree nobody else writes, where the release is then verified like any directory.
public struct GitSource: Sendable {
    public let url: String
    public var branch = "main"
    /// The manifest directory inside the repository.
    public var path = "manifests"
    public let store: FileStateStore

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// `git:URL` → a source; nil for anything else.
    public init?(_ source: String, store: FileStateStore) {
        guard source.hasPrefix("git:"), source.count > 4 else { return nil }
        url = String(source.dropFirst(4))
        self.store = store
    }

    var mirror: String { absolute(store.path("git/mirror.git")) }
    public var worktree: String { absolute(store.path("git/work")) }
    public var manifests: String { (worktree as NSString).appendingPathComponent(path) }
    public var trustFile: String { (worktree as NSString).appendingPathComponent("keys/trust.yaml") }

    func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(path)
    }

    /// Fetches every branch; returns the commit id of `ref` (default: the branch).
    @discardableResult
    public func fetch(ref: String? = nil) throws -> String {
        if !FileManager.default.fileExists(atPath: mirror + "/HEAD") {
            try AtomicFile.makeDirectory((mirror as NSString).deletingLastPathComponent)
            try git(["clone", "--bare", "--quiet", url, mirror], in: nil)
        }
        try git(["--git-dir", mirror, "fetch", "--quiet", "--force", "--prune", url, "+refs/heads/*:refs/heads/*"], in: nil)
        return try commit(of: ref ?? branch)
    }

    public func commit(of ref: String) throws -> String {
        try git(["--git-dir", mirror, "rev-parse", "--verify", "\(ref)^{commit}"], in: nil).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Unpacks `commit` into the private work tree, replacing what was there.
    public func checkout(_ commit: String) throws {
        let archive = absolute(store.path("git/checkout.tar"))
        try git(["--git-dir", mirror, "archive", "--format=tar", "--output", archive, commit], in: nil)
        defer { unlink(archive) }
        let staging = worktree + ".new"
        try? FileManager.default.removeItem(atPath: staging)
        try AtomicFile.makeDirectory(staging)
        try run("/usr/bin/env", ["tar", "-x", "-f", archive, "-C", staging], in: nil)
        try? FileManager.default.removeItem(atPath: worktree)
        try FileManager.default.moveItem(atPath: staging, toPath: worktree)
    }

    @discardableResult
    func git(_ arguments: [String], in directory: String?) throws -> String {
        try run("/usr/bin/env", ["git"] + arguments, in: directory)
    }

    @discardableResult
    func run(_ executable: String, _ arguments: [String], in directory: String?) throws -> String {
        var environment = ProcessInfo.processInfo.environment
        environment["GIT_TERMINAL_PROMPT"] = "0"
        let output = try Subprocess.run(executable, arguments, environment: environment, directory: directory)
        guard output.status == 0 else {
            throw Failure(description: "\(arguments.prefix(2).joined(separator: " ")) failed: "
                + output.stderr.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return String(decoding: output.stdout, as: UTF8.self)
    }

    // MARK: - The commit of the accepted release

    static let acceptedKey = "git/accepted.json"

    struct Accepted: Codable {
        var digest: String
        var commit: String
    }

    /// Records that the release with `digest` came from `commit`.
    public static func recordAccepted(digest: String, commit: String, store: FileStateStore) throws {
        try store.write(acceptedKey, try JSONCoding.encoder.encode(Accepted(digest: digest, commit: commit)))
    }

    /// The commit of the accepted release, when it came from git.
    public static func acceptedCommit(digest: String, store: FileStateStore) -> String? {
        guard let data = try? store.read(acceptedKey), let accepted = try? JSONCoding.decoder.decode(Accepted.self, from: data),
            accepted.digest == digest
        else { return nil }
        return accepted.commit
    }
}
