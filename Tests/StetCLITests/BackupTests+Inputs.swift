import Foundation
import StetCore
import StetTesting
import Testing

/// What a backup policy names: exclude patterns mean what they mean to restic, and a password
/// file must be a private regular file.
extension BackupTests {
    /// The real path of the fixture's root: Stet names backed-up files by it (from getcwd).
    var realRoot: String {
        guard let resolved = realpath(repo.root.path, nil) else { return repo.root.path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// restic's pattern forms: a relative path of several components, a glob within one folder,
    /// a name anywhere, a rooted path, `**`, a character class, and a negation. Stet's list of
    /// the snapshot's files is restic's own list, so the restore test passes and the policy is
    /// healthy. On today's main Stet kept `data/cache` and `sub/*.tmp` files that restic left
    /// out, so every restore test failed with "missing from the restore".
    @Test func excludePatternsMeanWhatTheyMeanToRestic() throws {
        for file in ["cache/c.txt", "cache/deep/c2.txt", "sub/d.tmp", "sub/x/e.tmp", "sub/x/f.txt", "app.log", "keep.log",
                     "nested/app.log", "rooted/r.txt", "a/deep/b/z.bin", "a/deep/z.txt", "ax.txt", "bx.txt", "cx.txt", "sub/cache/g.txt"]
        {
            try repo.root.write("data/\(file)", "content of \(file)\n")
        }
        let patterns = ["data/cache", "sub/*.tmp", "*.log", "!keep.log", "\(realRoot)/data/rooted", "**/deep/*/*.bin", "[ab]x.txt"]
        try repo.root.write("manifests/backup.yaml", Samples.backupPolicy(
            name: "files", repository: "backups/files", passwordFile: "secrets/restic.pw", paths: ["data"], restoreTest: "1d")
            + "  exclude: [" + patterns.map { "\"\($0)\"" }.joined(separator: ", ") + "]\n")
        try repo.sign(["alice"])
        let apply = try stet("apply", "--auto-approve", environment: ci)
        #expect(apply.status == 0, "\(apply.combined)")
        let status = try stet("status")
        #expect(status.status == 0, "\(status.combined)")
        #expect(status.stdout.contains("restore test passed"), "\(status.stdout)")

        // The files Stet recorded for the snapshot are exactly the files restic put in it.
        struct Node: Decodable {
            let type: String?
            let path: String?
        }
        let listed = try restic("ls", "--json", "latest", "--tag", "stet:files").stdout.split(separator: "\n")
            .compactMap { try? JSONDecoder().decode(Node.self, from: Data($0.utf8)) }
            .filter { $0.type == "file" }.compactMap(\.path)
        struct Manifest: Decodable { let files: [String: [String: AnyDecodable]] }
        let manifest = try JSONDecoder().decode(Manifest.self, from: try #require(repo.root.read(".stet/backup/files.manifest.json")))
        #expect(Set(manifest.files.keys) == Set(listed))
        let kept = Set(listed.map { String($0.dropFirst(realRoot.count + "/data/".count)) })
        #expect(kept.isSuperset(of: ["sub/x/e.tmp", "sub/x/f.txt", "keep.log", "a/deep/z.txt", "cx.txt", "sub/cache/g.txt", "dir1/file4.txt"]))
        #expect(kept.isDisjoint(with: ["cache/c.txt", "cache/deep/c2.txt", "sub/d.tmp", "app.log", "nested/app.log", "rooted/r.txt",
                                       "a/deep/b/z.bin", "ax.txt", "bx.txt"]))
    }

