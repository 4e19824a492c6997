import Foundation
import StetEngine
import StetState
import StetTesting
import Testing

/// The tree Stet verifies is the commit's tree, byte for byte, whatever `.gitattributes` says;
/// trees no honest git writes are refused without writing outside the work tree.
@Suite struct GitSourceExportTests {
    let repo = TemporaryDirectory("stet-git-repo")
    let state = TemporaryDirectory("stet-git-state")
    let outside = TemporaryDirectory("stet-git-outside")

    init() throws {
        try git("init", "--quiet", "--initial-branch=main")
    }

    @discardableResult
    func git(_ arguments: String...) throws -> String {
        let output = try StetTesting.run("git", ["-c", "user.email=t@example.org", "-c", "user.name=T"] + arguments, in: repo.path)
        guard output.status == 0 else { throw TestFailure("git \(arguments): \(output.combined)") }
        return output.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func source(ref: String? = nil) throws -> GitSource {
        try #require(try GitSource("git:" + repo.path, ref: ref, store: FileStateStore(root: state.path)))
    }

    /// Every entry of the commit's tree, as git has it: path → (mode, bytes).
    func tree(_ commit: String) throws -> [String: (mode: String, bytes: Data)] {
        var result: [String: (mode: String, bytes: Data)] = [:]
        for line in try git("ls-tree", "-r", "--full-tree", commit).split(separator: "\n") {
            let parts = line.split(separator: "\t", maxSplits: 1)
            let fields = parts[0].split(separator: " ")
            let output = try StetTesting.run("git", ["cat-file", "blob", String(fields[2])], in: repo.path)
            result[String(parts[1])] = (String(fields[0]), Data(output.stdout.utf8))
        }
        return result
    }

    /// Every entry of the unpacked tree: path → (mode, bytes or link target).
    /// Walks without following links.
    func unpacked(_ root: String, _ relative: String = "") throws -> [String: (mode: String, bytes: Data)] {
        var result: [String: (mode: String, bytes: Data)] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: relative.isEmpty ? root : root + "/" + relative) {
            let child = relative.isEmpty ? name : relative + "/" + name
            let full = root + "/" + child
            var info = stat()
            #expect(lstat(full, &info) == 0)
            switch info.st_mode & S_IFMT {
            case S_IFLNK: result[child] = ("120000", Data(try FileManager.default.destinationOfSymbolicLink(atPath: full).utf8))
            case S_IFREG: result[child] = (info.st_mode & 0o100 != 0 ? "100755" : "100644", FileManager.default.contents(atPath: full)!)
            case S_IFDIR: result.merge(try unpacked(root, child)) { first, _ in first }
            default: break
            }
        }
        return result
    }

    @Test func unpacksTheCommitsTreeWhateverItsAttributesSay() throws {
        try repo.write(".gitattributes", """
            manifests/extra.yaml export-ignore
            manifests/subst.yaml export-subst
            manifests/ident.yaml ident
            manifests/crlf.yaml text eol=crlf

            """)
        try repo.write("manifests/web.yaml", "kind: Service\n")
        try repo.write("manifests/extra.yaml", "kind: Service # not signed\n")
        try repo.write("manifests/subst.yaml", "commit: $Format:%H$\n")
        try repo.write("manifests/ident.yaml", "id: $Id$\n")
        try repo.write("manifests/crlf.yaml", "a: 1\nb: 2\n")
        try repo.write("tools/run.sh", "#!/bin/sh\n", mode: 0o755)
        try repo.write("empty", "")
        try FileManager.default.createSymbolicLink(atPath: repo.file("manifests/alias.yaml"), withDestinationPath: "web.yaml")
        try FileManager.default.createSymbolicLink(atPath: repo.file("etc"), withDestinationPath: outside.path)
        try git("add", "-A")
        try git("commit", "--quiet", "-m", "attributes")
        let commit = try git("rev-parse", "HEAD")

        let git = try source()
        #expect(try git.fetch() == commit)
        try git.checkout(commit)
        let expected = try tree(commit), actual = try unpacked(git.worktree)
        #expect(Set(actual.keys) == Set(expected.keys))
        for (path, entry) in expected {
            #expect(actual[path]?.mode == entry.mode, "\(path)")
            #expect(actual[path]?.bytes == entry.bytes, "\(path)")
        }
        #expect(actual["manifests/extra.yaml"] != nil)
        #expect(actual["etc"]?.mode == "120000")
        #expect(actual["manifests/crlf.yaml"]?.bytes == Data("a: 1\nb: 2\n".utf8))
        #expect(actual["manifests/ident.yaml"]?.bytes == Data("id: $Id$\n".utf8))

        // The next commit replaces the tree whole.
        try self.git("rm", "--quiet", "manifests/extra.yaml")
        try self.git("commit", "--quiet", "-m", "remove")
        let second = try git.fetch()
        try git.checkout(second)
        #expect(try unpacked(git.worktree).keys.sorted() == (try tree(second)).keys.sorted())
        #expect(!FileManager.default.fileExists(atPath: git.worktree + "/manifests/extra.yaml"))
    }

    /// A commit whose tree was written by hand (`git mktree` checks no names), on branch `name`.
    func craftedBranch(_ name: String, _ entries: String) throws {
        let input = try repo.write("tree.txt", entries)
        let tree = try StetTesting.run("/bin/sh", ["-c", "git mktree < '\(input)'"], in: repo.path)
        guard tree.status == 0 else { throw TestFailure(tree.combined) }
        let commit = try git("commit-tree", "-m", "crafted", tree.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        try git("update-ref", "refs/heads/\(name)", commit)
    }

    @Test func refusesTreesThatNoHonestGitWrites() throws {
        try repo.write("keep.yaml", "kind: Service\n")
        try git("add", "-A")
        try git("commit", "--quiet", "-m", "base")
        let blob = try git("hash-object", "-w", "keep.yaml")
        let link = try StetTesting.run("/bin/sh", ["-c", "printf %s '\(outside.path)' | git hash-object -w --stdin"], in: repo.path)
            .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        try craftedBranch("inner", "100644 blob \(blob)\tx\n")
        let inner = try git("rev-parse", "inner^{tree}")
        try craftedBranch("dotdot", "040000 tree \(try oneEntryTree("..", blob))\tmanifests\n")
        try craftedBranch("twice", "100644 blob \(blob)\ta.yaml\n100644 blob \(blob)\ta.yaml\n")
        try craftedBranch("through-link", "120000 blob \(link)\ta\n040000 tree \(inner)\ta\n")

        let first = try source()
        try first.checkout(try first.fetch())
        for (branch, why) in [("dotdot", "not a relative path"), ("twice", "appears twice"), ("through-link", "symbolic link a")] {
            let git = try source(ref: branch)
            let error = #expect(throws: GitSource.Failure.self) { try git.checkout(try git.fetch()) }
            #expect(error?.description.contains(why) == true, "\(branch): \(String(describing: error))")
            // Nothing was written outside, and the tree unpacked before stays.
            #expect((try FileManager.default.contentsOfDirectory(atPath: outside.path)).isEmpty, "\(branch)")
            #expect(FileManager.default.fileExists(atPath: git.worktree + "/keep.yaml"), "\(branch)")
        }
    }

    /// A tree of one blob entry named `name`.
    func oneEntryTree(_ name: String, _ blob: String) throws -> String {
        let input = try repo.write("tree.txt", "100644 blob \(blob)\t\(name)\n")
        let tree = try StetTesting.run("/bin/sh", ["-c", "git mktree < '\(input)'"], in: repo.path)
        guard tree.status == 0 else { throw TestFailure(tree.combined) }
        return tree.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
