import Foundation
import StetTesting
import Testing

/// `stet restore` writes only inside its target, and only the policy's own snapshots.
extension BackupTests {
    func auditEntries() throws -> [[String: Any]] {
        try stet("audit", "list", "--json").stdout.split(separator: "\n").compactMap {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    static func mode(_ path: String) -> mode_t? {
        var info = stat()
        return lstat(path, &info) == 0 ? info.st_mode : nil
    }

    /// Links planted in a target that others can write to (a link to a file, one to a folder
    /// whose snapshot copy is mode 1777, one at the very top) are replaced by what the snapshot
    /// holds, and nothing outside the target changes. On today's main restic writes through
    /// them: the outside file is overwritten and the outside folder chmod'ed 1777, audited "ok".
    @Test func restoreForceReplacesPlantedLinksAndWritesNothingOutsideTheTarget() throws {
        chmod(repo.root.file("data/dir2"), 0o1777)
        try policy()
        #expect(try stet("apply", "--auto-approve", environment: ci).status == 0)
        try repo.root.write("outside/victim.txt", "victim\n")
        try FileManager.default.createDirectory(atPath: repo.root.file("outside/dir"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: repo.root.file("outside/top"), withIntermediateDirectories: true)
        chmod(repo.root.file("outside/dir"), 0o755)
        let outsideBefore = repo.root.snapshot("outside")

        // Links inside the tree the snapshot recreates.
        let inside = repo.root.file("restored") + realRoot + "/data"
        try FileManager.default.createDirectory(atPath: inside + "/dir1", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: inside + "/dir1/file4.txt", withDestinationPath: repo.root.file("outside/victim.txt"))
        try FileManager.default.createSymbolicLink(atPath: inside + "/dir2", withDestinationPath: repo.root.file("outside/dir"))
        let restored = try stet("restore", "files", "--target", "restored", "--force", environment: ci)
        #expect(restored.status == 0, "\(restored.combined)")
        // A link at the top of the target, where the snapshot's first folder goes.
        let top = String(realRoot.split(separator: "/").first ?? "")
        try FileManager.default.createDirectory(atPath: repo.root.file("restored2"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: repo.root.file("restored2/\(top)"), withDestinationPath: repo.root.file("outside/top"))
        let second = try stet("restore", "files", "--target", "restored2", "--force", environment: ci)
        #expect(second.status == 0, "\(second.combined)")

        // Nothing outside changed: contents, and the folder's mode.
        #expect(repo.root.snapshot("outside") == outsideBefore)
        #expect(try FileManager.default.contentsOfDirectory(atPath: repo.root.file("outside/top")).isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: repo.root.file("outside/dir")).isEmpty)
        #expect(Self.mode(repo.root.file("outside/dir")).map { $0 & 0o7777 } == 0o755)
        // The target holds the snapshot's files and folders where the links were.
        let original = repo.root.file("data/dir1/file4.txt")
        #expect(Self.mode(inside + "/dir1/file4.txt").map { $0 & S_IFMT } == S_IFREG)
        #expect(FileManager.default.contentsEqual(atPath: original, andPath: inside + "/dir1/file4.txt"))
        #expect(Self.mode(inside + "/dir2").map { $0 & S_IFMT } == S_IFDIR)
        #expect(Self.mode(inside + "/dir2").map { $0 & 0o7777 } == 0o1777)
        #expect(FileManager.default.contentsEqual(
            atPath: original, andPath: repo.root.file("restored2") + realRoot + "/data/dir1/file4.txt"))
        // No staging folder is left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: repo.root.file("restored")).filter { $0.hasPrefix(".stet") }.isEmpty)

        // A target that is itself a link is refused, and the refusal recorded.
        try FileManager.default.createSymbolicLink(atPath: repo.root.file("linked"), withDestinationPath: repo.root.file("outside/dir"))
        let linked = try stet("restore", "files", "--target", "linked", "--force", environment: ci)
        #expect(linked.status == 1)
        #expect(linked.stderr.contains("is a symbolic link"), "\(linked.combined)")
        #expect(repo.root.snapshot("outside") == outsideBefore)
        let entries = try auditEntries()
        #expect(entries.filter { $0["action"] as? String == "restore" && $0["outcome"] as? String == "ok" }.count == 2)
        #expect(entries.contains { $0["kind"] as? String == "refusal" && ($0["error"] as? String ?? "").contains("symbolic link") })
    }

    /// A snapshot of another policy in the same repository is refused, not restored under this
    /// policy's name. On today's main restic restores it (an explicit id ignores `--tag`).
    @Test func restoreRefusesASnapshotOfAnotherPolicy() throws {
        try repo.root.write("other-data/secret.txt", "another policy's data\n")
        try policy()
        #expect(try stet("apply", "--auto-approve", environment: ci).status == 0)
        try repo.root.write("manifests/backup.yaml", Samples.backupPolicy(
            name: "files", repository: "backups/files", passwordFile: "secrets/restic.pw", paths: ["data"])
            + "---\n" + Samples.backupPolicy(
                name: "other", repository: "backups/files", passwordFile: "secrets/restic.pw", paths: ["other-data"]))
        try repo.sign(["alice"])
        #expect(try stet("apply", "--auto-approve", environment: ci).status == 0)
        struct Snapshot: Decodable {
            let id: String
            let short_id: String
        }
        func ids(_ tag: String) throws -> [Snapshot] {
            try JSONDecoder().decode([Snapshot].self, from: Data(try restic("snapshots", "--json", "--tag", tag).stdout.utf8))
        }
        let foreign = try #require(try ids("stet:other").first)
        let own = try #require(try ids("stet:files").first)

        for id in [foreign.id, foreign.short_id] {
            let refused = try stet("restore", "files", "--snapshot", id, "--target", "taken", environment: ci)
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("is not a snapshot of files"), "\(refused.combined)")
        }
        // Refused before anything was made: not even the target folder.
        #expect(!FileManager.default.fileExists(atPath: repo.root.file("taken")))
        let entries = try auditEntries()
        #expect(entries.contains { $0["kind"] as? String == "refusal" && $0["action"] as? String == "restore" })
        #expect(!entries.contains { $0["action"] as? String == "restore" && $0["outcome"] as? String == "ok" })

        // Not a snapshot name at all: a usage error, before anything is looked at.
        let malformed = try stet("restore", "files", "--snapshot", "latest;rm", "--target", "taken", environment: ci)
        #expect(malformed.status == 1)
        #expect(malformed.stderr.contains("expected latest or a snapshot id"), "\(malformed.combined)")

        // The policy's own snapshot, by its short id, restores.
        let restored = try stet("restore", "files", "--snapshot", own.short_id, "--target", "mine", environment: ci)
        #expect(restored.status == 0, "\(restored.combined)")
        #expect(FileManager.default.contentsEqual(
            atPath: repo.root.file("data/dir1/file4.txt"), andPath: repo.root.file("mine") + realRoot + "/data/dir1/file4.txt"))
    }
}