    /// The same rules, case by case, against restic's own choice for each pattern alone.
    @Test(arguments: ["data/cache", "sub/*.tmp", "*.log", "/data", "x/**/y", "**/*.bin", "d?r[0-1]", "\\*literal", "[^a]x.txt"])
    func excludeMatchesResticPatternByPattern(pattern: String) throws {
        for file in ["cache/c.txt", "sub/d.tmp", "sub/x/e.tmp", "app.log", "x/a/b/y/file", "x/y/file", "q/x/y/f", "f.bin",
                     "k/f.bin", "*literal", "aliteral", "ax.txt", "bx.txt"]
        {
            try repo.root.write("data/\(file)", "\(file)\n")
        }
        let data = realRoot + "/data"
        #expect(try restic("init").status == 0)
        #expect(try restic("backup", "--json", "--tag", "probe", "--exclude", pattern, data).status == 0)
        let listed = try restic("ls", "--json", "latest", "--tag", "probe").stdout.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        let stored = Set(listed.compactMap { $0["path"] as? String }.filter { $0.hasPrefix(data) })
        // Every path below the data folder, walked as restic walks it.
        var all: [String] = [data]
        for name in FileManager.default.enumerator(atPath: data)?.allObjects as? [String] ?? [] { all.append(data + "/" + name) }
        let exclude = ResticExclude([pattern])
        let kept = Set(all.filter { path in
            // Kept when neither it nor a folder above it, up to the folder backed up, is excluded.
            var prefix = data
            if exclude.excludes(prefix) { return false }
            for component in path.dropFirst(data.count).split(separator: "/") {
                prefix += "/" + component
                if exclude.excludes(prefix) { return false }
            }
            return true
        })
        #expect(kept == stored, "pattern \(pattern): Stet \(kept.subtracting(stored).sorted()) restic \(stored.subtracting(kept).sorted())")
    }

    /// A pattern restic would refuse is an error at validation, named by its field.
    @Test func anExcludePatternResticRefusesIsAValidationError() throws {
        try repo.root.write("manifests/backup.yaml", Samples.backupPolicy(
            name: "files", repository: "backups/files", passwordFile: "secrets/restic.pw", paths: ["data"])
            + "  exclude: [\"ok/*\", \"[a]x[\"]\n")
        let validate = try stet("validate", "manifests")
        #expect(validate.status == 1)
        #expect(validate.combined.contains("exclude[1]"), "\(validate.combined)")
        #expect(validate.combined.contains("expected a restic exclude pattern"), "\(validate.combined)")
        #expect(ResticExclude.problem(in: "[a]x[") != nil)
        #expect(ResticExclude.problem(in: "ok/*") == nil)
    }

    /// A FIFO as password file made `status` and `plan` wait for a writer for ever; a password
    /// file anyone can read was used silently. Both are refused, as loose key files are, and
    /// restic never runs with them.
    @Test func aPasswordFileThatIsAFIFOOrOpenToOthersIsRefused() throws {
        try policy()
        #expect(try stet("apply", "--auto-approve", environment: ci).status == 0)
        #expect(mkfifo(repo.root.file("secrets/fifo.pw"), 0o600) == 0)
        try policy(password: "secrets/fifo.pw")
        // Status shows the release in force: accept the new one first (nothing reads the file).
        #expect(try stet("verify", "--accept", environment: ci).status == 0)
        for command in ["status", "plan"] {
            let output = try StetTesting.run(Binary.stet, [command], in: repo.root.path, timeout: 60)
            #expect(output.stdout.contains("secrets/fifo.pw is not a regular file"), "\(command): \(output.combined)")
        }
        let restore = try StetTesting.run(Binary.stet, ["restore", "files", "--target", "out"], in: repo.root.path, environment: ci, timeout: 60)
        #expect(restore.status == 1)
        #expect(restore.stderr.contains("is not a regular file"), "\(restore.combined)")

        try repo.root.write("secrets/open.pw", Self.password + "\n", mode: 0o666)
        try policy(password: "secrets/open.pw")
        #expect(try stet("verify", "--accept", environment: ci).status == 0)
        let status = try stet("status")
        #expect(status.status == 3)
        #expect(status.stdout.contains("is open to group or others (mode 666)"), "\(status.combined)")
        #expect(status.stdout.contains("chmod 600"), "\(status.combined)")
        let plan = try stet("plan")
        #expect(plan.stdout.contains("is open to group or others"), "\(plan.combined)")
        // Nothing is planned for the policy, so restic never runs with that file.
        #expect(try stet("apply", "--auto-approve", environment: ci).status == 0)
        #expect(try snapshotIDs().count == 1)
        // Made private, it is taken.
        chmod(repo.root.file("secrets/open.pw"), 0o600)
        #expect(try stet("status").status == 0)
    }
}

/// Any JSON value, decoded and dropped.
struct AnyDecodable: Decodable {
    init(from decoder: any Decoder) throws {}
}
