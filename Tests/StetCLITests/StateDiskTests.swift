import Foundation
import StetTesting
import Testing

/// The state directory on a small tmpfs of its own: full, then read-only. Each refusal is a
/// clear error naming the file; nothing is half-written; the audit log verifies throughout and
/// takes entries again once space returns. Needs root (mount); CI runs as root.
@Suite struct StateDiskTests {
    var repo = RepositoryFixture()
    let ci = ["STET_KEY": "private/ci.key"]

    init() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
    }

    func stet(_ arguments: String..., environment: [String: String] = [:]) throws -> ProcessOutput {
        try Binary.run(arguments, in: repo.root.path, environment: environment)
    }

    func entries(_ state: String) throws -> Int {
        try stet("audit", "list", "--json", "--state-dir", state, environment: ci).stdout.split(separator: "\n").count
    }

    @Test func aFullThenReadOnlyStateDirectoryRefusesCleanlyAndTheLogStaysWhole() throws {
        let mountPoint = repo.root.file("small")
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        let mounted = try StetTesting.run("mount", ["-t", "tmpfs", "-o", "size=512k", "tmpfs", mountPoint])
        try #require(mounted.status == 0, "mount: \(mounted.combined)")
        defer { _ = try? StetTesting.run("umount", ["-l", mountPoint]) }
        let state = mountPoint + "/state"
        #expect(try stet("trust", "pin", "--state-dir", state, environment: ci).status == 0)
        let long = String(repeating: "x", count: 3000)
        for index in 0..<3 {
            #expect(try stet("audit", "record", "--action", "note", "--reason", "\(index) \(long)", "--state-dir", state, environment: ci).status == 0)
        }
        let before = try entries(state)

        // Full: every byte taken by a file beside the state.
        let filler = mountPoint + "/filler"
        _ = try StetTesting.run("dd", ["if=/dev/zero", "of=\(filler)", "bs=4k"])
        var refusals = 0
        for index in 0..<4 {
            let full = try stet("audit", "record", "--action", "note", "--reason", "full \(index) \(long)", "--state-dir", state, environment: ci)
            if full.status != 0 {
                refusals += 1
                #expect(full.stderr.contains("No space left on device") && full.stderr.contains(state), "\(full.combined)")
            }
        }
        #expect(refusals > 0, "a full file system took every entry")
        let verified = try stet("audit", "verify", "--state-dir", state, environment: ci)
        #expect(verified.status == 0, "\(verified.combined)")
        let log = try Data(contentsOf: URL(fileURLWithPath: state + "/audit/log.jsonl"))
        #expect(log.last == 0x0A, "the log ends in a torn line")
        let whileFull = try entries(state)

        // Read-only: refused, nothing changed.
        #expect(try StetTesting.run("mount", ["-o", "remount,ro", mountPoint]).status == 0)
        let readOnly = try stet("audit", "record", "--action", "note", "--reason", "read-only", "--state-dir", state, environment: ci)
        #expect(readOnly.status != 0 && readOnly.stderr.contains("Read-only file system"), "\(readOnly.combined)")
        #expect(try entries(state) == whileFull)
        #expect(try StetTesting.run("mount", ["-o", "remount,rw", mountPoint]).status == 0)

        // Space back: appendable, and whole.
        try FileManager.default.removeItem(atPath: filler)
        let again = try stet("audit", "record", "--action", "note", "--reason", "space returned", "--state-dir", state, environment: ci)
        #expect(again.status == 0, "\(again.combined)")
        #expect(try entries(state) == whileFull + 1 && whileFull >= before)
        let whole = try stet("audit", "verify", "--state-dir", state, environment: ci)
        #expect(whole.status == 0, "\(whole.combined)")
    }
}
