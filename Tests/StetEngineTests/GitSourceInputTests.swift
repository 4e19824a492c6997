import Foundation
import StetEngine
import StetState
import Testing

/// What a git source takes from the command line, checked before git runs: a URL git cannot
/// read as an option or another transport, refs that are names, a path inside the repository.
@Suite struct GitSourceInputTests {
    let store = FileStateStore(root: "/nonexistent/stet-state")

    func source(_ url: String, ref: String? = nil, branch: String = "main", path: String = "manifests") throws -> GitSource? {
        try GitSource("git:" + url, ref: ref, branch: branch, path: path, store: store)
    }

    @Test(arguments: [
        "/srv/git/ops.git", "../ops", "ops", "./--upload-pack=x", "/srv/a:b", "file:///srv/ops.git",
        "https://git.example.org/ops/web.git", "https://user@git.example.org/ops/web.git",
        "ssh://git@git.example.org:2222/ops/web.git", "ssh://[::1]/ops.git", "git@github.com:ops/web.git", "deploy:ops/web.git",
    ])
    func acceptedURLs(_ url: String) throws {
        #expect(try source(url)?.url == url)
    }

    @Test(arguments: [
        "", "--upload-pack=touch /tmp/x", "-u touch /tmp/x", "--config=core.sshCommand=touch /tmp/x", "ext::sh -c touch% /tmp/x",
        "fd::17", "git://example.org/x", "http://example.org/x", "ftp://example.org/x", "git+ssh://host/x", "HTTPS://example.org/x",
        "ssh://-oProxyCommand=touch/x", "ssh://user@-host/x", "ssh://-user@host/x", "https://-x/y", "-oProxyCommand=x@host:path",
        "user@-host:path", "user@host:-path", "host::path", "user@host::path", "us er@host:path", "[host:22]:path",
        "/srv/ops\n.git", "/srv/ops\u{0}.git", "/srv/ops\r.git", String(repeating: "a", count: 4097),
    ])
    func refusedURLs(_ url: String) {
        let error = #expect(throws: GitSource.Failure.self) { try source(url) }
        #expect(error?.description.hasPrefix("--source git:") == true)
        #expect(error?.description.hasSuffix("expected a local path, file://, https://, ssh:// or user@host:path") == true)
        #expect(error?.description.contains("\n") == false)
    }

    @Test func notAGitSource() throws {
        #expect(try GitSource("manifests", store: store) == nil)
    }

    @Test(arguments: ["main", "release/v1.2", "v1.0", "feature_x+y", "0123456789abcdef0123456789abcdef01234567"])
    func acceptedRefs(_ ref: String) throws {
        #expect(try source("/srv/ops", ref: ref, branch: ref)?.ref == ref)
    }

    @Test(arguments: [
        "", "-x", "--output=/tmp/x", "a..b", "a//b", ".hidden", "a/.b", "x.lock", "x/", "x.", "/x", "a b", "a~1", "a^{commit}",
        "@{-1}", "a:b", "a\nb", String(repeating: "a", count: 256),
    ])
    func refusedRefs(_ ref: String) {
        let refError = #expect(throws: GitSource.Failure.self) { try source("/srv/ops", ref: ref) }
        #expect(refError?.description.hasPrefix("--ref ") == true)
        let branchError = #expect(throws: GitSource.Failure.self) { try source("/srv/ops", branch: ref) }
        #expect(branchError?.description.hasPrefix("--branch ") == true)
    }

    @Test(arguments: [("manifests", "manifests"), ("deploy/manifests/", "deploy/manifests"), ("./manifests", "manifests"), (".", "")])
    func acceptedPaths(_ path: String, normalised: String) throws {
        let git = try #require(try source("/srv/ops", path: path))
        #expect(git.path == normalised)
        #expect(git.manifests == (normalised.isEmpty ? git.worktree : git.worktree + "/" + normalised))
    }

    @Test(arguments: ["../../outside", "manifests/../../x", "..", "/etc", "", "a\nb", String(repeating: "a/", count: 2049)])
    func refusedPaths(_ path: String) {
        let error = #expect(throws: GitSource.Failure.self) { try source("/srv/ops", path: path) }
        #expect(error?.description.hasPrefix("--path ") == true)
        #expect(error?.description.hasSuffix("a relative path without '..'") == true)
    }
}
